"""Dose sweep: the whole chain (`aet run` with defaults) on raw, misaligned series at realistic and
high doses, scored against the truth, next to a naive peer pipeline on the same aligned input.

Cases:
* the three series of ../shared/data/fept_dev (made outside aetcore, README there): FePt multigrain
  (300 counts per Pt atom), Pt decahedron (50 counts per Pt atom), Fe-rich FePt low-dose wedge
  (60 counts per Pt atom, 31 images over ±60°);
* aetcore-simulated FePt series (`aetcore.model.simulate`) at 5e4, 1e4, 2e3 and 5e2 e/Å² per image,
  misaligned by random shifts.

For every case the chain runs with the default configuration (`aetcore.run`, the body of `aet run`),
and is scored (one-to-one matching within 1 Å after the best global translation,
`aetcore.quality.scoring.match_atoms`) at three points: traced and classified ("trace"), after the
evidence step ("evidence"), and the final refined model ("final"). The peer is the naive pipeline of
issue 12: WBP, then 25 SIRT iterations started from it (positivity), local maxima (largest in a cube
of ±1.2 Å, above 5 % of the volume's maximum), intensity-weighted centroid in a 3x3x3 box, k-means on the
peak intensities into n_species + 1 clusters (the dimmest is "not an atom"); it gets the series
aetcore's alignment step produced (the same input as aetcore's reconstruction).

    python bench/dose.py                        # everything (~1-2 h on 2 busy cores)
    python bench/dose.py --cases shared         # only the three shared series
    python bench/dose.py --cases sim --sim-doses 5e4,5e2
    python bench/dose.py --work DIR --resume    # keep the results folders and resume them

It prints a table (one line per case, method and stage) and writes --json if given.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import write_json  # noqa: E402

HERE = Path(__file__).resolve().parent
SHARED = HERE.parent.parent / "shared" / "data" / "fept_dev"
SHARED_CASES = {"fept_multigrain_seed7001": ("Fe", "Pt"), "pt_decahedron_seed7002": ("Pt",),
                "fept_lowdose_wedge_seed7003": ("Fe", "Pt")}
SIM_DOSES = (5e4, 1e4, 2e3, 5e2)
PIXEL = 0.4


def score(truth_pos, truth_sp, pos, sp) -> dict:
    from aetcore.quality.scoring import match_atoms
    sp = np.asarray(sp).astype(str)
    m = match_atoms(truth_pos, list(truth_sp), pos, list(sp), max_distance=1.0)
    matched = np.zeros(len(sp), bool)
    matched[m.pairs[:, 1]] = True
    species = sorted(set(np.asarray(truth_sp).astype(str)) | set(sp))
    return {"n": int(len(sp)), "n_truth": int(m.n_truth), "recall": m.recall, "precision": m.precision,
            "rmsd_pm": m.rmsd_pm, "species_accuracy": m.species_accuracy,
            "fe_recall": (m.recall_by_species or {}).get("Fe"),
            "spurious": {s: int(((sp == s) & ~matched).sum()) for s in species}}


# ------------------------------------------------------------------------------------------ inputs
def simulated_case(dose: float, work: Path, seed: int, radius: float) -> tuple:
    """A misaligned FePt series from aetcore's simulator, written as tilts.npy + angles.txt + truth."""
    from aetcore.model import simulate
    d = work / f"sim_{dose:g}"
    d.mkdir(parents=True, exist_ok=True)
    part = simulate.fept_particle(radius=radius, orientation="random", seed=seed)
    n = int(2 * np.ceil((2 * radius + 12.0) / PIXEL / 2 / 8) * 8)        # particle + 6 Å each side
    angles = simulate.angles_range(-70, 70, 51)
    s = simulate.tilt_series(part.positions, part.species, angles, (n, n), PIXEL, dose=dose, shifts="random",
                             max_shift=2.0, seed=seed + 1)
    np.save(d / "tilts.npy", np.asarray(s.tilts, np.float32))
    np.savetxt(d / "angles.txt", angles, fmt="%.4f")
    return d / "tilts.npy", d / "angles.txt", part.positions, np.asarray(part.species).astype(str), ("Fe", "Pt")


