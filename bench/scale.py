#!/usr/bin/env python
"""Scale without surprise: time and peak memory of every step of `aet run` from 64 to 384 pixels.

For each image side n (default 64, 128, 192, 288), an FePt particle filling the same fraction of the
box (`aetcore.model.simulate.fept_particle`, radius 0.34 n p: about 200 atoms at 64 px, 1 600 at
128, 5 400 at 192 and 18 000 at 288), 68 projections over ±70° (the FePt 2017 experiment's count) at
p = 0.4 Å, Poisson noise at 5e4 e/Å^2, aligned. Each step of `aet run` with defaults then runs as
its own command (`aet preprocess`, `aet align`, ... `aet refine` on one results folder), each in its
own child process, which reports its wall time and its peak resident memory (VmHWM): so the memory
of one step is not hidden under another's.

Printed:
* per size: seconds and peak MiB of each step, the atom count and the scores against the truth
  (recall, precision, RMSD);
* the growth exponent of each step between consecutive sizes: d log(time) / d log(n) for
  preprocess, align and reconstruct (their algorithms: n^2 per image and n^3 log n for the
  GENFIRE iteration), d log(time) / d log(atoms) for trace, classify, evidence and refine (linear in
  atoms);
* aetcore's run-time memory estimate (`aetcore.app.estimate`, what `aet run` prints before it
  starts) against the largest measured peak;
* the genfire package (the reference implementation) at the sizes it can hold in the same run, if
  it is installed (`pip install "aetcore[bench]"`): its wall time, peak memory and error for the
  same number of GENFIRE iterations on the same series.

    python bench/scale.py                      # 64, 128, 192, 288 (about an hour on 2 busy cores)
    python bench/scale.py --sizes 64,128       # a quick look
    python bench/scale.py --json scale.json
    python bench/scale.py --sizes 288 --whole-run --skip-genfire   # also `aet run` in one process

The sum of the per-step commands counts, for every step, an interpreter start, the reading of the
folder and the writing of its outputs and report, which one `aet run` does once. `--whole-run` also
runs `aet run` with defaults on the same series in one process (a fresh results folder) and prints
its wall time, peak memory, its own per-step timings and its scores: that is the number the
10-minute target of issue 14 is about.

A benchmark, not a test: it prints a table and exits 0 unless something crashes.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import cpu_model, maxrss_mb, run_worker, write_json  # noqa: E402

STEPS = ("preprocess", "align", "reconstruct", "trace", "classify", "evidence", "refine")
PIXEL = 0.4
ANGLES = 68
DOSE = 5e4
GENFIRE_PACKAGE_MAX = 128   # the genfire package needs ~6 GB at 128^3 (bench/README.md); beyond, tens of GB


def _simulate(n: int, folder: Path, seed: int, threads: int) -> dict:
    from ase import Atoms

    from aetcore.io.writers import write_angles, write_npy, write_xyz
    from aetcore.model.simulate import angles_range, fept_particle, tilt_series
    p = fept_particle(0.34 * n * PIXEL, orientation="random", antisite=0.02, thermal=0.05, seed=seed)
    angles = angles_range(-70, 70, ANGLES)
    s = tilt_series(p.positions, p.species, angles, (n, n), PIXEL, dose=DOSE, seed=seed, threads=threads)
    write_npy(folder / "tilts.npy", s.tilts.astype(np.float32))
    write_angles(folder / "angles.txt", angles)
    write_xyz(folder / "truth.xyz", Atoms(symbols=list(p.species), positions=p.positions))
    return {"atoms_truth": int(len(p.positions))}


def _worker_step(argv: list) -> dict:
    """One `aet` command in this (child) process: its wall time and peak memory."""
    from aetcore.app.cli import main
    t0 = time.perf_counter()
    rc = main(argv + ["--quiet"])
    if rc != 0:
        raise SystemExit(f"aet {' '.join(argv)} exited {rc}")
    return {"seconds": time.perf_counter() - t0, "maxrss_mb": maxrss_mb()}


def _genfire_package(folder: Path, iterations: int) -> dict:
    """The genfire package on the same series with aetcore's iteration count, through the worker of
    bench/reconstruction.py (GenfireReconstructor, oversampling 3, full-box support, its own child
    process); wall time, peak memory, and the relative error of both volumes against the noise-free
    phantom (``aetcore.quality.metrics.relative_error``, best scale, after registering each
    volume to the phantom: the alignment step centres the particle, not the truth). The input is
    the aligned series aetcore's reconstruct step gets."""
    import mrcfile
    from scipy.ndimage import shift as nd_shift
    from skimage.registration import phase_cross_correlation

    from aetcore.io.readers import read_atoms
    from aetcore.io.results import load_step
    from aetcore.model.simulate import ground_truth_volume
    from aetcore.quality.metrics import relative_error
    al, _ = load_step(folder / "res" / "steps" / "align.h5")  # the input of aetcore's reconstruct step
    tilts, angles = np.asarray(al["tilts"], np.float32), np.asarray(al["euler"], np.float64)
    inp = folder / "genfire_input.npz"
    np.savez(inp, tilts=tilts, angles=angles, pixel_size=PIXEL)
    out = folder / "genfire_volume.npy"
    cmd = [sys.executable, os.path.join(os.path.dirname(os.path.abspath(__file__)), "reconstruction.py"),
           "--_worker", "genfire", "--_input", str(inp), "--_output", str(out), "--iterations", str(iterations)]
    p = subprocess.run(cmd, capture_output=True, text=True)
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith("WORKER_RESULT ")]
    if p.returncode != 0 or not lines:
        raise RuntimeError(f"genfire package worker failed:\n{p.stderr[-3000:]}")
    r = json.loads(lines[-1][len("WORKER_RESULT "):])
    truth = read_atoms(folder / "truth.xyz")
    n = tilts.shape[1]
    gt = ground_truth_volume(truth.positions, np.array(truth.get_chemical_symbols()), (n, n, n), PIXEL)
    with mrcfile.open(folder / "res" / "reconstruction.mrc") as m:
        ours = np.asarray(m.data, np.float32)

    def error(v):  # the alignment fixes the particle's centre, not the truth's: register first
        d = phase_cross_correlation(gt, v, upsample_factor=10)[0]
        return float(relative_error(nd_shift(v, d, order=3), gt))

    return {"seconds": r["wall"], "maxrss_mb": r["maxrss_mb"], "iterations": iterations,
            "error": error(np.load(out)), "aetcore_error": error(ours)}


