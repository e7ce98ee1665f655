"""The refinement's diagonal preconditioner (``precondition``, aetcore.steps.refine.refine): time and
RMSD against the truth with and without it, at several iteration counts, in the same run on the same
input.

Cases:
* the three series of ../shared/data/fept_dev (made outside aetcore): detector offset estimated from
  the data and removed, the recorded shifts undone (as tests/steps/test_evidence_shared.py does);
* an aetcore-simulated FePt particle (``--radius`` Å, default 24: about 5 000 atoms; 60 angles over
  ±70°, 160 px at 0.4 Å, 5e4 e/Å², shifts none).

Every refinement starts from the truth displaced by 0.1 Å RMS per coordinate (17 pm), with the
species right and the default model; defaults otherwise (``--threads``, default 2). The "peer" is
the same refinement without the preconditioner at the old default of 50 iterations.

    PYTHONPATH=python python bench/refine_precondition.py [--cases shared sim] [--radius 24] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import write_json  # noqa: E402

SHARED = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "fept_dev"
SETTINGS = ((False, 50), (False, 25), (True, 10), (True, 25), (True, 50))


def shared_cases():
    import ase.io
    import tifffile
    from scipy import ndimage
    from aetcore.model.noise import estimate_detector_noise
    for d in sorted(p for p in SHARED.iterdir() if p.is_dir()):
        raw = tifffile.imread(d / "tilts.tif").astype(np.float32)
        meta = json.loads((d / "meta.json").read_text())
        offset = estimate_detector_noise(raw).offset
        shifts = np.asarray(meta["misalignment"]["shifts_px"])
        tilts = np.stack([ndimage.shift(img - offset, (-dv, -du), order=1, mode="nearest")
                          for img, (du, dv) in zip(raw, shifts)]).astype(np.float32)
        truth = ase.io.read(d / "truth.xyz")
        yield (d.name, tilts, np.loadtxt(d / "angles.txt"), float(meta["pixel_size"]), truth.positions,
               np.array(truth.get_chemical_symbols()))


def sim_case(radius: float, threads: int):
    from aetcore.model.simulate import angles_range, fept_particle, tilt_series
    p = fept_particle(radius, orientation="random", antisite=0.02, thermal=0.05, seed=0)
    ang = angles_range(-70, 70, 60, uneven=0.3, seed=0)
    s = tilt_series(p.positions, p.species, ang, (160, 160), 0.4, dose=5e4, max_shift=0.0, seed=0,
                    threads=threads)
    yield f"aetcore FePt r={radius:g} Å", s.tilts, ang, 0.4, p.positions, np.asarray(p.species)


def main(argv=None) -> int:
    from aetcore.steps.refine import refine
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", nargs="+", choices=("shared", "sim"), default=["shared", "sim"])
    ap.add_argument("--radius", type=float, default=24.0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json")
    a = ap.parse_args(argv)
    rows = []
    print("| case | atoms | preconditioned | iterations (max) | iterations run | time s | RMSD pm (x/y/z) | Fe RMSD pm | loss / peer's |")
    print("|---|---|---|---|---|---|---|---|---|")
    gens = ([shared_cases()] if "shared" in a.cases else []) + ([sim_case(a.radius, a.threads)] if "sim" in a.cases else [])
    for gen in gens:
        for name, tilts, ang, ps, pos, sp in gen:
            start = pos + np.random.default_rng(1).normal(0, 0.1, pos.shape)
            fe = sp == "Fe"
            peer_loss = None
            for pre, its in SETTINGS:
                t0 = time.perf_counter()
                r = refine(start, sp, tilts, ang, ps, iterations=its, precondition=pre, threads=a.threads)
                secs = time.perf_counter() - t0
                d = r.positions - pos
                axes = 100 * np.sqrt((d ** 2).mean(axis=0))
                rmsd = float(np.sqrt((axes ** 2).sum()))
                fe_rmsd = 100 * float(np.sqrt((d[fe] ** 2).sum(axis=1).mean())) if fe.any() else float("nan")
                loss = float(r.loss_history[-1])
                if peer_loss is None:
                    peer_loss = loss
                row = dict(case=name, atoms=len(pos), precondition=pre, iterations=its, n_iterations=r.n_iterations,
                           seconds=secs, rmsd_pm=rmsd, rmsd_axes_pm=axes.tolist(), fe_rmsd_pm=fe_rmsd,
                           loss=loss, loss_ratio=loss / peer_loss)
                rows.append(row)
                print(f"| {name} | {len(pos)} | {'yes' if pre else 'no'} | {its} | {r.n_iterations} | {secs:.1f} | "
                      f"{rmsd:.2f} ({axes[0]:.1f}/{axes[1]:.1f}/{axes[2]:.1f}) | {fe_rmsd:.2f} | "
                      f"{loss / peer_loss:.5f} |", flush=True)
                if a.json:
                    write_json(a.json, {"rows": rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