def shared_case(name: str) -> tuple:
    import ase.io
    d = SHARED / name
    t = ase.io.read(d / "truth.xyz")
    return d / "tilts.tif", d / "angles.txt", t.positions, np.array(t.get_chemical_symbols()), SHARED_CASES[name]


# ------------------------------------------------------------------------------------------ aetcore
def run_aetcore(tilts, angles, species, out: Path, resume: bool, threads) -> dict:
    import h5py
    import ase.io
    import aetcore
    t0 = time.perf_counter()
    summary = aetcore.run(str(tilts), str(angles), PIXEL, list(species), str(out), resume=resume, threads=threads)
    seconds = time.perf_counter() - t0
    stages = {}
    with h5py.File(out / "steps" / "trace.h5") as f:
        tpos = f["positions"][()]
    with h5py.File(out / "steps" / "classify.h5") as f:
        lab = f["labels"][()]
    keep = lab >= 0
    stages["trace"] = (tpos[keep], np.asarray(species)[lab[keep]])
    ev_file = out / "steps" / "evidence.h5"
    if ev_file.exists():
        with h5py.File(ev_file) as f:
            stages["evidence"] = (f["positions"][()], f["symbols"][()].astype(str))
    at = ase.io.read(out / "atoms.xyz")
    stages["final"] = (at.positions, np.array(at.get_chemical_symbols()))
    timings = summary.get("timings_s", {})
    return {"stages": stages, "seconds": seconds, "timings": timings, "r1": (summary.get("r1_before"),
                                                                             summary.get("r1_after"))}


