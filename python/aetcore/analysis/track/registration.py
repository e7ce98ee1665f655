"""Rigid registration of two atomic models: :func:`kabsch` (weighted least-squares rotation and
translation of paired points) and :func:`icp` (trimmed ICP, restarted on a rotation grid within
``search_angle`` when it lands in a wrong optimum). Positions in Å.
"""
from __future__ import annotations

from numbers import Real
from typing import NamedTuple

import numpy as np
from scipy.spatial import cKDTree

from ..._util.validate import as_positions, at_least, positive, resolve_threads

__all__ = ["Registration", "kabsch", "icp"]


def _median_nn(x: np.ndarray, workers: int = 1) -> float:
    if x.shape[0] < 2:
        raise ValueError(f"positions: expected at least 2 atoms, got {x.shape[0]}")
    d, _ = cKDTree(x).query(x, k=2, workers=workers)
    return float(np.median(d[:, 1]))


def _fraction(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"{name}: expected a number in (0, 1], got {type(value).__name__}")
    if not (0 < value <= 1):
        raise ValueError(f"{name}: expected a number in (0, 1], got {value}")
    return float(value)


# ----------------------------------------------------------------------------------------------
# Rigid registration
# ----------------------------------------------------------------------------------------------

class Registration(NamedTuple):
    """A rigid transform ``x -> x @ rotation.T + translation`` (``R x + t`` on column vectors).

    Attributes
    ----------
    rotation : (3, 3) float64
        Proper rotation (det +1).
    translation : (3,) float64
        Å.
    rmsd : float
        Root-mean-square distance of the kept nearest-neighbour pairs after the last step, Å.
    n_pairs : int
        Pairs kept in the last step.
    iterations : int
    converged : bool
    """
    rotation: np.ndarray
    translation: np.ndarray
    rmsd: float
    n_pairs: int
    iterations: int
    converged: bool

    @property
    def angle(self) -> float:
        """Rotation angle, degrees."""
        return float(np.degrees(np.arccos(np.clip((np.trace(self.rotation) - 1) / 2, -1.0, 1.0))))

    def apply(self, positions) -> np.ndarray:
        """Transform (n, 3) positions, Å."""
        return as_positions(positions) @ self.rotation.T + self.translation


def kabsch(source, target, weights=None):
    """Least-squares rigid transform taking `source` onto `target` (Kabsch/Umeyama, no scaling).

    Parameters
    ----------
    source, target : (n, 3) arrays
        Paired positions, Å.
    weights : (n,) array, optional
        Non-negative weight of each pair.

    Returns
    -------
    rotation : (3, 3) float64
        Proper rotation minimising ``Σ w |R s + t - target|²``.
    translation : (3,) float64, Å
    """
    s = as_positions(source, "source")
    d = as_positions(target, "target")
    if s.shape != d.shape:
        raise ValueError(f"target: expected the shape of source {s.shape}, got {d.shape}")
    w = np.ones(len(s)) if weights is None else np.asarray(weights, dtype=np.float64)
    if w.shape != (len(s),) or not np.isfinite(w).all() or (w < 0).any() or w.sum() <= 0:
        raise ValueError(f"weights: expected {len(s)} non-negative finite weights with a positive sum")
    w = w / w.sum()
    cs, cd = w @ s, w @ d
    h = (s - cs).T @ ((d - cd) * w[:, None])
    u, _, vt = np.linalg.svd(h)
    # flip the weakest axis if the best orthogonal map is a reflection
    fix = np.diag([1.0, 1.0, np.sign(np.linalg.det(vt.T @ u.T)) or 1.0])
    r = vt.T @ fix @ u.T
    return r, cd - r @ cs


def _icp_run(a, b, tree, r, t, keep_n, max_iterations, tolerance, workers):
    """Trimmed ICP from (r, t): (r, t, rmsd of the kept pairs, iterations, converged)."""
    extent = np.linalg.norm(a - a.mean(axis=0), axis=1).max() + 1.0
    converged = False
    it = 0
    for it in range(1, max_iterations + 1):
        d, idx = tree.query(a @ r.T + t, workers=workers)
        keep = np.argpartition(d, keep_n - 1)[:keep_n] if keep_n < len(a) else np.arange(len(a))
        r_new, t_new = kabsch(a[keep], b[idx[keep]])
        # largest displacement of any atom caused by the update: rotation part bounded by extent
        step = np.linalg.norm(r_new - r, 2) * extent + np.linalg.norm((t_new - t) + (r_new - r) @ a.mean(axis=0))
        r, t = r_new, t_new
        if step < tolerance:
            converged = True
            break
    d, _ = tree.query(a @ r.T + t, workers=workers)
    kept = np.partition(d, keep_n - 1)[:keep_n] if keep_n < len(a) else d
    return r, t, float(np.sqrt(np.mean(kept ** 2))), it, converged


def _search_rotations(max_angle: float, step: float = 10.0) -> np.ndarray:
    """Rotation vectors on a cubic grid of `step` degrees inside the ball of `max_angle` degrees,
    smallest first: every rotation within `max_angle` is within step·√3/2 of one of them."""
    k = int(np.floor(max_angle / step))
    g = np.mgrid[-k:k + 1, -k:k + 1, -k:k + 1].reshape(3, -1).T * np.radians(step)
    g = g[(np.linalg.norm(g, axis=1) <= np.radians(max_angle) + 1e-12) & (np.abs(g).sum(axis=1) > 0)]
    return g[np.argsort(np.linalg.norm(g, axis=1), kind="stable")]


