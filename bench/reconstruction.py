#!/usr/bin/env python
"""Reconstruction benchmark: aetcore against the reference packages on one simulated particle.

usage:
    python bench/reconstruction.py [--size 128] [--angles 51] [--iterations 100]
                                   [--sirt-iterations 50] [--dose 5e4] [--seed 0]
                                   [--threads N] [--skip-genfire] [--json out.json]

One FePt particle (aetcore.simulate.fept_particle, L10/L12/A1 Voronoi domains, radius 20 Å at
--size 128, scaled with the size), pixel size 0.4 Å, a single-axis tilt series of --angles
projections over -70..+70 degrees with Poisson counting noise at --dose e/Å^2 per image, no
misalignment. Every method sees the same noisy tilt series; errors are
``aetcore.metrics.relative_error(volume, ground_truth_volume)`` (best-scale relative L2 error).

1. aetcore.reconstruct.genfire (oversampling 3, --iterations, defaults otherwise) against the
   `genfire` package 1.1.11 (GenfireReconstructor, oversampling 3, same iterations, full-box default
   support, default interpolationCutoffDistance): wall time, peak resident memory, error.
   Each runs in its own child process (this file with a hidden --_worker flag), which reports its
   own ``getrusage(RUSAGE_SELF).ru_maxrss``, so the two peaks do not contaminate each other.
2. aetcore's time per GENFIRE iteration against ``aetcore._core.fft_roundtrip_time(N, threads, 5)``
   (the "FFT floor": one threaded FFTW r2c + c2r of the N^3 oversampled grid).
3. aetcore SIRT and WBP against astra-toolbox 2D CPU SIRT and FBP run slice by slice.

A benchmark, not a test: it prints a table (and optionally writes JSON) and always exits 0 unless
something crashes. Needs the `bench` extra (genfire==1.1.11, astra-toolbox).
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import sys
import tempfile
import time

import numpy as np

from _common import cpu_model as _cpu_model, flag as _flag, maxrss_mb as _maxrss_mb, run_worker, write_json

PIXEL_SIZE = 0.4          # Å per pixel / voxel
OVERSAMPLING = 3
TILT_RANGE = (-70.0, 70.0)
RADIUS_AT_128 = 20.0      # Å; the particle radius scales with --size so it always fills the box alike

# targets (printed beside the numbers)
TARGET_ITER_OVER_FFT = 1.3     # GENFIRE iteration <= 1.3 x FFT floor
TARGET_SPEEDUP = 10.0          # end to end >= 10x faster than genfire
TARGET_MEM_RATIO = 4.0         # <= 1/4 of genfire's peak memory
TARGET_ERROR = 0.15            # relative error <= 0.15




# ------------------------------------------------------------------------------------ workers
def _worker_aetcore(inp: dict, iterations: int, threads) -> dict:
    from aetcore import reconstruct
    tilts, angles = inp["tilts"], inp["angles"]
    base = _maxrss_mb()
    t0 = time.perf_counter()
    rec = reconstruct.genfire(tilts, angles, pixel_size=float(inp["pixel_size"]), oversampling=OVERSAMPLING,
                              iterations=iterations, threads=threads, seed=0, progress=False)
    wall = time.perf_counter() - t0
    peak = _maxrss_mb()
    p = rec.parameters
    # 2. FFT floor on the same grid and thread count, measured right after the reconstruction (same
    #    machine load) and in this child, after its peak RSS was read (the floor's own arrays would
    #    otherwise raise the parent's RSS high-water mark, which Linux hands on to later children).
    N, nthreads = int(p["grid_size"]), int(p["threads"])
    from aetcore import _core
    fft = dict(N=N, threads=nthreads, seconds=float(_core.fft_roundtrip_time(N, nthreads, 5)), repeats=5)
    return dict(volume=rec.volume, wall=wall, maxrss_mb=peak, baseline_rss_mb=base, fft_floor=fft,
                timings={k: float(v) for k, v in rec.timings.items()},
                iterations_run=int(p["iterations_run"]), grid_size=int(p["grid_size"]),
                threads=int(p["threads"]), support=str(p["support"]), measured_points=int(p["measured_points"]))


def _worker_genfire(inp: dict, iterations: int, threads) -> dict:
    os.environ.setdefault("MPLBACKEND", "Agg")
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    import contextlib
    import io
    with contextlib.redirect_stdout(io.StringIO()):    # "No pyFFTW installation found ..."
        from genfire.reconstruct import GenfireReconstructor
    np.random.seed(0)                                   # genfire draws only for R-free (off); for completeness
    tilts, angles = inp["tilts"], inp["angles"]
    base = _maxrss_mb()
    t0 = time.perf_counter()
    # genfire layout: projections [x, y, k], volume [x, y, z]; ZYZ angles (n, 3) unchanged (REPORT.md 2c).
    proj = np.transpose(tilts, (2, 1, 0)).astype(np.float64)
    out = GenfireReconstructor(
        projections=proj, eulerAngles=np.asarray(angles, np.float64).reshape(-1, 3),
        numIterations=iterations, oversamplingRatio=OVERSAMPLING,
        useDefaultSupport=True,             # full box (an ndarray support trips a NumPy-2 bug)
        calculateRfree=False,               # R-free breaks on NumPy >= 1.24
        verbose=False).reconstruct()
    vol = np.ascontiguousarray(np.transpose(out["reconstruction"], (2, 1, 0)), dtype=np.float32)
    wall = time.perf_counter() - t0
    return dict(volume=vol, wall=wall, maxrss_mb=_maxrss_mb(), baseline_rss_mb=base,
                iterations_run=int(len(out["errK"])), final_errK=float(out["errK"][-1]), threads=1)


def _worker_main(ns) -> None:
    with np.load(ns._input) as z:
        inp = {k: z[k] for k in z.files}
    fn = {"aetcore": _worker_aetcore, "genfire": _worker_genfire}[ns._worker]
    res = fn(inp, ns.iterations, ns.threads)
    vol = res.pop("volume")
    tmp = ns._output + ".part.npy"
    np.save(tmp, vol)
    os.replace(tmp, ns._output)
    print("WORKER_RESULT " + json.dumps(res), flush=True)


def _run_worker(kind: str, input_path: str, ns, workdir: str):
    out = os.path.join(workdir, f"{kind}_volume.npy")
    args = ["--_input", input_path, "--_output", out, "--iterations", str(ns.iterations)]
    if ns.threads is not None:
        args += ["--threads", str(ns.threads)]
    res = run_worker(__file__, kind, args)
    vol = np.load(out)
    os.unlink(out)
    return vol, res


# ------------------------------------------------------------------------------ astra (2D CPU)
# Adapted from the peers' research (astra_slices.py): slice vol[:, y, :] <-> astra image slice[::-1, :],
# volume window centred on index n//2, astra angle = -theta, detector centre moved to pixel n//2.
def _astra_vol_geom(astra, nz, nx):
    return astra.create_vol_geom(nz, nx, -(nx // 2) - 0.5, nx - nx // 2 - 0.5, -(nz // 2) - 0.5, nz - nz // 2 - 0.5)


def _astra_run(astra, alg, pg, vg, sino, iterations, extra=None):
    pid = astra.create_projector("linear", pg, vg)
    sid = astra.data2d.create("-sino", pg, sino)
    rid = astra.data2d.create("-vol", vg, 0.0)
    cfg = astra.astra_dict(alg)
    cfg["ProjectorId"], cfg["ProjectionDataId"], cfg["ReconstructionDataId"] = pid, sid, rid
    if extra:
        cfg.update(extra)
    aid = astra.algorithm.create(cfg)
    try:
        astra.algorithm.run(aid, iterations)
        return astra.data2d.get(rid)
    finally:
        astra.algorithm.delete(aid)
        astra.data2d.delete([sid, rid])
        astra.projector.delete(pid)


def astra_sirt(tilts, theta_deg, iterations):
    import astra
    na, ny, nx = tilts.shape
    a = -np.deg2rad(np.asarray(theta_deg, np.float64))
    c = (nx - 1) / 2.0 - nx // 2
    V = np.zeros((a.size, 6))
    V[:, 0], V[:, 1] = np.sin(a), -np.cos(a)          # ray direction
    V[:, 4], V[:, 5] = np.cos(a), np.sin(a)           # detector pixel step
    V[:, 2], V[:, 3] = c * V[:, 4], c * V[:, 5]       # detector centre
    pg = astra.create_proj_geom("parallel_vec", nx, V)
    vg = _astra_vol_geom(astra, nx, nx)
    vol = np.empty((nx, ny, nx), np.float32)
    for y in range(ny):
        vol[:, y, :] = _astra_run(astra, "SIRT", pg, vg, np.ascontiguousarray(tilts[:, y, :]), iterations)[::-1, :]
    return vol


def astra_fbp(tilts, theta_deg):
    import astra
    na, ny, nx = tilts.shape
    pad = 1 if nx % 2 == 0 else 0                      # odd detector: centre exactly at nx//2
    n_det = nx + pad
    vg = _astra_vol_geom(astra, nx, nx)
    pg = astra.create_proj_geom("parallel", 1.0, n_det, -np.deg2rad(np.asarray(theta_deg, np.float64)))
    vol = np.empty((nx, ny, nx), np.float32)
    sino = np.zeros((na, n_det), np.float32)
    for y in range(ny):
        sino[:, :nx] = tilts[:, y, :]
        vol[:, y, :] = _astra_run(astra, "FBP", pg, vg, sino, 1, {"FilterType": "ram-lak"})[::-1, :]
    return vol


# ---------------------------------------------------------------------------------- helpers
def _timed(fn, repeats=1):
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return out, float(np.median(times))






def simulate(ns):
    from aetcore import simulate as sim
    n = ns.size
    radius = ns.radius if ns.radius is not None else RADIUS_AT_128 * n / 128.0
    particle = sim.fept_particle(radius, domains=("L10", "L12", "A1"), seed=ns.seed)
    theta = sim.angles_range(*TILT_RANGE, ns.angles)
    series = sim.tilt_series(particle.positions, particle.species, theta, (n, n), PIXEL_SIZE,
                             dose=ns.dose, seed=ns.seed + 1, threads=ns.threads)
    truth = sim.ground_truth_volume(particle.positions, particle.species, (n, n, n), PIXEL_SIZE,
                                    threads=ns.threads)
    info = dict(radius_A=radius, n_atoms=int(particle.positions.shape[0]),
                n_fe=int(np.sum(particle.species == "Fe")), n_pt=int(np.sum(particle.species == "Pt")),
                phases={str(p): int(np.sum(particle.phase == p)) for p in np.unique(particle.phase)},
                counts_per_pixel=float(ns.dose * PIXEL_SIZE ** 2),
                noise_rel=float(np.linalg.norm(series.tilts - series.clean) / np.linalg.norm(series.clean)))
    return series, theta, truth, info


# ------------------------------------------------------------------------------------- main
def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=128, help="volume side n (even), voxels (default 128)")
    ap.add_argument("--angles", type=int, default=51, help="number of projections over -70..+70 deg (default 51)")
    ap.add_argument("--iterations", type=int, default=100, help="GENFIRE iterations, both packages (default 100)")
    ap.add_argument("--sirt-iterations", type=int, default=50, help="SIRT iterations, both packages (default 50)")
    ap.add_argument("--dose", type=float, default=5e4, help="electrons per Å^2 per image (default 5e4)")
    ap.add_argument("--radius", type=float, default=None, help="particle radius, Å (default 20 * size / 128)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the particle and of the noise (default 0)")
    ap.add_argument("--repeats", type=int, default=5, help="runs of the cheap methods (WBP/FBP, FFT floor) whose median is reported")
    ap.add_argument("--threads", type=int, default=None, help="aetcore threads (default: all cores)")
    ap.add_argument("--skip-genfire", action="store_true", help="do not run the genfire package")
    ap.add_argument("--skip-astra", action="store_true", help="do not run astra-toolbox")
    ap.add_argument("--json", default=None, help="also write the results as JSON to this path")
    ap.add_argument("--_worker", choices=["aetcore", "genfire"], help=argparse.SUPPRESS)
    ap.add_argument("--_input", help=argparse.SUPPRESS)
    ap.add_argument("--_output", help=argparse.SUPPRESS)
    ns = ap.parse_args(argv)
    if ns._worker:
        return _worker_main(ns)
    if ns.size < 8 or ns.size % 2:
        ap.error(f"--size: expected an even number >= 8, got {ns.size} (genfire crops odd sizes to n-1)")

    from aetcore import reconstruct
    from aetcore._validate import resolve_threads
    from aetcore.metrics import relative_error
    threads = resolve_threads(ns.threads)
    n = ns.size
    started = datetime.datetime.now().astimezone()

    t0 = time.perf_counter()
    series, theta, truth, info = simulate(ns)
    tilts, angles = series.tilts, series.angles
    t_sim = time.perf_counter() - t0

    R = dict(date=started.isoformat(timespec="seconds"), host=platform.node(), cpu=_cpu_model(),
             cores=os.cpu_count(), threads=threads, python=platform.python_version(), numpy=np.__version__,
             size=n, pixel_size_A=PIXEL_SIZE, n_angles=ns.angles, tilt_range_deg=list(TILT_RANGE),
             dose_e_per_A2=ns.dose, seed=ns.seed, genfire_iterations=ns.iterations,
             sirt_iterations=ns.sirt_iterations, oversampling=OVERSAMPLING, simulation_s=t_sim, particle=info,
             load_average_start=list(os.getloadavg()))
    err = lambda v: float(relative_error(v, truth))

    with tempfile.TemporaryDirectory(prefix="aet_bench_") as wd:
        inp = os.path.join(wd, "input.npz")
        np.savez(inp, tilts=tilts, angles=angles, pixel_size=PIXEL_SIZE)

        # 1. GENFIRE: each package in its own child process (peak RSS per run).
        vol, res = _run_worker("aetcore", inp, ns, wd)
        res["error"] = err(vol)
        R["aetcore_genfire"] = res
        del vol
        R["fft_floor"] = res.pop("fft_floor")
        if not ns.skip_genfire:
            vol, res = _run_worker("genfire", inp, ns, wd)
            res["error"] = err(vol)
            R["genfire"] = res
            del vol

    a = R["aetcore_genfire"]
    a["time_per_iteration"] = a["timings"]["iterations"] / max(a["iterations_run"], 1)

    # 3. SIRT and WBP vs astra (this process)
    rec, t = _timed(lambda: reconstruct.sirt(tilts, angles, pixel_size=PIXEL_SIZE, iterations=ns.sirt_iterations,
                                             threads=ns.threads, progress=False))
    R["aetcore_sirt"] = dict(wall=t, error=err(rec.volume), iterations=ns.sirt_iterations)
    rec, t = _timed(lambda: reconstruct.wbp(tilts, angles, pixel_size=PIXEL_SIZE, threads=ns.threads), ns.repeats)
    R["aetcore_wbp"] = dict(wall=t, error=err(rec.volume), repeats=ns.repeats)
    del rec
    if not ns.skip_astra:
        th = angles[:, 1]
        v, t = _timed(lambda: astra_sirt(tilts, th, ns.sirt_iterations))
        R["astra_sirt"] = dict(wall=t, error=err(v), iterations=ns.sirt_iterations)
        v, t = _timed(lambda: astra_fbp(tilts, th), ns.repeats)
        R["astra_fbp"] = dict(wall=t, error=err(v), repeats=ns.repeats)
        del v

    R["load_average_end"] = list(os.getloadavg())
    _derive(R)
    print(format_table(R))
    if ns.json:
        write_json(ns.json, R)
    return 0


def _derive(R):
    a, g = R["aetcore_genfire"], R.get("genfire")
    T = R["targets"] = {}
    ratio = a["time_per_iteration"] / R["fft_floor"]["seconds"]
    T["iteration_over_fft_floor"] = dict(value=ratio, target=f"<= {TARGET_ITER_OVER_FFT}", ok=ratio <= TARGET_ITER_OVER_FFT)
    T["aetcore_genfire_error"] = dict(value=a["error"], target=f"<= {TARGET_ERROR}", ok=a["error"] <= TARGET_ERROR)
    if g:
        sp, mem = g["wall"] / a["wall"], g["maxrss_mb"] / a["maxrss_mb"]
        T["speedup_vs_genfire"] = dict(value=sp, target=f">= {TARGET_SPEEDUP}", ok=sp >= TARGET_SPEEDUP)
        T["memory_ratio_vs_genfire"] = dict(value=mem, target=f">= {TARGET_MEM_RATIO} (aetcore <= 1/4)", ok=mem >= TARGET_MEM_RATIO)
        T["error_vs_genfire"] = dict(value=a["error"] - g["error"], target="<= 0 (aetcore error <= genfire error)",
                                     ok=a["error"] <= g["error"])


def format_table(R) -> str:
    a, g = R["aetcore_genfire"], R.get("genfire")
    p = R["particle"]
    T = R["targets"]
    L = []
    L.append(f"aetcore reconstruction benchmark   {R['date']}   {R['host']}: {R['cores']} cores ({R['cpu']}), "
             f"aetcore threads {R['threads']}, Python {R['python']}, NumPy {R['numpy']}")
    L.append(f"input: FePt particle r = {p['radius_A']:.1f} Å, {p['n_atoms']} atoms ({p['n_fe']} Fe, {p['n_pt']} Pt; domains "
             + ", ".join(f"{k} {v}" for k, v in p["phases"].items()) + ")")
    L.append(f"       {R['size']}^3 voxels at {R['pixel_size_A']} Å, {R['n_angles']} projections over "
             f"{R['tilt_range_deg'][0]:+.0f}..{R['tilt_range_deg'][1]:+.0f} deg (tilt about y), no misalignment")
    L.append(f"       dose {R['dose_e_per_A2']:.3g} e/Å^2 per image = {p['counts_per_pixel']:.0f} e per pixel on average "
             f"(Poisson; noise ||tilts - clean|| / ||clean|| = {p['noise_rel']:.3f}), seed {R['seed']}")
    L.append(f"load average (1/5/15 min) at start {'/'.join(f'{x:.1f}' for x in R['load_average_start'])}, "
             f"at end {'/'.join(f'{x:.1f}' for x in R['load_average_end'])} (other processes share the {R['cores']} cores)")
    L.append("error = aetcore.metrics.relative_error(volume, ground_truth_volume) (best-scale relative L2)")
    L.append("")
    L.append("1. GENFIRE, oversampling 3 (each in its own process; peak RSS = that process's ru_maxrss)")
    hdr = f"   {'method':<48}{'iters':>6}{'wall s':>10}{'peak RSS MB':>13}{'(before) MB':>13}{'error':>9}"
    L.append(hdr)
    L.append(f"   {'aetcore.genfire (defaults, auto support)':<48}{a['iterations_run']:>6}{a['wall']:>10.2f}"
             f"{a['maxrss_mb']:>13.0f}{a['baseline_rss_mb']:>13.0f}{a['error']:>9.4f}")
    if g:
        L.append(f"   {'genfire 1.1.11 (full-box support, cutoff 0.5)':<48}{g['iterations_run']:>6}{g['wall']:>10.2f}"
                 f"{g['maxrss_mb']:>13.0f}{g['baseline_rss_mb']:>13.0f}{g['error']:>9.4f}")
        s, m, e = T["speedup_vs_genfire"], T["memory_ratio_vs_genfire"], T["error_vs_genfire"]
        L.append(f"   time   genfire/aetcore = {s['value']:8.2f}x    target >= {TARGET_SPEEDUP:g}x              {_flag(s['ok'])}")
        L.append(f"   memory genfire/aetcore = {m['value']:8.2f}x    target >= {TARGET_MEM_RATIO:g}x (aetcore <= 1/4)  {_flag(m['ok'])}")
        L.append(f"   error  aetcore {a['error']:.4f} vs genfire {g['error']:.4f}     target aetcore <= genfire  {_flag(e['ok'])}")
    else:
        L.append("   genfire package skipped (--skip-genfire)")
    ee = T["aetcore_genfire_error"]
    L.append(f"   error  aetcore {a['error']:.4f}                        target <= {TARGET_ERROR:g}              {_flag(ee['ok'])}")
    tm = a["timings"]
    L.append("   aetcore stages: " + ", ".join(f"{k} {v:.2f} s" for k, v in tm.items())
             + f"; grid {a['grid_size']}^3, {a['measured_points']} gridded points")
    L.append("")
    f = R["fft_floor"]
    r = T["iteration_over_fft_floor"]
    L.append(f"2. GENFIRE iteration vs FFT floor (N = {f['N']}, {f['threads']} threads)")
    L.append(f"   aetcore time per iteration   {a['time_per_iteration'] * 1e3:9.1f} ms  "
             f"({tm['iterations']:.2f} s / {a['iterations_run']} iterations)")
    L.append(f"   FFT floor (r2c + c2r, median of {f['repeats']}) {f['seconds'] * 1e3:7.1f} ms")
    L.append(f"   ratio                        {r['value']:9.2f}x    target <= {TARGET_ITER_OVER_FFT:g}x  {_flag(r['ok'])}")
    L.append("")
    L.append(f"3. SIRT ({R['sirt_iterations']} iterations, no positivity) and WBP/FBP (ram-lak); astra = 2D CPU, slice by slice, 1 thread")
    L.append(f"   {'method':<44}{'wall s':>10}{'error':>9}")
    rows = [("aetcore.sirt", "aetcore_sirt"), ("astra SIRT (linear projector)", "astra_sirt"),
            (f"aetcore.wbp (median of {R['aetcore_wbp']['repeats']})", "aetcore_wbp"),
            ("astra FBP (median of %d)" % R["astra_fbp"]["repeats"] if "astra_fbp" in R else "astra FBP", "astra_fbp")]
    for label, key in rows:
        if key in R:
            L.append(f"   {label:<44}{R[key]['wall']:>10.3f}{R[key]['error']:>9.4f}")
    if "astra_sirt" in R:
        L.append(f"   SIRT time astra/aetcore = {R['astra_sirt']['wall'] / R['aetcore_sirt']['wall']:.2f}x, "
                 f"error aetcore {R['aetcore_sirt']['error']:.4f} vs astra {R['astra_sirt']['error']:.4f}")
        L.append(f"   WBP  time astra/aetcore = {R['astra_fbp']['wall'] / R['aetcore_wbp']['wall']:.2f}x, "
                 f"error aetcore {R['aetcore_wbp']['error']:.4f} vs astra {R['astra_fbp']['error']:.4f}")
    else:
        L.append("   astra skipped (--skip-astra)")
    return "\n".join(L)


if __name__ == "__main__":
    sys.exit(main())