def _score(folder: Path, res: str = "res") -> dict:
    from aetcore.io.readers import read_atoms
    from aetcore.quality.scoring import match_atoms
    truth = read_atoms(folder / "truth.xyz")
    got = read_atoms(folder / res)
    m = match_atoms(truth.positions, truth.get_chemical_symbols(), got.positions, got.get_chemical_symbols())
    return {"atoms": len(got), "recall": m.recall, "precision": m.precision, "rmsd_pm": m.rmsd_pm,
            "species_accuracy": m.species_accuracy}


def _exponent(x0, x1, y0, y1):
    if min(x0, x1, y0, y1) <= 0 or x0 == x1:
        return float("nan")
    return float(np.log(y1 / y0) / np.log(x1 / x0))


def _whole_run(folder: Path, threads: int) -> dict:
    """`aet run` with defaults on the series, in one child process: wall time, peak memory, the
    run's own per-step timings (summary.json) and the scores."""
    res = folder / "res_whole"
    argv = ["run", str(folder / "tilts.npy"), "--angles", str(folder / "angles.txt"), "--pixel-size", str(PIXEL),
            "--species", "Fe,Pt", "--out", str(res), "--threads", str(threads)]
    r = run_worker(__file__, "step", [json.dumps(argv)])
    s = json.loads((res / "summary.json").read_text())
    r["timings_s"] = s.get("timings_s")
    r["scores"] = _score(folder, "res_whole")
    return r


