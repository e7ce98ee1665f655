"""Per-atom precision of the refinement against the scatter observed over noise realisations.

`aetcore.steps.refine.refine` reports per atom and axis a standard deviation ``precision`` (Å; the
"sandwich" estimate of its module documentation). This benchmark simulates one small FePt particle
(`aetcore.model.simulate.fept_particle`) at realistic doses — the counts per Pt atom per image of
../shared/data/fept_dev (300 for the multigrain series, 50 for the decahedron) plus Gaussian read
noise of 1.5 counts per pixel — over N independent noise realisations, refines every realisation from
the same start (the truth displaced by 5 pm RMS per axis, as a good trace would give) with the
refinement's defaults (positions, per-species heights and B-factors), and compares, per species and
axis:

* **observed**: the standard deviation of the refined coordinate over the realisations (about each
  atom's own mean), RMS over the atoms of the species;
* **predicted**: the RMS over atoms and realisations of ``precision``;
* **ratio** observed / predicted (1 = the estimate is right; > 1 = it is optimistic).

To find where a mismatch comes from, the first ``--diagnose`` realisations are also given the
sandwich of the *full* Jacobian (finite differences of `project_atoms`, every atom's three
coordinates and the per-species heights and B-factors together, so correlations between atoms that
overlap in projection count), and the normalised errors ``z = (x - mean) / precision`` are
summarised (their standard deviation, kurtosis, and the fraction beyond 3: 0.27 % for a Gaussian).
The same realisations also get, per atom, the observed (Newton) Hessian block of the least-squares
objective, ``H_i = J_i^T J_i + sum_k r_k d2(s P_k)/dx_i2``: the smallest eigenvalue of
``A_i^-1/2 H_i A_i^-1/2`` (1 when the objective is quadratic around the atom, as the Gauss-Newton
``A_i = J_i^T J_i`` of the estimate assumes) and the sandwich with ``H_i`` as its bread (over the
atoms where ``H_i`` is positive definite).

    python bench/precision.py                     # N = 20, 300 and 50 counts per Pt atom (~5 min)
    python bench/precision.py --counts 300 --n 10 --diagnose 0

It prints one table per dose and writes --json if given.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from dataclasses import replace

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import write_json  # noqa: E402

PIXEL = 0.4


def dose_for_counts(positions, species, angles, shape, counts_per_pt: float) -> float:
    """The dose (e/Å² per image) of `aetcore.model.simulate.tilt_series` at which one Pt atom gives
    `counts_per_pt` counts per image: tilt_series scales the projections by
    ``dose * pixel_size**2 / mean(clean)`` counts per projection unit."""
    from aetcore.model import projection
    clean = projection.project_atoms(positions, species, angles, shape, PIXEL, threads=1)
    pt = float(projection.project_atoms(np.zeros((1, 3)), ["Pt"], [0.0], shape, PIXEL, threads=1).sum())
    return counts_per_pt * float(clean.mean(dtype=np.float64)) / (pt * PIXEL ** 2)


def full_sandwich(r, species, tilts, angles, shape) -> np.ndarray:
    """(n_atoms, 3) Å: the sandwich covariance of the refined positions from the full Jacobian
    (every coordinate of every atom, the per-species log-heights and B-factors), by central
    differences of `project_atoms`."""
    from aetcore.model import projection
    m, pos, n = r.model, r.positions, len(species)

    def proj(p, sp, model):
        return projection.project_atoms(p, sp, angles, shape, PIXEL, model=model, threads=1).astype(np.float64)

    cols = []
    h = 1e-3
    for i in range(n):
        for ax in range(3):
            d = np.zeros((1, 3))
            d[0, ax] = h
            cols.append(((proj(pos[i:i + 1] + d, species[i:i + 1], m) - proj(pos[i:i + 1] - d, species[i:i + 1], m))
                         / (2 * h) * r.scale).ravel())
    for si, s in enumerate(m.symbols):
        sel = species == s
        if not sel.any():
            continue
        cols.append((proj(pos[sel], species[sel], m) * r.scale).ravel())          # d / d log H
        bp, bm = m.b_factors.copy(), m.b_factors.copy()
        bp[si] += 0.05
        bm[si] -= 0.05
        cols.append(((proj(pos[sel], species[sel], replace(m, b_factors=bp))
                      - proj(pos[sel], species[sel], replace(m, b_factors=bm))) / 0.1 * r.scale).ravel())
    J = np.array(cols).T
    res = (proj(pos, species, m) * r.scale - tilts.astype(np.float64)).ravel()
    A = J.T @ J
    M = (J * res[:, None] ** 2).T @ J * res.size / (res.size - J.shape[1])
    Ai = np.linalg.inv(A)
    return np.sqrt(np.diag(Ai @ M @ Ai)[:3 * n]).reshape(n, 3)


def newton_blocks(r, species, tilts, angles, shape) -> tuple:
    """Per atom, the sandwich with the observed (Newton) Hessian block ``H_i = J_i^T J_i + sum_k r_k
    d2(s P_k)/dx_i2`` as the bread instead of the Gauss-Newton ``A_i = J_i^T J_i`` (``r`` = residual),
    by finite differences of `project_atoms`; and the smallest eigenvalue of ``A_i^-1/2 H_i A_i^-1/2``
    (1: the objective is quadratic around the atom, as the Gauss-Newton estimate assumes; <= 0: not
    even a minimum along some direction). Returns ``(precision (n, 3) Å, NaN where H_i is not
    positive definite; min eigenvalue (n,))``."""
    from aetcore.model import projection
    m, pos, n = r.model, r.positions, len(species)
    res = (projection.project_atoms(pos, species, angles, shape, PIXEL, model=m, threads=1).astype(np.float64)
           * r.scale - tilts.astype(np.float64)).ravel()
    h = 2e-3
    prec, emin = np.full((n, 3), np.nan), np.empty(n)
    for i in range(n):
        def P(d):
            return (projection.project_atoms(pos[i:i + 1] + np.asarray(d, float)[None], species[i:i + 1], angles,
                                             shape, PIXEL, model=m, threads=1).astype(np.float64).ravel() * r.scale)
        e = np.eye(3) * h
        p0 = P(np.zeros(3))
        pp = [P(e[a]) for a in range(3)]
        pm = [P(-e[a]) for a in range(3)]
        J = np.array([(pp[a] - pm[a]) / (2 * h) for a in range(3)]).T
        D2 = np.empty((3, 3))
        for a in range(3):
            D2[a, a] = res @ (pp[a] - 2 * p0 + pm[a]) / h ** 2
            for b in range(a + 1, 3):
                mixed = (P(e[a] + e[b]) - P(e[a] - e[b]) - P(-e[a] + e[b]) + P(-e[a] - e[b])) / (4 * h * h)
                D2[a, b] = D2[b, a] = res @ mixed
        A = J.T @ J
        H = A + D2
        L = np.linalg.cholesky(A)
        Li = np.linalg.inv(L)
        emin[i] = np.linalg.eigvalsh(Li @ H @ Li.T).min()
        if emin[i] > 0:
            M = (J * res[:, None] ** 2).T @ J
            Hi = np.linalg.inv(H)
            prec[i] = np.sqrt(np.diag(Hi @ M @ Hi))
    return prec, emin


def run_case(counts: float, n_real: int, radius: float, n_angles: int, diagnose: int, read_noise_counts: float,
             seed: int) -> dict:
    from aetcore.model import simulate
    from aetcore.steps.refine import refine
    p = simulate.fept_particle(radius, orientation="random", seed=seed)
    sp = np.asarray(p.species).astype(str)
    angles = simulate.angles_range(-70, 70, n_angles)
    n = int(2 * np.ceil((2 * radius + 6.0) / PIXEL / 2))
    shape = (n, n)
    dose = dose_for_counts(p.positions, sp, angles, shape, counts)
    start = p.positions + np.random.default_rng(seed + 1).normal(0, 0.05, p.positions.shape)
    pos, prec, full, newton, emin, t_ref = [], [], [], [], [], []
    scale = None
    for k in range(n_real):
        clean = simulate.tilt_series(p.positions, sp, angles, shape, PIXEL, dose=dose, seed=1000 + k, threads=1)
        scale = clean.count_scale
        tilts = clean.tilts
        if read_noise_counts > 0:   # read noise in counts, on the Poisson counts (projection units / scale)
            rn = np.random.default_rng(5000 + k).normal(0, read_noise_counts / scale, tilts.shape)
            tilts = (tilts + rn).astype(np.float32)
        t0 = time.perf_counter()
        r = refine(start, sp, tilts, clean.angles, PIXEL, threads=1)
        t_ref.append(time.perf_counter() - t0)
        pos.append(r.positions)
        prec.append(r.precision)
        if k < diagnose:
            full.append(full_sandwich(r, sp, tilts, clean.angles, shape))
            nb, ev = newton_blocks(r, sp, tilts, clean.angles, shape)
            newton.append(nb)
            emin.append(ev)
    pos, prec = np.array(pos), np.array(prec)
    dev = pos - pos.mean(axis=0)
    std = pos.std(axis=0, ddof=1)
    out = {"counts_per_pt": counts, "dose_e_per_A2": dose, "counts_per_unit": scale, "realisations": n_real,
           "atoms": int(len(sp)), "images": n_angles, "shape": list(shape), "read_noise_counts": read_noise_counts,
           "refine_seconds": float(np.mean(t_ref)), "species": {}}
    for el in ("Fe", "Pt"):
        m = sp == el
        obs_ax = np.sqrt((std[m] ** 2).mean(axis=0))
        pred_ax = np.sqrt((prec[:, m] ** 2).mean(axis=(0, 1)))
        obs, pred = float(np.sqrt((std[m] ** 2).mean())), float(np.sqrt((prec[:, m] ** 2).mean()))
        z = (dev[:, m] / prec[:, m]).ravel() * np.sqrt(n_real / (n_real - 1))
        rmse = float(np.sqrt(((pos[:, m] - p.positions[m]) ** 2).mean()))
        # per atom: do atoms predicted less precise scatter more? (Spearman over the species' atoms)
        from scipy.stats import spearmanr
        rho = float(spearmanr(np.sqrt((prec[:, m] ** 2).mean(axis=(0, 2))), np.sqrt((std[m] ** 2).mean(axis=1)))[0])
        row = {"atoms": int(m.sum()), "observed_pm": obs * 100, "predicted_pm": pred * 100, "ratio": obs / pred,
               "observed_axes_pm": (obs_ax * 100).tolist(), "predicted_axes_pm": (pred_ax * 100).tolist(),
               "ratio_axes": (obs_ax / pred_ax).tolist(), "rmse_vs_truth_pm": rmse * 100,
               "z_std": float(z.std()), "z_kurtosis": float(np.mean(z ** 4) / np.mean(z ** 2) ** 2),
               "z_beyond_3": float(np.mean(np.abs(z) > 3)), "spearman_atoms": rho}
        if full:
            f = np.array(full)[:, m]
            fp = float(np.sqrt((f ** 2).mean()))
            bp = float(np.sqrt((prec[:len(full), m] ** 2).mean()))
            row.update(full_jacobian_pm=fp * 100, full_over_block=fp / bp, ratio_full=obs / fp)
            nb, ev = np.array(newton)[:, m], np.array(emin)[:, m]
            pd = np.isfinite(nb[..., 0])
            nrms = float(np.sqrt((nb[pd] ** 2).mean()))
            row.update(hessian_min_eig_median=float(np.median(ev)), hessian_below_half=float(np.mean(ev < 0.5)),
                       hessian_not_pd=float(np.mean(~pd)), newton_pm=nrms * 100, ratio_newton=obs / nrms)
        out["species"][el] = row
    return out


def table(c: dict) -> str:
    L = [f"{c['counts_per_pt']:g} counts per Pt atom per image (dose {c['dose_e_per_A2']:.3g} e/Å², "
         f"{c['counts_per_unit']:.3g} counts per projection unit, read noise {c['read_noise_counts']:g} counts), "
         f"{c['atoms']} atoms, {c['images']} images of {c['shape'][0]}² px, {c['realisations']} realisations, "
         f"{c['refine_seconds']:.2f} s per refinement",
         "| species | atoms | observed σ pm (x / y / z) | predicted σ pm (x / y / z) | observed / predicted "
         "(x / y / z) | all axes | full-J / block | observed / full-J | z: std, kurtosis, > 3 | Spearman | "
         "Hessian/GN min eig: median, < 0.5, not PD | observed / Newton |",
         "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for el, r in c["species"].items():
        ax = lambda v, f="{:.2f}": " / ".join(f.format(x) for x in v)  # noqa: E731
        full = (f"{r['full_over_block']:.3f} | {r['ratio_full']:.2f}" if "full_over_block" in r else "– | –")
        newt = (f"{r['hessian_min_eig_median']:.2f}, {100 * r['hessian_below_half']:.1f} %, "
                f"{100 * r['hessian_not_pd']:.1f} % | {r['ratio_newton']:.2f}" if "ratio_newton" in r else "– | –")
        L.append(f"| {el} | {r['atoms']} | {ax(r['observed_axes_pm'])} | {ax(r['predicted_axes_pm'])} | "
                 f"{ax(r['ratio_axes'])} | **{r['ratio']:.2f}** | {full} | "
                 f"{r['z_std']:.2f}, {r['z_kurtosis']:.2f}, {100 * r['z_beyond_3']:.1f} % | {r['spearman_atoms']:.2f} | "
                 f"{newt} |")
    return "\n".join(L)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--counts", default="300,50", help="counts per Pt atom per image, comma-separated")
    ap.add_argument("--n", type=int, default=20, help="noise realisations")
    ap.add_argument("--radius", type=float, default=7.0, help="particle radius, Å")
    ap.add_argument("--angles", type=int, default=21, help="images over ±70°")
    ap.add_argument("--read-noise", type=float, default=1.5, help="Gaussian read noise, counts per pixel")
    ap.add_argument("--diagnose", type=int, default=3, help="realisations given the full-Jacobian sandwich")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--json", default=None)
    a = ap.parse_args(argv)
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                cwd=os.path.dirname(os.path.abspath(__file__))).stdout.strip() or "unknown"
    except OSError:
        commit = "unknown"
    print(f"aetcore refinement precision vs scatter, commit {commit}, load {os.getloadavg()[0]:.1f}")
    results = {"commit": commit, "cases": []}
    for c in (float(v) for v in a.counts.split(",")):
        r = run_case(c, a.n, a.radius, a.angles, a.diagnose, a.read_noise, a.seed)
        results["cases"].append(r)
        print(table(r), flush=True)
        print()
    if a.json:
        write_json(a.json, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
