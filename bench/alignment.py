#!/usr/bin/env python
"""Alignment benchmark: preprocess (frame registration + average) and align on one simulated series,
against a scikit-image phase_cross_correlation loop on the same frames.

usage:
    python bench/alignment.py [--size 256] [--angles 60] [--frames 5] [--radius 30] [--max-shift 3]
                              [--drift 0.3] [--dose 5e4] [--rotation 1.5] [--matching-iterations 3]
                              [--recon-iterations 10] [--skip-matching] [--seed 0] [--threads N]
                              [--json out.json]

Input (the same for every method): aetcore.simulate.fept_particle(--radius, seed), --size^2 pixels at
0.4 Å, --angles projections over -70..+70 deg about y, --frames frames per angle with random
misalignment uniform in +-(--max-shift) px per component (``tilt_series(shifts="random")``), drift
--drift px per frame in a random direction per angle (rigid: the simulation has no raster shear,
so frame registration runs with ``shear=False``), every noiseless frame rotated in-plane by
--rotation deg (``scipy.ndimage.rotate`` about the array centre: a tilt axis off the image y axis),
then Poisson noise at --dose e/Å^2 per angle split over the frames.

1. Frame registration of every angle to its first frame:
   ``aetcore.preprocess.preprocess(frames, shear=False, reference="first", upsample=20)``
   (register_frames + average, then plane background and normalisation) against a Python loop of
   ``skimage.registration.phase_cross_correlation(frames[k, 0], frames[k, f], upsample_factor=20)``
   (default normalization="phase", and normalization=None) with the frames then Fourier-shifted
   and averaged; register_frames alone (registration + average, as the loop) is timed too and is
   what the ratios compare. Error: RMS over every frame f >= 1 of (found - true) shift, true = the
   simulation's ``-(frame_shifts[k, f] - frame_shifts[k, 0])`` turned by the in-plane rotation.
2. Tilt-series alignment of the preprocessed series with ``aetcore.align.align`` defaults:
   tilt-axis rotation, centre of mass (x), common line (y); no projection matching. Errors: the
   rotation found + --rotation (deg), and the RMS of (found + series.shifts) after removing the
   least-squares object-translation mode (dy = t_y, dx = t_x cos(theta) - t_z sin(theta)), the
   gauge of align.py's docstring. Then, unless --skip-matching, projection matching from those
   shifts (binned automatically to <= 96 px, SIRT --recon-iterations, at most
   --matching-iterations rounds), timed and scored the same way.

Target: preprocess + align (defaults) < 30 s on 2 cores. A benchmark, not a test: it
prints one table and exits 0.
"""
from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import time

import numpy as np

from _common import cpu_model as _cpu_model, flag as _flag, maxrss_mb as _maxrss_mb, write_json

PIXEL_SIZE = 0.4
TILT_RANGE = (-70.0, 70.0)
UPSAMPLE = 20
TARGET_TIME = 30.0      # s, preprocess + align (rotation + COM + common line), 2 cores


def gauge_free_rms(found, truth, theta_deg):
    """RMS (px) of found - truth (n, 2) after removing the object-translation mode of a single-axis tilt."""
    th = np.radians(theta_deg)
    d = np.asarray(found, np.float64) - truth
    ay = np.ones((len(th), 1))
    ax = np.stack([np.cos(th), -np.sin(th)], axis=1)
    ry = d[:, 0] - ay @ np.linalg.lstsq(ay, d[:, 0], rcond=None)[0]
    rx = d[:, 1] - ax @ np.linalg.lstsq(ax, d[:, 1], rcond=None)[0]
    return float(np.sqrt((ry ** 2 + rx ** 2).mean()))


def frame_rms(found, truth):
    """RMS (px) of the vector error over frames 1.. (frame 0 is the reference)."""
    d = (np.asarray(found) - truth)[:, 1:]
    return float(np.sqrt((d ** 2).sum(axis=-1).mean()))