def _whole_line(r: dict) -> str:
    """One line on a size's `aet run` in one process: wall, peak, its step timings, its scores (and the
    sum of the per-step commands when they ran)."""
    w = r["whole_run"]
    q, t = w["scores"], w["timings_s"] or {}
    per_step = (f" (sum of the step commands {sum(r['steps'][s]['seconds'] for s in STEPS):.1f} s)"
                if r["steps"] else "")
    return (f"{r['n']:>4} ({r['atoms_truth']} atoms): `aet run` in one process {w['seconds']:.1f} s wall{per_step}, "
            f"peak {w['maxrss_mb']:.0f} MiB; its steps: "
            + ", ".join(f"{s} {t[s]:.1f}" for s in STEPS if t.get(s) is not None)
            + f"; recall {q['recall']:.3f}, precision {q['precision']:.3f}, RMSD {q['rmsd_pm']:.1f} pm, "
            f"species {q['species_accuracy']:.3f}")


def run_size(n: int, work: Path, seed: int, threads: int, with_genfire: bool, whole: bool = False,
             steps: bool = True) -> dict:
    from aetcore.app.config import default_config
    from aetcore.app.estimate import estimate_run
    folder = work / f"n{n}"
    folder.mkdir(parents=True, exist_ok=True)
    out = {"n": n}
    t0 = time.perf_counter()
    out.update(_simulate(n, folder, seed, threads))
    out["simulate_s"] = time.perf_counter() - t0
    res = str(folder / "res")
    est = estimate_run((ANGLES, n, n), default_config(), threads=threads)
    out["estimate_mib"] = {s: b / 2**20 for s, b in est.steps.items()}
    out["steps"] = {}
    for step in STEPS if steps else ():
        argv = [step, "--out", res, "--threads", str(threads)]
        if step == "preprocess":
            argv = [step, str(folder / "tilts.npy"), "--angles", str(folder / "angles.txt"),
                    "--pixel-size", str(PIXEL), "--species", "Fe,Pt", "--out", res, "--threads", str(threads)]
        r = run_worker(__file__, "step", [json.dumps(argv)])
        out["steps"][step] = r
        print(f"  n={n} {step:<11} {r['seconds']:8.1f} s {r['maxrss_mb']:8.0f} MiB", flush=True)
    out["scores"] = _score(folder) if steps else None
    out["whole_run"] = out["genfire_package"] = None
    if whole or not steps:
        w = out["whole_run"] = _whole_run(folder, threads)
        print(f"  n={n} aet run     {w['seconds']:8.1f} s {w['maxrss_mb']:8.0f} MiB", flush=True)
    if not steps:
        return out
    s = json.loads((folder / "res" / "summary.json").read_text())
    out["reconstruction"] = s.get("reconstruction")
    if with_genfire and n <= GENFIRE_PACKAGE_MAX:
        out["genfire_package"] = _genfire_package(folder, int(s["reconstruction"]["iterations_run"]))
    return out