# ------------------------------------------------------------------------------------------ peer
def run_peer(aligned, angles, species, threads) -> dict:
    """WBP + 25 SIRT iterations, local maxima, k-means (the naive pipeline of issue 12)."""
    from scipy import ndimage
    from sklearn.cluster import KMeans
    from aetcore.model.projection import backproject_volume, project_volume
    from aetcore.steps.reconstruct import wbp
    t0 = time.perf_counter()
    n = aligned.shape[2]
    shape = (n, aligned.shape[1], n)
    x = np.maximum(wbp(aligned, angles, volume_shape=shape, threads=threads).volume, 0)
    row = project_volume(np.ones(shape, np.float32), angles, threads=threads)
    col = backproject_volume(np.ones_like(aligned), angles, shape, threads=threads)
    rinv = np.where(row > 1e-6, 1.0 / np.maximum(row, 1e-6), 0).astype(np.float32)
    cinv = np.where(col > 1e-6, 1.0 / np.maximum(col, 1e-6), 0).astype(np.float32)
    for _ in range(25):                                  # SIRT iterations (a loop over iterations)
        res = (aligned - project_volume(x, angles, threads=threads)) * rinv
        x = np.maximum(x + cinv * backproject_volume(res, angles, shape, threads=threads), 0).astype(np.float32)
    md = int(round(1.2 / PIXEL))     # fcc neighbours are 2.7 Å apart, 1.9 Å along two axes
    peak = (x == ndimage.maximum_filter(x, size=2 * md + 1)) & (x > 0.05 * x.max())
    idx = np.argwhere(peak)
    # intensity-weighted centroid in the 3x3x3 box and the box sum as the intensity
    off = np.stack(np.meshgrid(*[np.arange(-1, 2)] * 3, indexing="ij"), -1).reshape(-1, 3)
    pts = np.clip(idx[:, None, :] + off[None], 0, np.array(shape) - 1)
    w = x[tuple(pts.reshape(-1, 3).T)].reshape(len(idx), 27).astype(np.float64)
    cen = (w[..., None] * pts).sum(1) / np.maximum(w.sum(1), 1e-30)[:, None]
    intensity = w.sum(1)
    k = len(species) + 1
    lab = KMeans(n_clusters=k, n_init=10, random_state=0).fit_predict(intensity[:, None])
    order = np.argsort([intensity[lab == j].mean() for j in range(k)])
    rank = np.empty(k, int)
    rank[order] = np.arange(k)
    r = rank[lab]
    from ase.data import atomic_numbers
    by_z = sorted(species, key=lambda s: atomic_numbers[s])
    keep = r > 0
    pos = (cen[keep][:, ::-1] - np.array([n // 2, shape[1] // 2, n // 2])) * PIXEL
    sp = np.array(by_z)[r[keep] - 1]
    return {"stages": {"final": (pos, sp)}, "seconds": time.perf_counter() - t0}


# ------------------------------------------------------------------------------------------ table
def fmt_row(case, method, stage, s, seconds=None) -> str:
    pct = lambda v: "n/a" if v is None or not np.isfinite(v) else f"{100 * v:.1f}"  # noqa: E731
    spur = ", ".join(f"{k} {v}" for k, v in s["spurious"].items())
    return (f"| {case} | {method} | {stage} | {s['n']}/{s['n_truth']} | {pct(s['recall'])} | {pct(s['precision'])} | "
            f"{s['rmsd_pm']:.1f} | {pct(s['species_accuracy'])} | {pct(s['fe_recall'])} | {spur} | "
            f"{'' if seconds is None else f'{seconds:.0f}'} |")


HEADER = ("| case | method | stage | atoms/truth | recall % | precision % | RMSD pm | species acc % | Fe recall % | "
          "spurious | time s |\n|---|---|---|---|---|---|---|---|---|---|---|")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cases", choices=("all", "shared", "sim"), default="all")
    ap.add_argument("--only", default=None, help="comma-separated case names (shared folder names or sim_<dose>)")
    ap.add_argument("--sim-doses", default=",".join(f"{d:g}" for d in SIM_DOSES), help="e/Å² per image")
    ap.add_argument("--sim-radius", type=float, default=14.0, help="Å (simulated particle)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--work", default=None, help="folder for the results folders (default: a temporary one)")
    ap.add_argument("--resume", action="store_true", help="resume the results folders in --work")
    ap.add_argument("--skip-peer", action="store_true")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--json", default=None)
    a = ap.parse_args(argv)
    import tempfile
    work = Path(a.work) if a.work else Path(tempfile.mkdtemp(prefix="aet_dose_"))
    work.mkdir(parents=True, exist_ok=True)
    cases = []
    if a.cases in ("all", "shared"):
        cases += [(n, lambda n=n: shared_case(n)) for n in SHARED_CASES if (SHARED / n).exists()]
    if a.cases in ("all", "sim"):
        for d in (float(v) for v in a.sim_doses.split(",")):
            cases.append((f"sim_{d:g}", lambda d=d: simulated_case(d, work, a.seed, a.sim_radius)))
    if a.only:
        names = set(a.only.split(","))
        cases = [c for c in cases if c[0] in names]
    try:
        commit = subprocess.run(["git", "-C", str(HERE), "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True).stdout.strip()
    except OSError:
        commit = "unknown"
    print(f"aetcore dose sweep, commit {commit}, work folder {work}")
    print(HEADER, flush=True)
    results = {"commit": commit, "cases": {}}
    import h5py
    for name, make in cases:
        tilts, angles, tpos, tsp, species = make()
        out = work / f"run_{name}"
        r = run_aetcore(tilts, angles, species, out, a.resume, a.threads)
        rows = {}
        for stage, (p, s) in r["stages"].items():
            rows[f"aetcore/{stage}"] = sc = score(tpos, tsp, p, s)
            print(fmt_row(name, "aetcore", stage, sc, r["seconds"] if stage == "final" else None), flush=True)
        if not a.skip_peer:
            with h5py.File(out / "steps" / "align.h5") as f:
                aligned, euler = f["tilts"][()], f["euler"][()]
            pr = run_peer(aligned, euler, species, a.threads)
            rows["peer/final"] = sc = score(tpos, tsp, *pr["stages"]["final"])
            print(fmt_row(name, "peer (WBP+SIRT25, maxima, k-means)", "final", sc, pr["seconds"]), flush=True)
        results["cases"][name] = {"scores": rows, "seconds": r["seconds"], "timings": r["timings"], "r1": r["r1"]}
        if a.json:
            write_json(a.json, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