def skimage_loop(frames, normalization):
    """Register frames[k, f] to frames[k, 0] with phase_cross_correlation, Fourier-shift, average."""
    from scipy import ndimage
    from skimage.registration import phase_cross_correlation
    A, N = frames.shape[:2]
    shifts = np.zeros((A, N, 2))
    avg = np.empty((A,) + frames.shape[2:], np.float32)
    for k in range(A):
        acc = frames[k, 0].astype(np.float64)
        for f in range(1, N):
            s, _, _ = phase_cross_correlation(frames[k, 0], frames[k, f], upsample_factor=UPSAMPLE,
                                              normalization=normalization)
            shifts[k, f] = s
            acc += np.fft.ifft2(ndimage.fourier_shift(np.fft.fft2(frames[k, f]), s)).real
        avg[k] = acc / N
    return shifts, avg


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--angles", type=int, default=60)
    ap.add_argument("--frames", type=int, default=5)
    ap.add_argument("--radius", type=float, default=30.0, help="particle radius, Å (default 30)")
    ap.add_argument("--max-shift", type=float, default=3.0)
    ap.add_argument("--drift", type=float, default=0.3, help="px per frame (default 0.3)")
    ap.add_argument("--dose", type=float, default=5e4, help="e/Å^2 per angle (default 5e4)")
    ap.add_argument("--rotation", type=float, default=1.5, help="in-plane tilt-axis rotation, deg (default 1.5)")
    ap.add_argument("--matching-iterations", type=int, default=3)
    ap.add_argument("--recon-iterations", type=int, default=10)
    ap.add_argument("--skip-matching", action="store_true")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--json", default=None)
    ns = ap.parse_args(argv)

    from aetcore import align as A
    from aetcore import simulate as sim
    from aetcore._validate import resolve_threads
    from aetcore.preprocess import preprocess
    threads = resolve_threads(ns.threads)
    started = datetime.datetime.now().astimezone()
    n = ns.size

    t0 = time.perf_counter()
    p = sim.fept_particle(ns.radius, domains=("L10", "L12", "A1"), seed=ns.seed)
    theta = sim.angles_range(*TILT_RANGE, ns.angles)
    s = sim.tilt_series(p.positions, p.species, theta, (n, n), PIXEL_SIZE, shifts="random",
                        max_shift=ns.max_shift, n_frames=ns.frames, drift=ns.drift, seed=ns.seed + 1,
                        threads=threads)
    frames = s.tilts
    if ns.rotation:
        from scipy import ndimage
        frames = np.stack([[ndimage.rotate(f, ns.rotation, reshape=False, order=3) for f in a] for a in frames])
    # Poisson noise as tilt_series(dose=...) applies it: the dose of one angle split over the frames
    scale = ns.dose * PIXEL_SIZE ** 2 / (ns.frames * s.clean.mean())
    rng = np.random.default_rng(ns.seed + 2)
    frames = (rng.poisson(np.clip(frames, 0, None) * scale) / scale).astype(np.float32)
    t_sim = time.perf_counter() - t0
    # shift that brings frame f onto frame 0, turned with the content by the rotation
    # (scipy.ndimage.rotate samples the input at M @ out: the content moves by M^-1)
    M, _ = A._rotation_affine(ns.rotation, (n, n))
    true_frame = -(s.frame_shifts - s.frame_shifts[:, :1]) @ np.linalg.inv(M).T
    true_align = -s.shifts      # align turns the images back before shifting them (up to a constant)
    R = dict(date=started.isoformat(timespec="seconds"), host=platform.node(), cpu=_cpu_model(),
             cores=os.cpu_count(), threads=threads, python=platform.python_version(), numpy=np.__version__,
             size=n, n_angles=ns.angles, n_frames=ns.frames, radius_A=ns.radius,
             n_atoms=int(p.positions.shape[0]), max_shift=ns.max_shift, drift=ns.drift, dose=ns.dose,
             seed=ns.seed, rotation=ns.rotation, simulation_s=t_sim, true_shift_rms=float(np.sqrt((s.shifts ** 2).sum(1).mean())),
             load_average_start=list(os.getloadavg()))

    # 1. frame registration
    t0 = time.perf_counter()
    pre = preprocess(frames, shear=False, reference="first", upsample=UPSAMPLE, threads=threads)
    t_pre = time.perf_counter() - t0
    R["preprocess"] = dict(wall=t_pre, frame_rms=frame_rms(pre.registration.shifts, true_frame))
    from aetcore.preprocess import register_frames
    t0 = time.perf_counter()
    reg = register_frames(frames, shear=False, reference="first", upsample=UPSAMPLE, threads=threads)
    R["register_frames"] = dict(wall=time.perf_counter() - t0, frame_rms=frame_rms(reg.shifts, true_frame))
    for norm, key in (("phase", "skimage_phase"), (None, "skimage_none")):
        t0 = time.perf_counter()
        sh, _ = skimage_loop(frames, norm)
        R[key] = dict(wall=time.perf_counter() - t0, frame_rms=frame_rms(sh, true_frame))

    # 2. alignment of the preprocessed series
    al = A.align(pre.tilts, theta, upsample=UPSAMPLE, pixel_size=PIXEL_SIZE, threads=threads)
    R["align"] = dict(wall=al.timings["total"], timings=dict(al.timings), rotation=al.rotation,
                      rotation_error=al.rotation + ns.rotation,
                      error=gauge_free_rms(al.shifts, true_align, theta),
                      error_raw=float(np.sqrt(((al.shifts - true_align) ** 2).sum(1).mean())))
    if not ns.skip_matching:
        t0 = time.perf_counter()
        pm = A.projection_matching(pre.tilts, theta, shifts=al.shifts, rotation=al.rotation,
                                   iterations=ns.matching_iterations, recon_iterations=ns.recon_iterations,
                                   upsample=UPSAMPLE, pixel_size=PIXEL_SIZE, threads=threads)
        R["matching"] = dict(wall=time.perf_counter() - t0, rounds=len(pm.history), history=pm.history,
                             bin=int(round(n / pm.volume.shape[2])),
                             error=gauge_free_rms(pm.shifts, true_align, theta))
    R["maxrss_mb"] = _maxrss_mb()
    R["load_average_end"] = list(os.getloadavg())
    total = t_pre + R["align"]["wall"]
    R["target_time"] = dict(value=total, ok=total < TARGET_TIME)
    print(format_table(R))
    if ns.json:
        write_json(ns.json, R)
    return 0