def main() -> int:
    if len(sys.argv) > 2 and sys.argv[1] == "--_worker":
        kind, args = sys.argv[2], sys.argv[3:]
        if kind == "step":
            r = _worker_step(json.loads(args[0]))
        else:
            raise SystemExit(f"unknown worker {kind}")
        print("WORKER_RESULT " + json.dumps(r), flush=True)
        return 0
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="64,128,192,288", help="image sides, comma-separated")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--work", default=None, help="keep the data and results here (default: a temporary folder)")
    ap.add_argument("--json", default=None)
    ap.add_argument("--skip-genfire", action="store_true", help="do not run the genfire package")
    ap.add_argument("--whole-run", action="store_true",
                    help="also run `aet run` in one process on each series (its wall time and peak memory)")
    ap.add_argument("--whole-run-only", action="store_true",
                    help="only `aet run` in one process (no per-step commands, no genfire package)")
    a = ap.parse_args()
    sizes = [int(s) for s in a.sizes.split(",")]
    import aetcore
    print(f"aetcore {aetcore.__version__}; {cpu_model()}; {os.cpu_count()} cores; threads {a.threads}")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(a.work) if a.work else Path(tmp)
        rows = []
        for n in sizes:
            print(f"n = {n}:", flush=True)
            rows.append(run_size(n, work, a.seed, a.threads, not a.skip_genfire, a.whole_run,
                                 steps=not a.whole_run_only))
        if a.whole_run_only:
            for r in rows:
                print(_whole_line(r))
            if a.json:
                write_json(a.json, {"rows": rows, "threads": a.threads})
            return 0
        print()
        head = f"{'n':>4} {'atoms':>6} " + " ".join(f"{s[:9]:>10}" for s in STEPS) + f" {'total':>8}"
        print("seconds per step")
        print(head)
        for r in rows:
            sec = [r["steps"][s]["seconds"] for s in STEPS]
            print(f"{r['n']:>4} {r['atoms_truth']:>6} " + " ".join(f"{v:>10.1f}" for v in sec) + f" {sum(sec):>8.1f}")
        print("peak resident memory per step, MiB (estimate of `aet run` in brackets)")
        print(head)
        for r in rows:
            print(f"{r['n']:>4} {r['atoms_truth']:>6} " + " ".join(
                f"{r['steps'][s]['maxrss_mb']:>5.0f}[{r['estimate_mib'][s]:>4.0f}]" for s in STEPS))
        if len(rows) > 1:
            print("growth exponents between consecutive sizes: d log t / d log n (preprocess, align, "
                  "reconstruct), d log t / d log atoms (the others)")
            print(head)
            for r0, r1 in zip(rows, rows[1:]):
                ex = []
                for s in STEPS:
                    t0, t1 = r0["steps"][s]["seconds"], r1["steps"][s]["seconds"]
                    if s in ("preprocess", "align", "reconstruct"):
                        ex.append(_exponent(r0["n"], r1["n"], t0, t1))
                    else:
                        ex.append(_exponent(r0["atoms_truth"], r1["atoms_truth"], t0, t1))
                print(f"{r0['n']:>4}-{r1['n']:<4}      " + " ".join(f"{v:>10.2f}" for v in ex))
        print("quality against the truth")
        for r in rows:
            q = r["scores"]
            print(f"{r['n']:>4}: {q['atoms']} atoms for {r['atoms_truth']}, recall {q['recall']:.3f}, "
                  f"precision {q['precision']:.3f}, RMSD {q['rmsd_pm']:.1f} pm, species "
                  f"{q['species_accuracy']:.3f}")
        for r in rows:
            if r["whole_run"] is not None:
                print(_whole_line(r))
        print("the genfire package beside aetcore's reconstruct step (same series, same GENFIRE iterations; "
              "aetcore's time includes its automatic support and half-set FSC)")
        for r in rows:
            g = r["genfire_package"]
            if g is None:
                print(f"{r['n']:>4}: not run (above {GENFIRE_PACKAGE_MAX} px, --skip-genfire, or not installed)")
                continue
            ours = r["steps"]["reconstruct"]
            print(f"{r['n']:>4}: genfire {g['seconds']:.1f} s, {g['maxrss_mb']:.0f} MiB, error {g['error']:.3f}; "
                  f"aetcore {ours['seconds']:.1f} s, {ours['maxrss_mb']:.0f} MiB, error {g['aetcore_error']:.3f}; "
                  f"time ratio {g['seconds'] / ours['seconds']:.1f}x")
        if a.json:
            write_json(a.json, {"rows": rows, "threads": a.threads})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
