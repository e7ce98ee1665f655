"""GENFIRE in a box that follows the data: time and peak memory of one reconstruction of a Ta film
area (../shared/data/ta_film, 131 x 61 px for area 1) in its default box (nx, ny, nx) (issue 14).

Run: ``PYTHONPATH=python python bench/genfire_box.py [--area 1] [--iterations 20] [--threads 2]``
(or under ``/usr/bin/time -v`` for the process's peak resident memory). Prints one JSON line: the
box, the Fourier grid (side, and per axis where the core reports it), the core's memory estimate
(``_core.genfire_memory_bytes`` where bound), the wall time per stage and the peak resident memory
(VmHWM) of the process.
"""
from __future__ import annotations

import argparse
import json
import time

from _common import maxrss_mb
from real_film import PIXEL, load_area


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--area", type=int, default=1)
    p.add_argument("--iterations", type=int, default=20, help="GENFIRE iterations (no early stop within them)")
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args(argv)
    import numpy as np
    from aetcore import _core
    from aetcore.steps.reconstruct import genfire
    tilts, angles, _, _ = load_area(a.area)
    ny, nx = tilts.shape[1:]
    rss0 = maxrss_mb()
    t0 = time.perf_counter()
    # patience = iterations: every asked iteration runs, so before/after compare the same work
    rec = genfire(tilts, angles, pixel_size=PIXEL, iterations=a.iterations, patience=a.iterations,
                  threads=a.threads, seed=0, progress=False)
    seconds = time.perf_counter() - t0
    out = {"area": a.area, "images": list(tilts.shape), "box": list(rec.volume.shape),
           "grid_size": rec.parameters["grid_size"], "grid_shape": rec.parameters.get("grid_shape"),
           "iterations_run": rec.parameters["iterations_run"], "seconds": round(seconds, 2),
           "seconds_per_iteration": round(rec.timings["iterations"] / rec.parameters["iterations_run"], 3),
           "timings": {k: round(float(v), 2) for k, v in rec.timings.items()},
           "peak_rss_mb": round(maxrss_mb(), 1), "rss_before_mb": round(rss0, 1),
           "final_error": round(float(rec.errors[-1]), 5)}
    if hasattr(_core, "genfire_memory_bytes"):
        opt = _core.GenfireOptions()
        opt.threads = a.threads
        out["estimate_mb"] = round(_core.genfire_memory_bytes(tilts.shape[0], ny, nx, *rec.volume.shape, opt) / 2**20, 1)
    out["volume_sum"] = float(np.sum(rec.volume, dtype=np.float64))
    print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
