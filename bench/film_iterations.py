"""How many iterations the film's padded RESIRE needs: plain vs accelerated, full volume and half sets.

For one area of ../shared/data/ta_film (default 1), the extended-object reconstruction of ``aet run``
(``aetcore.steps.extended.padded_resire``: RESIRE in a box padded along x, cropped back) is run once
per method to the largest checkpoint; the cropped volume at every checkpoint is sent through the rest
of ``aet run`` with defaults (slab, trace, classify, refine; the half-set FSC off) and the atoms are
scored against the published model as ``bench/real_film.py --score-run`` does (recall, precision,
RMSD, R1). ``--fsc`` also reconstructs the even and odd images from scratch with the accelerated
descent and compares the half-set FSC at every checkpoint with that of halves run to
``--fsc-reference`` plain iterations (the crossings of 0.143 and 0.5, and their shift in Fourier
shells).

Run: ``PYTHONPATH=python python bench/film_iterations.py [--area 1] [--methods accelerated plain]
[--checkpoints 10,20,25,30,40] [--pad 0.375] [--fsc]``.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import real_film  # noqa: E402

import aetcore.app.config  # noqa: E402,F401  (reads padded_resire's defaults before it is replaced below)
import aetcore.steps.extended as extended  # noqa: E402
from aetcore.app.folder import run  # noqa: E402
from aetcore.model.projection import backproject_volume, project_volume  # noqa: E402
from aetcore.quality.metrics import fsc, resolution_from_fsc  # noqa: E402
from aetcore.steps import reconstruct as R  # noqa: E402

PADDED_RESIRE = extended.padded_resire


def snapshots(tilts, angles, pad, checkpoints, accelerate, threads):
    """The cropped padded-RESIRE volume at every checkpoint of one run (``resire``'s own loops), its
    residuals, and the wall and CPU seconds."""
    K, ny, nx = tilts.shape
    p = int(round(pad * nx))
    shape = (nx, ny, nx + 2 * p)
    t0, c0 = time.perf_counter(), time.process_time()
    row = backproject_volume(project_volume(np.ones(shape, np.float32), angles, detector_shape=(ny, nx),
                                            threads=threads), angles, shape, threads=threads)
    step = np.float32(1.0 / float(row.max()))          # resire's step 1 / (L K), L = max row sum / K
    snaps = {}

    def keep(k, x):
        if k in checkpoints:
            snaps[k] = np.ascontiguousarray(x[:, :, p:p + nx])

    x = np.zeros(shape, np.float32)
    n = max(checkpoints)
    if accelerate:
        errors, _ = R._accelerated_descent(tilts, angles, shape, x, step, True, n, threads, False, "", callback=keep)
    else:
        errors = []
        for k in range(n):
            r = project_volume(x, angles, detector_shape=(ny, nx), threads=threads)
            errors.append(R._residual(r, tilts))
            r -= tilts
            x -= step * backproject_volume(r, angles, shape, threads=threads)
            np.maximum(x, 0, out=x)
            keep(k + 1, x)
    return snaps, np.asarray(errors), time.perf_counter() - t0, time.process_time() - c0


def score_volume(area, volume, errors, pad, threads, folder):
    """``aet run`` of the area with `volume` as its reconstruction (half-set FSC off), scored."""
    def fixed(t, a, **kw):
        return R.Reconstruction(volume=volume, method="resire", errors=errors, pixel_size=real_film.PIXEL,
                                parameters=dict(iterations=len(errors), iterations_run=len(errors), pad=pad))
    extended.padded_resire = fixed
    try:
        run(real_film.DATA / "projections" / f"Projections_area{area}.mat", real_film.DATA / "angles.mat",
            real_film.PIXEL, ["Ta"], folder, angle_convention="resire", threads=threads,
            config={"reconstruct": {"half_set_fsc": False}})
    finally:
        extended.padded_resire = PADDED_RESIRE
    return real_film.score_run(area, folder)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--area", type=int, default=1)
    ap.add_argument("--methods", nargs="+", default=["accelerated", "plain"], choices=["accelerated", "plain"])
    ap.add_argument("--checkpoints", default="10,15,20,25,30,40,50,70,100")
    ap.add_argument("--pad", type=float, default=0.375)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--fsc", action="store_true", help="also the half-set FSC against plain halves")
    ap.add_argument("--fsc-checkpoints", default="8,10,12,15,20,25")
    ap.add_argument("--fsc-reference", type=int, default=100, help="plain iterations of the reference halves")
    args = ap.parse_args(argv)
    from aetcore.io import read_angles, read_tilts
    from aetcore.model.geometry import angles_from_convention
    tilts = read_tilts(real_film.DATA / "projections" / f"Projections_area{args.area}.mat")
    angles = angles_from_convention(read_angles(real_film.DATA / "angles.mat", tilts.shape[0]), "resire")
    tilts = np.ascontiguousarray(tilts, np.float32)
    cps = sorted(int(c) for c in args.checkpoints.split(","))
    print("| method | iterations | residual | recall | precision | RMSD pm (x/y/z) | pairs / published | "
          "model atoms in the film | R1 |\n|---|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for m in args.methods:
            snaps, errors, wall, cpu = snapshots(tilts, angles, args.pad, cps, m == "accelerated", args.threads)
            for k in cps:
                d = score_volume(args.area, snaps[k], errors[:k], args.pad, args.threads, Path(tmp) / f"{m}{k}")
                ax = d["rmsd_axes_pm"]
                print(f"| {m} | {k} | {errors[k - 1]:.4f} | {100 * d['recall']:.1f} % | {100 * d['precision']:.1f} % | "
                      f"{d['rmsd_pm']:.1f} ({ax[0]:.0f}/{ax[1]:.0f}/{ax[2]:.0f}) | {d['n_pairs']}/{d['n_published']} | "
                      f"{d['n_model']} (+{d['outside_film_z']} outside the film) | {d['r1']:.3f} |", flush=True)
            print(f"({m}: {max(cps)} iterations in {wall:.0f} s wall, {cpu:.0f} s CPU)", flush=True)
    if args.fsc:
        fcps = sorted(int(c) for c in args.fsc_checkpoints.split(","))
        halves = [slice(0, None, 2), slice(1, None, 2)]

        def half_volumes(accelerate, checkpoints):
            out = []
            for sl in halves:
                s, _, _, _ = snapshots(np.ascontiguousarray(tilts[sl]), np.ascontiguousarray(angles[sl]), args.pad,
                                       checkpoints, accelerate, args.threads)
                out.append(s)
            return out

        ref = half_volumes(False, [args.fsc_reference])
        f0, c0 = fsc(ref[0][args.fsc_reference], ref[1][args.fsc_reference], pixel_size=real_film.PIXEL,
                     threads=args.threads)
        r0 = {th: resolution_from_fsc(f0, c0, th) for th in (0.143, 0.5)}
        df = f0[1] - f0[0]
        fast = half_volumes(True, fcps)
        print(f"\nhalf-set FSC, reference: plain {args.fsc_reference} iterations per half: "
              f"0.143 {r0[0.143]:.3f} Å, 0.5 {r0[0.5]:.3f} Å (Nyquist {2 * real_film.PIXEL:.3f} Å)")
        print("| accelerated iterations per half | 0.143 (Å) | shift (shells) | 0.5 (Å) | shift (shells) | max abs FSC difference |\n"
              "|---|---|---|---|---|---|")
        for k in fcps:
            f, c = fsc(fast[0][k], fast[1][k], pixel_size=real_film.PIXEL, threads=args.threads)
            r = {th: resolution_from_fsc(f, c, th) for th in (0.143, 0.5)}
            sh = {th: (1 / r[th] - 1 / r0[th]) / df for th in r}
            print(f"| {k} | {r[0.143]:.3f} | {sh[0.143]:+.2f} | {r[0.5]:.3f} | {sh[0.5]:+.2f} | "
                  f"{float(np.abs(c - c0).max()):.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
