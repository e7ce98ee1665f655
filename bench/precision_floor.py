"""The floor of the observed-curvature bread of the per-atom precision (aet::kPrecisionCurvatureFloor),
scanned: bench/precision.py's particle and realisations (20 per dose), refined with the defaults; at
every refined model the per-atom blocks A = J^T J, M = J^T diag(r^2) J and the residual term of the
observed Hessian (``_core.refine_objective(..., want_jtj=True)``: jtj, jtrrj, rhess) give the sandwich
with several breads: Gauss-Newton (A), H with the eigenvalues of A^-1/2 H A^-1/2 floored at 0.5 ... 0.1
("floorX"), the square root of that factor ("sqrt_floorX"), H only where its smallest whitened eigenvalue
is >= 0.5 ("newton_if_ok"), and the core's own estimate ("core"). Prints observed / predicted RMS
(pm) and their ratio per species.

    python bench/precision_floor.py 50,300 [particle seed, default 1] [radius Å, default 7]
"""
import sys, numpy as np, time
import os
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from precision import dose_for_counts, PIXEL
from aetcore.model import simulate
from aetcore.steps.refine import refine
from aetcore import _core
seed = int(sys.argv[2]) if len(sys.argv) > 2 else 1
radius = float(sys.argv[3]) if len(sys.argv) > 3 else 7.0
p = simulate.fept_particle(radius, orientation="random", seed=seed)
sp = np.asarray(p.species).astype(str)
angles = simulate.angles_range(-70, 70, 21)
n = int(2 * np.ceil((2 * radius + 6.0) / PIXEL / 2)); shape = (n, n)
ii=[0,0,0,1,1,2];jj=[0,1,2,1,2,2]
def sym(v):
    m=np.zeros(v.shape[:-1]+(3,3))
    for q in range(6): m[...,ii[q],jj[q]]=v[...,q]; m[...,jj[q],ii[q]]=v[...,q]
    return m
for counts in [float(c) for c in sys.argv[1].split(",")]:
    dose = dose_for_counts(p.positions, sp, angles, shape, counts)
    start = p.positions + np.random.default_rng(seed + 1).normal(0, 0.05, p.positions.shape)
    P, V = [], {}
    for k in range(20):
        clean = simulate.tilt_series(p.positions, sp, angles, shape, PIXEL, dose=dose, seed=1000 + k, threads=1)
        rn = np.random.default_rng(5000 + k).normal(0, 1.5 / clean.count_scale, clean.tilts.shape)
        tilts = (clean.tilts + rn).astype(np.float32)
        r = refine(start, sp, tilts, clean.angles, PIXEL, threads=1)
        P.append(r.positions)
        m = r.model
        e = _core.refine_objective(np.ascontiguousarray(r.positions / PIXEL), np.ascontiguousarray(r.labels, np.int32),
                                   np.ascontiguousarray(m.heights, float), np.ascontiguousarray(m.b_factors, float), float(m.blur), PIXEL,
                                   np.ascontiguousarray(np.radians(clean.angles)), tilts, float(r.scale), 5.0, False, True, 1)
        npix = tilts.size; dof = npix - (3 * len(sp) + 4 + 1)
        s = r.scale
        A = sym(e["jtj"]) * (s / PIXEL) ** 2
        M = sym(e["jtrrj"]) * (s / PIXEL) ** 2 * npix / dof
        Hr = sym(e["rhess"]) / PIXEL ** 2
        L = np.linalg.cholesky(A); Li = np.linalg.inv(L)
        W = Li @ (A + Hr) @ np.swapaxes(Li, 1, 2)
        lam, U = np.linalg.eigh(W)
        Mw = Li @ M @ np.swapaxes(Li, 1, 2)          # whitened meat
        def cov_from(f):   # f: function of lam -> diag factors D (n,3); cov = Li^T U D Uᵀ Mw U D Uᵀ Li
            D = f(lam)
            T = U * D[:, None, :] @ np.swapaxes(U, 1, 2)   # U diag(D) U^T
            C = np.swapaxes(Li, 1, 2) @ T @ Mw @ T @ Li
            return np.sqrt(np.maximum(np.diagonal(C, axis1=1, axis2=2), 0))
        variants = {"GN": lambda l: np.ones_like(l)}
        for fl in (0.5, 0.3, 0.25, 0.2, 0.1):
            variants[f"floor{fl}"] = (lambda fl: lambda l: 1 / np.maximum(l, fl))(fl)
        for fl in (0.25, 0.1, 0.05):
            variants[f"sqrt_floor{fl}"] = (lambda fl: lambda l: 1 / np.sqrt(np.maximum(l, fl)))(fl)
        variants["newton_if_ok"] = lambda l: np.where(l.min(axis=1, keepdims=True) >= 0.5, 1 / np.maximum(l, 1e-9), 1.0)
        for name, f in variants.items():
            V.setdefault(name, []).append(cov_from(f))
        V.setdefault("lammin", []).append(lam.min(axis=1))
        V.setdefault("core", []).append(r.precision)
    P = np.array(P); std = P.std(axis=0, ddof=1)
    lm = np.array(V["lammin"])
    print(f"counts {counts} seed {seed} radius {radius}: frac lam<0.5 Fe {np.mean(lm[:, sp=='Fe']<0.5):.3f} Pt {np.mean(lm[:, sp=='Pt']<0.5):.3f}")
    for name, v in V.items():
        if name == "lammin": continue
        v = np.array(v)
        row = []
        for el in ("Fe", "Pt"):
            msk = sp == el
            obs = np.sqrt((std[msk] ** 2).mean()); pred = np.sqrt((v[:, msk] ** 2).mean())
            row.append(f"{el} {obs*100:.1f}/{pred*100:.1f} = {obs/pred:.2f}")
        # reliable-only for Fe
        print(f"  {name:14s} " + "  ".join(row))