def format_table(R) -> str:
    L = []
    L.append(f"aetcore alignment benchmark   {R['date']}   {R['host']}: {R['cores']} cores ({R['cpu']}), "
             f"aetcore threads {R['threads']}, Python {R['python']}, NumPy {R['numpy']}")
    L.append(f"input: FePt particle r = {R['radius_A']:.0f} Å ({R['n_atoms']} atoms), {R['n_angles']} angles x "
             f"{R['n_frames']} frames of {R['size']}^2 px at {PIXEL_SIZE} Å, -70..+70 deg; random shifts "
             f"+-{R['max_shift']:g} px (RMS {R['true_shift_rms']:.2f} px), drift {R['drift']:g} px/frame, "
             f"tilt axis turned {R['rotation']:g} deg, "
             f"dose {R['dose']:.3g} e/Å^2 per angle, seed {R['seed']} (simulation {R['simulation_s']:.1f} s)")
    L.append(f"load average (1/5/15 min) at start {'/'.join(f'{x:.1f}' for x in R['load_average_start'])}, "
             f"at end {'/'.join(f'{x:.1f}' for x in R['load_average_end'])}; peak RSS {R['maxrss_mb']:.0f} MB")
    L.append("")
    L.append(f"1. frame registration to frame 0 (upsample {UPSAMPLE}), error = RMS |found - true| over frames 1..")
    L.append(f"   {'method':<62}{'wall s':>9}{'error px':>10}")
    pre, sp, sn = R["register_frames"], R["skimage_phase"], R["skimage_none"]
    pp = R["preprocess"]
    L.append(f"   {'aetcore preprocess (register_frames shear=False + bg + norm)':<62}{pp['wall']:>9.2f}{pp['frame_rms']:>10.4f}")
    L.append(f"   {'aetcore register_frames(shear=False) alone':<62}{pre['wall']:>9.2f}{pre['frame_rms']:>10.4f}")
    L.append(f"   {'skimage phase_cross_correlation loop, normalization=phase':<62}{sp['wall']:>9.2f}{sp['frame_rms']:>10.4f}")
    L.append(f"   {'skimage phase_cross_correlation loop, normalization=None':<62}{sn['wall']:>9.2f}{sn['frame_rms']:>10.4f}")
    for lab, o in (("phase", sp), ("None", sn)):
        L.append(f"   skimage({lab})/aetcore register_frames: time {o['wall'] / pre['wall']:6.2f}x, "
                 f"error {o['frame_rms'] / pre['frame_rms']:6.2f}x")
    L.append("")
    a = R["align"]
    L.append("2. tilt-series alignment of the preprocessed series, error = RMS |found + applied| modulo the gauge")
    L.append(f"   {'stage':<62}{'wall s':>9}{'error px':>10}")
    L.append(f"   {'align() defaults: axis rotation + COM + common line':<62}{a['wall']:>9.2f}{a['error']:>10.4f}")
    L.append(f"   tilt-axis rotation found {a['rotation']:+.3f} deg (applied {-R['rotation']:+.3f}): "
             f"error {a['rotation_error']:+.3f} deg")
    if "matching" in R:
        m = R["matching"]
        lab = "+ projection matching (SIRT, bin %d, %d rounds run)" % (m["bin"], m["rounds"])
        L.append(f"   {lab:<62}{m['wall']:>9.2f}{m['error']:>10.4f}")
        L.append("   matching RMS update per round (px): " + ", ".join(f"{h:.3f}" for h in m["history"]))
    L.append("   stages: " + ", ".join(f"{k} {v:.2f} s" for k, v in a["timings"].items()))
    t = R["target_time"]
    L.append("")
    L.append(f"target: preprocess + align (defaults)    = {t['value']:.2f} s < {TARGET_TIME:g} s   {_flag(t['ok'])}")
    if "matching" in R:
        tot = t["value"] + R["matching"]["wall"]
        L.append(f"        with projection matching        = {tot:.2f} s < {TARGET_TIME:g} s   {_flag(tot < TARGET_TIME)}")
    return "\n".join(L)


if __name__ == "__main__":
    sys.exit(main())
