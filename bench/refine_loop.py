"""Time and accuracy of aetcore.steps.refine.refine on an FePt particle of radius 14 Å (791 atoms) in
aet demo's geometry (51 angles over ±70°, 96 x 96 pixels at 0.4 Å, dose 5e4 e/Å², seed 0; the demo
itself uses radius 11.5 Å at 96 px), started from the
truth displaced by 0.15 Å RMS per coordinate, default options, one thread. Prints the median wall time of
`--repeat` runs (and of the CPU time), the number of objective evaluations made from Python, the RMSD to the truth before and after, R1, iterations and the minimiser's message.

    PYTHONPATH=python python bench/refine_loop.py [--repeat 3] [--threads 1]
"""
import argparse
import time

import numpy as np

from aetcore.model.simulate import angles_range, fept_particle, tilt_series
from aetcore.steps.refine import refine


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--radius", type=float, default=14.0)
    a = ap.parse_args()
    p = fept_particle(a.radius, orientation="random", antisite=0.02, thermal=0.05, seed=0)
    ang = angles_range(-70, 70, 51, uneven=0.3, seed=0)
    s = tilt_series(p.positions, p.species, ang, (96, 96), 0.4, dose=5e4, seed=0, threads=a.threads)
    start = p.positions + np.random.default_rng(1).normal(0, 0.15, p.positions.shape)
    rmsd = lambda x: 100 * float(np.sqrt(((x - p.positions) ** 2).sum(axis=1).mean()))  # pm
    import aetcore._core as core
    calls = [0]
    objective = core.refine_objective

    def counted(*args, **kw):  # objective evaluations made from Python (the scipy loop of older versions)
        calls[0] += 1
        return objective(*args, **kw)

    core.refine_objective = counted
    times, cpu = [], []
    for _ in range(a.repeat):
        calls[0] = 0
        t0, c0 = time.perf_counter(), time.process_time()
        r = refine(start, p.species, s.tilts, s.angles, 0.4, threads=a.threads)
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    print(f"{len(p.positions)} atoms, {len(ang)} angles: refine {np.median(times):.2f} s wall, {np.median(cpu):.2f} s "
          f"CPU (medians of {a.repeat}: {', '.join(f'{t:.2f}' for t in times)} s wall); "
          f"{calls[0]} objective calls from Python; RMSD {rmsd(start):.2f} -> {rmsd(r.positions):.2f} pm; "
          f"R1 {r.r1_before:.4f} -> {r.r1_after:.4f}; {r.n_iterations} iterations, loss {r.loss_history[-1]:.6g}; "
          f"H {np.round(r.model.heights, 4)}, B {np.round(r.model.b_factors, 3)}; median precision "
          f"{100 * np.median(r.precision):.2f} pm; {r.message}")


if __name__ == "__main__":
    main()