def icp(moving, fixed, *, rotation=None, translation=None, trim=0.9, search_angle=30.0, max_iterations=100,
        tolerance=1e-7, threads=None) -> Registration:
    """Register `moving` onto `fixed` by trimmed iterative closest point (rotation + translation).

    Each step pairs every moving atom with its nearest fixed atom, keeps the `trim` fraction of
    closest pairs (atoms present in one model only, e.g. surface atoms that came or went, are the
    far pairs) and solves the pairs' rigid transform exactly (:func:`kabsch`).

    ICP finds the nearest local optimum, and a lattice or a dense packing offers one every few
    degrees: the start must be within about a third of the nearest-neighbour distance at the
    particle's surface (about 8° for a 3 nm particle). A registration is *accepted* when the
    root-mean-square distance of its kept pairs is below a quarter of the median nearest-neighbour
    distance of `fixed` (0.69 Å for fcc Pt; wrong optima sit near 0.35-0.4 of it). If the first run
    is not accepted, ICP restarts (on at most 600 atoms, 30 steps each) from rotations on a 10° grid
    of rotation vectors within `search_angle` of the start, smallest turns first, stops at the
    first accepted one, and refines the best on all atoms. For turns beyond `search_angle`, give a
    rough `rotation`.

    Parameters
    ----------
    moving, fixed : (n, 3), (m, 3) arrays
        Positions, Å.
    rotation : (3, 3) array, optional
        Starting rotation (default identity).
    translation : (3,) array, optional
        Starting translation, Å (default: the one that aligns the centroids after the rotation).
    trim : float in (0, 1]
        Fraction of pairs kept per step.
    search_angle : float
        Largest turn from the start searched when the first run is not accepted, degrees
        (default 30; 0 disables the search).
    max_iterations : int
    tolerance : float
        Stop when the transform moves no atom of `moving` by more than `tolerance` Å in a step.
    threads : int, optional
        Worker threads of the nearest-neighbour queries (None: every core the process may use);
        the result does not depend on it.

    Returns
    -------
    Registration
        Maps `moving` into the frame of `fixed`; ``converged`` is False if it was not accepted.
    """
    a = as_positions(moving, "moving")
    b = as_positions(fixed, "fixed")
    trim = _fraction(trim, "trim")
    search_angle = at_least(search_angle, 0, "search_angle")
    if search_angle > 180:
        raise ValueError(f"search_angle: expected degrees in [0, 180], got {search_angle}")
    max_iterations = at_least(max_iterations, 1, "max_iterations", integer=True)
    tolerance = positive(tolerance, "tolerance")
    workers = resolve_threads(threads)
    r0 = np.eye(3) if rotation is None else np.asarray(rotation, dtype=np.float64)
    if r0.shape != (3, 3) or not np.isfinite(r0).all() or not np.allclose(r0 @ r0.T, np.eye(3), atol=1e-6) \
            or np.linalg.det(r0) < 0:
        raise ValueError(f"rotation: expected a (3, 3) proper rotation matrix, got {np.asarray(rotation)!r}")
    t0 = None if translation is None else np.asarray(translation, np.float64)
    if t0 is not None and (t0.shape != (3,) or not np.isfinite(t0).all()):
        raise ValueError(f"translation: expected 3 finite numbers (Å), got {np.asarray(translation)!r}")
    if len(a) < 3 or len(b) < 3:
        raise ValueError(f"moving, fixed: expected at least 3 atoms each, got {len(a)} and {len(b)}")
    tree = cKDTree(b)
    accept = 0.25 * _median_nn(b, workers)
    ca, cb = a.mean(axis=0), b.mean(axis=0)
    keep_n = max(3, int(round(trim * len(a))))
    r, t, rmsd, it, conv = _icp_run(a, b, tree, r0, cb - r0 @ ca if t0 is None else t0, keep_n,
                                    max_iterations, tolerance, workers)
    if rmsd >= accept and search_angle > 0:
        sub = a[:: max(1, len(a) // 600)]  # a deterministic, even subsample for the search
        keep_s = max(3, int(round(trim * len(sub))))
        best = (np.inf, None, None)
        for v in _search_rotations(search_angle):
            rs = _rotvec_matrix(v) @ r0
            # the start keeps the given translation's meaning: centroids aligned after the turn
            rr, tt, rm, _, _ = _icp_run(sub, b, tree, rs, cb - rs @ ca, keep_s, 30, 1e-3, workers)
            if rm < best[0]:
                best = (rm, rr, tt)
            if rm < accept:
                break
        r2, t2, rmsd2, it2, conv2 = _icp_run(a, b, tree, best[1], best[2], keep_n, max_iterations, tolerance,
                                             workers)
        if rmsd2 < rmsd:
            r, t, rmsd, it, conv = r2, t2, rmsd2, it2, conv2
    return Registration(r, t, rmsd, int(keep_n), it, bool(conv and rmsd < accept))


def _rotvec_matrix(v) -> np.ndarray:
    """Rotation matrix of a rotation vector (axis × angle in radians), Rodrigues' formula."""
    angle = float(np.linalg.norm(v))
    if angle == 0:
        return np.eye(3)
    k = np.asarray(v) / angle
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + np.sin(angle) * kx + (1 - np.cos(angle)) * kx @ kx
