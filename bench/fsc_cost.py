"""The half-set FSC at a fraction of the cost (issue 14): old (two half-set GENFIRE runs with the
options of the full one) against new (each half with ``GenfireOptions.half_set_iterations``
iterations on the grid of ``GenfireOptions.half_set_oversampling``, the rest as the full run, as
the reconstruct step makes them for an object inside the field of view), in the same run.

Both ways reconstruct the even and the odd images from scratch, independently of each other and of
the full reconstruction (no warm start). Per case: the time of the full reconstruction (defaults,
as ``aet run``'s reconstruct step: automatic support, 100 iterations, oversampling 3), the time of
each FSC and the share it adds to the step (CPU time of the process, all threads: on a shared
machine the wall times of runs made one after the other vary with the other jobs; wall times
in parentheses), and the resolution at FSC 0.143 and 0.5 (Å) with the
difference of the two crossings in Fourier shells (``dk = freq[1] - freq[0]``; "≥" marks a curve
that never fell below the threshold, i.e. the resolution is Nyquist or better).

Cases: ``ta_film`` (area 1, 131 x 61 px, measured), ``wedge``, ``multigrain``, ``decahedron``
(``../shared/data/fept_dev``, detector offset removed and the recorded shifts undone, as
tests/steps/test_evidence_shared.py does), ``vesicle`` and ``resire_sample`` (``../shared/data``).

Run: ``PYTHONPATH=python python bench/fsc_cost.py [--cases ta_film wedge] [--json out.json]``.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from _common import write_json

HERE = Path(__file__).resolve().parent
SHARED = HERE.parent.parent / "shared" / "data"
FEPT = {"multigrain": "fept_multigrain_seed7001", "decahedron": "pt_decahedron_seed7002",
        "wedge": "fept_lowdose_wedge_seed7003"}


def load(case: str):
    """(tilts, angles in degrees, pixel size Å) of a case, aligned."""
    if case == "ta_film":
        from real_film import PIXEL, load_area
        tilts, angles, _, _ = load_area(1)
        return tilts, angles, PIXEL
    if case in FEPT:
        import tifffile
        from aetcore.model.noise import estimate_detector_noise
        from aetcore.steps.align import apply_alignment
        d = SHARED / "fept_dev" / FEPT[case]
        raw = tifffile.imread(d / "tilts.tif").astype(np.float32)
        meta = json.loads((d / "meta.json").read_text())
        offset = estimate_detector_noise(raw).offset
        du_dv = np.asarray(meta["misalignment"]["shifts_px"], np.float64)   # (du, dv) per image
        tilts = apply_alignment(raw - np.float32(offset), -du_dv[:, ::-1], order=1)
        return tilts, np.loadtxt(d / "angles.txt"), float(meta["pixel_size"])
    # MATLAB layouts, mapped as tests/conftest.py's shared_case (pinned by tests/steps/test_shared_data.py)
    d = SHARED / ("genfire_vesicle" if case == "vesicle" else "resire_sample")
    proj = np.load(d / "projections_matlab_layout.npy")
    angles = np.load(d / ("angles.npy" if case == "vesicle" else "angles_matlab.npy"))
    return np.ascontiguousarray(np.transpose(proj, (2, 1, 0)), np.float32), np.asarray(angles, np.float64), 1.0


def _crossings(freq, corr):
    from aetcore.quality.metrics import resolution_from_fsc
    out = {}
    for thr in (0.143, 0.5):
        res = resolution_from_fsc(freq, corr, thr)
        out[str(thr)] = {"resolution_A": res, "at_nyquist": bool(np.all(corr >= thr))}
    return out


def run_case(case: str, threads: int, variants=(), seeds: int = 1) -> dict:
    from aetcore import _core
    from aetcore.quality.metrics import half_set_fsc
    from aetcore.steps.reconstruct import genfire
    tilts, angles, ps = load(case)
    kw = dict(pixel_size=ps, threads=threads, seed=0, progress=False)
    t0, c0 = time.perf_counter(), time.process_time()
    full = genfire(tilts, angles, **kw)
    t_full, c_full = time.perf_counter() - t0, time.process_time() - c0
    out = {"case": case, "images": list(tilts.shape), "box": list(full.volume.shape),
           "grid_shape": list(full.parameters["grid_shape"]), "iterations_run": full.parameters["iterations_run"],
           "seconds_full": t_full, "cpu_seconds_full": c_full}
    g = _core.GenfireOptions()
    ways = {"old": {}, "new": {"iterations": g.half_set_iterations, "oversampling": g.half_set_oversampling}}
    if case == "ta_film":   # an extended object: the reconstruct step keeps the full run's grid for its halves
        del ways["new"]["oversampling"]
    for v in variants:   # other settings of the cheap way, in the JSON only (--variant)
        ways["os{:g}_it{}".format(*v) + ("" if len(v) < 3 else "_ext{:g}".format(v[2]))] = dict(
            zip(("oversampling", "iterations", "extension"), v))
    for way, extra in ways.items():
        for seed in range(seeds):
            runs = []

            def half(t, a, **_):
                r = genfire(t, a, volume_shape=full.volume.shape, **{**kw, "seed": seed}, **extra)
                runs.append(r.parameters["iterations_run"])
                return r
            t0, c0 = time.perf_counter(), time.process_time()
            freq, corr, _ = half_set_fsc(tilts, angles, half, pixel_size=ps, threads=threads)
            secs, cpu = time.perf_counter() - t0, time.process_time() - c0
            res = {"seconds_fsc": secs, "cpu_seconds_fsc": cpu, "added_percent": 100.0 * cpu / c_full,
                   "iterations_run": runs, "seed": seed,
                   "crossings": _crossings(freq, corr), "dk": float(freq[1] - freq[0]),
                   "freq": freq.tolist(), "corr": corr.tolist()}
            if seed == 0:
                out[way] = res
            else:   # the same way with another R-free split (--seeds): the spread of the crossings
                out[way].setdefault("other_seeds", []).append(res)
    for thr in ("0.143", "0.5"):
        a, b = (out[w]["crossings"][thr]["resolution_A"] for w in ("old", "new"))
        out[f"shift_shells_{thr}"] = abs(1.0 / a - 1.0 / b) / out["old"]["dk"]
        for way in ways:
            b = out[way]["crossings"][thr]["resolution_A"]
            out[way][f"shift_shells_{thr}"] = abs(1.0 / a - 1.0 / b) / out["old"]["dk"]
    if seeds > 1:
        dk = out["old"]["dk"]
        ref = 1.0 / out["old"]["crossings"]["0.5"]["resolution_A"]
        for way in ways:
            allr = [out[way]] + out[way].get("other_seeds", [])
            for thr in ("0.143", "0.5"):
                k = [1.0 / r["crossings"][thr]["resolution_A"] for r in allr]
                out[way][f"seed_crossings_{thr}"] = [1.0 / v for v in k]
                out[way][f"seed_spread_shells_{thr}"] = (max(k) - min(k)) / dk
            out[way]["seed_offsets_shells_0.5"] = [(1.0 / r["crossings"]["0.5"]["resolution_A"] - ref) / dk
                                                   for r in allr]
    return out


def _res(c) -> str:
    return ("≥ " if c["at_nyquist"] else "") + f"{c['resolution_A']:.2f}"


def row(o) -> str:
    old, new = o["old"], o["new"]
    return (f"| {o['case']} | {o['images'][0]} x {o['images'][1]} x {o['images'][2]} | "
            f"{' x '.join(map(str, o['box']))} | {o['cpu_seconds_full']:.0f} ({o['seconds_full']:.0f}) | "
            f"{old['cpu_seconds_fsc']:.0f} ({old['seconds_fsc']:.0f}), +{old['added_percent']:.0f} % | "
            f"{new['cpu_seconds_fsc']:.0f} ({new['seconds_fsc']:.0f}), +{new['added_percent']:.0f} % | "
            f"{_res(old['crossings']['0.143'])} / {_res(new['crossings']['0.143'])} | "
            f"{_res(old['crossings']['0.5'])} / {_res(new['crossings']['0.5'])} | "
            f"{o['shift_shells_0.143']:.2f} / {o['shift_shells_0.5']:.2f} |")


HEADER = ("| case | images | box | reconstruction CPU s (wall) | FSC old: CPU s (wall), added | "
          "FSC new: CPU s (wall), added | "
          "0.143: old / new Å | 0.5: old / new Å | shift, shells (0.143 / 0.5) |\n"
          "|---|---|---|---|---|---|---|---|---|")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cases", nargs="+", default=["vesicle", "resire_sample", "ta_film", "wedge", "multigrain",
                                                  "decahedron"])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json")
    p.add_argument("--variant", action="append", default=[], metavar="OS,ITERATIONS[,EXTENSION]",
                   help="also time another cheap setting (oversampling, iterations[, extension])")
    p.add_argument("--seeds", type=int, default=1,
                   help="run each FSC with this many R-free splits (seeds 0..N-1) and print the spread of "
                        "its crossings: how far the reference itself moves")
    a = p.parse_args(argv)
    results = []
    print(HEADER, flush=True)
    for case in a.cases:
        o = run_case(case, a.threads, [tuple(t(x) for t, x in zip((float, int, float), v.split(",")))
                                       for v in a.variant], a.seeds)
        results.append(o)
        print(row(o), flush=True)
        for way, w in o.items():
            if isinstance(w, dict) and way.startswith("os"):
                print(f"  {way}: {w['cpu_seconds_fsc']:.0f} CPU s (+{w['added_percent']:.0f} %), shift {w['shift_shells_0.143']:.2f}"
                      f" / {w['shift_shells_0.5']:.2f} shells", flush=True)
        for way, w in o.items():
            if isinstance(w, dict) and "seed_spread_shells_0.5" in w:
                print(f"  {way} over {a.seeds} R-free seeds: 0.5 crossings "
                      + ", ".join(f"{v:.2f}" for v in w["seed_crossings_0.5"])
                      + f" Å (spread {w['seed_spread_shells_0.5']:.2f} shells; offsets from old seed 0: "
                      + ", ".join(f"{v:+.2f}" for v in w["seed_offsets_shells_0.5"])
                      + f"); 0.143 spread {w['seed_spread_shells_0.143']:.2f} shells", flush=True)
        if a.json:
            write_json(a.json, {"results": results})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
