"""Time series of atomic models of one particle (4D AET): rigid registration, atom correspondence,
per-atom changes, and crystal nuclei found at each time and followed across times.

Every model is a set of atom positions in Å in its own object frame (x, y, z). The models are
registered one after the other onto the previous, already registered model (:func:`icp`: trimmed
ICP, restarted on a rotation grid within 30° when it lands in a wrong optimum), so every result is
in the frame of the first model. Atoms are paired one-to-one between consecutive models
(:func:`correspond`: exact minimum-cost matching on the sparse candidate pairs). Nuclei
(:func:`find_nuclei`) are ordered atoms (order parameter from :mod:`aetcore.analysis.bond_order` or
given) grouped by steepest ascent of the order parameter onto cores of highly ordered atoms; they are
linked between times through the paired atoms.

Nucleus events between consecutive times ``t -> t+1`` (the rules of :func:`link_nuclei`):

* a nucleus ``p`` at ``t`` and ``q`` at ``t+1`` are *linked* when at least ``min_overlap`` of the
  atoms of the smaller of the two are paired with atoms of the other;
* linked nuclei form connected groups; a group with one nucleus on each side is ``growth`` if the
  size grows by at least ``max(min_change, rel_change × size_t)`` atoms, ``shrinkage`` if it falls by
  that much, ``stable`` otherwise; one nucleus into several is ``division``; several into one is
  ``merging``; several into several is ``merging+division``; a nucleus without partner at ``t+1`` is
  ``dissolution``, one without partner at ``t`` is ``nucleation``.

A *track* is a chain of one-to-one links (growth, shrinkage, stable); division, merging and
nucleation start new tracks. Each track gets a *fate*: ``division``, ``merging`` or ``dissolution``
if it ends in that event (``merging+division`` counts as merging); else, lasting to the last time, ``growth`` if it grew by the tolerance above
(measured on its first size) and never shrank, ``fluctuation`` otherwise; ``undetermined`` if it
exists at the last time only.
"""
from __future__ import annotations

import json
from numbers import Real
from pathlib import Path
from typing import NamedTuple

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components, min_weight_full_bipartite_matching
from scipy.spatial import cKDTree

from ._validate import as_positions, at_least, one_of, positive, resolve_threads

__all__ = ["Registration", "kabsch", "icp", "Correspondence", "correspond", "find_nuclei", "link_nuclei",
           "TrackResult", "track_series", "track_folders", "EVENTS", "FATES"]

EVENTS = ("growth", "shrinkage", "stable", "division", "merging", "merging+division", "dissolution",
          "nucleation")
FATES = ("growth", "fluctuation", "dissolution", "merging", "division", "undetermined")


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


# ----------------------------------------------------------------------------------------------
# Correspondence
# ----------------------------------------------------------------------------------------------

class Correspondence(NamedTuple):
    """One-to-one atom pairs between two models in the same frame.

    Attributes
    ----------
    index_a, index_b : (n_pairs,) int64
        Atom ``index_a[k]`` of the first model is atom ``index_b[k]`` of the second; sorted by index_a.
    distance : (n_pairs,) float64
        Distance of each pair, Å.
    unmatched_a, unmatched_b : int64 arrays
        Atoms without a partner.
    cutoff : float
        Largest allowed pair distance, Å.
    """
    index_a: np.ndarray
    index_b: np.ndarray
    distance: np.ndarray
    unmatched_a: np.ndarray
    unmatched_b: np.ndarray
    cutoff: float


def correspond(a, b, *, cutoff=None, method="hungarian", threads=None) -> Correspondence:
    """Pair the atoms of two registered models one-to-one.

    Parameters
    ----------
    a, b : (n, 3), (m, 3) arrays
        Positions in one frame, Å.
    cutoff : float, optional
        Largest pair distance, Å. Default: half the median nearest-neighbour distance of `a`
        (an atom that moved farther cannot be told from its neighbour).
    method : {"hungarian", "mutual"}
        ``"hungarian"``: the pairing that minimises the sum of squared pair distances, where leaving an
        atom unpaired costs ``cutoff² / 2`` (so any pair closer than `cutoff` beats leaving both
        unpaired); solved exactly on the sparse candidate pairs within `cutoff`
        (``scipy.sparse.csgraph.min_weight_full_bipartite_matching`` on the graph augmented by one
        "unpaired" node per atom). ``"mutual"``: atoms that are each other's nearest neighbour within
        `cutoff` (faster, pairs fewer atoms when atoms moved by a large fraction of the spacing).
    threads : int, optional
        Worker threads of the nearest-neighbour queries (None: every core the process may use);
        the result does not depend on it.

    Returns
    -------
    Correspondence
    """
    xa = as_positions(a, "a")
    xb = as_positions(b, "b")
    method = one_of(method, ("hungarian", "mutual"), "method")
    workers = resolve_threads(threads)
    cutoff = 0.5 * _median_nn(xa, workers) if cutoff is None else positive(cutoff, "cutoff")
    na, nb = len(xa), len(xb)
    ta, tb = cKDTree(xa), cKDTree(xb)
    if method == "mutual":
        dab, jab = tb.query(xa, distance_upper_bound=cutoff, workers=workers)
        _, jba = ta.query(xb, distance_upper_bound=cutoff, workers=workers)
        ok = np.isfinite(dab)
        ok[ok] = jba[jab[ok]] == np.flatnonzero(ok)
        ia, ib = np.flatnonzero(ok), jab[ok]
    else:
        cand = ta.sparse_distance_matrix(tb, cutoff, output_type="coo_matrix")
        ci, cj, cd = cand.row, cand.col, cand.data
        if ci.size == 0:
            ia = ib = np.zeros(0, np.int64)
        else:
            # rows: a atoms, then one "unpaired" node per b atom; columns: b atoms, then one per a atom.
            # All weights get +1 so exact-zero distances stay explicit edges; every full matching
            # has na + nb edges, so the shift changes no optimum.
            half = 0.5 * cutoff ** 2 + 1.0
            rows = np.concatenate([ci, np.arange(na), na + np.arange(nb), na + cj])
            cols = np.concatenate([cj, nb + np.arange(na), np.arange(nb), nb + ci])
            w = np.concatenate([cd ** 2 + 1.0, np.full(na, half), np.full(nb, half), np.full(ci.size, 1.0)])
            g = sp.csr_matrix((w, (rows, cols)), shape=(na + nb, na + nb))
            mr, mc = min_weight_full_bipartite_matching(g)
            real = (mr < na) & (mc < nb)
            ia, ib = mr[real], mc[real]
            srt = np.argsort(ia)
            ia, ib = ia[srt], ib[srt]
    ia = np.asarray(ia, np.int64)
    ib = np.asarray(ib, np.int64)
    dist = np.linalg.norm(xa[ia] - xb[ib], axis=1) if ia.size else np.zeros(0)
    return Correspondence(ia, ib, dist, np.setdiff1d(np.arange(na), ia), np.setdiff1d(np.arange(nb), ib),
                          float(cutoff))


# ----------------------------------------------------------------------------------------------
# Nuclei
# ----------------------------------------------------------------------------------------------

def _pairs(x, cutoff):
    p = cKDTree(x).query_pairs(cutoff, output_type="ndarray")
    return np.concatenate([p[:, 0], p[:, 1]]), np.concatenate([p[:, 1], p[:, 0]])


def find_nuclei(positions, order, *, threshold=0.5, core_threshold=0.7, min_size=13, min_core=3,
                min_coordination=7, cutoff=None, threads=None) -> np.ndarray:
    """Crystal nuclei of one model: groups of ordered atoms, each around a highly ordered core.

    Rules:

    1. *ordered* atoms have ``order >= threshold`` and at least `min_coordination` neighbours;
       *core* atoms are ordered atoms with ``order >= core_threshold``;
    2. a *core* is a connected set of at least `min_core` core atoms (neighbours: closer than
       `cutoff`); core atoms in smaller sets count as ordered atoms only;
    3. every other ordered atom steps to its most ordered ordered neighbour if that one is more
       ordered than itself, and so on (steepest ascent) until it reaches a core atom, whose core it
       joins; atoms whose ascent ends on a non-core local maximum (or a plateau) then join, one
       neighbour shell at a time, the nucleus of their most ordered ordered neighbour that has one,
       so every ordered atom connected to a core through ordered atoms joins a nucleus and ordered
       regions without a core join none;
    4. a nucleus is a core and the atoms that joined it; nuclei of fewer than `min_size` atoms are
       dropped.

    Parameters
    ----------
    positions : (n, 3) array
        Positions, Å.
    order : (n,) array
        Per-atom order parameter, e.g. :attr:`BondOrder.order` (1 for fcc, ~0.36 amorphous).
    threshold : float
        Order at which an atom counts as ordered (default 0.5: above 95 % of the atoms of a dense
        random packing, see :func:`aetcore.analysis.bond_order.normalized_order`).
    core_threshold : float
        Order of core atoms (default 0.7), ``>= threshold``.
    min_size : int
        Fewest atoms of a nucleus (default 13: an atom and a full first shell).
    min_core : int
        Fewest atoms of a core (default 3). Single atoms pass 0.7 by chance: in relaxed random
        packings of 2261 atoms with a free surface (6 seeds) at most one atom did, never two
        neighbours, while the cores of fcc nuclei of 50-150 atoms hold 25-120 atoms.
    min_coordination : int
        Fewest neighbours of an ordered atom (default 7). Atoms at an amorphous surface have 2-6
        neighbours and, with so few bonds, a high bond order by chance (in a relaxed random packing
        with a free surface, 53 of the 55 atoms with order >= 0.6 have 2-6 neighbours, and they
        form spurious surface "nuclei"); fcc surface atoms keep 7 ({110} edges) to 9 ({111})
        neighbours, only vertex atoms (5) are excluded. 0 disables the rule.
    cutoff : float, optional
        Neighbour distance, Å; default 1.207 × the median nearest-neighbour distance (between the
        first and second fcc shells).
    threads : int, optional
        Worker threads of the nearest-neighbour queries (None: every core the process may use);
        the result does not depend on it.

    Returns
    -------
    (n,) int64
        Nucleus label of each atom, ``-1`` for none; nuclei are numbered 0, 1, ... by decreasing size.
    """
    x = as_positions(positions)
    n = len(x)
    o = np.asarray(order, dtype=np.float64)
    if o.shape != (n,):
        raise ValueError(f"order: expected one value per atom, shape ({n},), got shape {o.shape}")
    if not np.isfinite(o).all():
        raise ValueError("order: expected finite values, got NaN or Inf")
    for v, name in ((threshold, "threshold"), (core_threshold, "core_threshold")):
        if isinstance(v, bool) or not isinstance(v, Real) or not np.isfinite(v):
            raise TypeError(f"{name}: expected a finite number, got {v!r}")
    if core_threshold < threshold:
        raise ValueError(f"core_threshold: expected >= threshold = {threshold}, got {core_threshold}")
    min_size = at_least(min_size, 1, "min_size", integer=True)
    min_core = at_least(min_core, 1, "min_core", integer=True)
    min_coordination = at_least(min_coordination, 0, "min_coordination", integer=True)
    workers = resolve_threads(threads)
    cutoff = (1.0 + np.sqrt(2.0)) / 2.0 * _median_nn(x, workers) if cutoff is None else positive(cutoff, "cutoff")

    labels = np.full(n, -1, np.int64)
    i, j = _pairs(x, cutoff)
    ordered = (o >= threshold) & (np.bincount(i, minlength=n) >= min_coordination)
    core = ordered & (o >= core_threshold)
    if not core.any():
        return labels
    # cores: connected components of the core atoms
    cc = core[i] & core[j]
    graph = sp.csr_matrix((np.ones(cc.sum()), (i[cc], j[cc])), shape=(n, n))
    _, comp = connected_components(graph, directed=False)
    core &= np.bincount(comp[core], minlength=n)[comp] >= min_core
    if not core.any():
        return labels
    # steepest ascent among ordered atoms: each points at its most ordered ordered neighbour
    target = np.arange(n)
    oo = ordered[i] & ordered[j] & ~core[i]
    si, sj = i[oo], j[oo]
    if si.size:
        srt = np.lexsort((o[sj], si))          # by atom, then by the neighbour's order
        si, sj = si[srt], sj[srt]
        last = np.r_[si[1:] != si[:-1], True]  # the most ordered neighbour of each atom
        best_i, best_j = si[last], sj[last]
        up = o[best_j] > o[best_i]
        target[best_i[up]] = best_j[up]
    for _ in range(64):  # pointer jumping: path lengths halve each round
        nxt = target[target]
        if np.array_equal(nxt, target):
            break
        target = nxt
    raw = np.where(ordered & core[target], comp[target], -1)
    # atoms stuck on a non-core local maximum join, one shell per round, the nucleus of their most
    # ordered neighbour that has one (rounds, not atoms, are looped)
    if si.size:
        for _ in range(n):
            free = (raw[si] < 0) & (raw[sj] >= 0)
            if not free.any():
                break
            fi, fj = si[free], sj[free]       # still sorted by atom, then neighbour order
            last = np.r_[fi[1:] != fi[:-1], True]
            raw[fi[last]] = raw[fj[last]]
    member = raw >= 0
    ids, counts = np.unique(raw[member], return_counts=True)
    keep = counts >= min_size
    ids, counts = ids[keep], counts[keep]
    rank = np.empty(len(ids), np.int64)
    rank[np.lexsort((ids, -counts))] = np.arange(len(ids))
    lut = np.full(comp.max() + 1, -1, np.int64)
    lut[ids] = rank
    labels[member] = lut[raw[member]]
    return labels


def _size_change_kind(s0: int, s1: int, min_change: int, rel_change: float) -> str:
    tol = max(min_change, rel_change * s0)
    if s1 - s0 >= tol:
        return "growth"
    if s0 - s1 >= tol:
        return "shrinkage"
    return "stable"


def link_nuclei(labels_a, labels_b, corr: Correspondence, *, min_overlap=0.3, min_change=3,
                rel_change=0.1) -> list:
    """Events between the nuclei of two consecutive models.

    Parameters
    ----------
    labels_a, labels_b : (n_a,), (n_b,) int arrays
        Nucleus labels (``-1`` none) of the two models, e.g. from :func:`find_nuclei`.
    corr : Correspondence
        Atom pairs from model a to model b.
    min_overlap : float in (0, 1]
        Nuclei ``p`` (in a) and ``q`` (in b) are linked when the paired atoms they share number at
        least ``min_overlap × min(size p, size q)`` (and at least one).
    min_change, rel_change
        A one-to-one link is ``growth`` (``shrinkage``) when the size rises (falls) by at least
        ``max(min_change, rel_change × size in a)`` atoms, else ``stable``.

    Returns
    -------
    list of dict
        One per event: ``event`` (see :data:`EVENTS`), ``from`` and ``to`` (sorted label lists),
        ``size_from`` and ``size_to`` (total atoms).
    """
    la = np.asarray(labels_a, np.int64)
    lb = np.asarray(labels_b, np.int64)
    min_overlap = _fraction(min_overlap, "min_overlap")
    min_change = at_least(min_change, 0, "min_change", integer=True)
    rel_change = at_least(rel_change, 0, "rel_change")
    if not isinstance(corr, Correspondence):
        raise TypeError(f"corr: expected a Correspondence, got {type(corr).__name__}")
    if corr.index_a.size and (corr.index_a.max() >= len(la) or corr.index_b.max() >= len(lb)):
        raise ValueError("corr: pairs index atoms beyond labels_a / labels_b")
    pa = np.unique(la[la >= 0])
    pb = np.unique(lb[lb >= 0])
    size_a = dict(zip(*np.unique(la[la >= 0], return_counts=True)))
    size_b = dict(zip(*np.unique(lb[lb >= 0], return_counts=True)))
    u, v = la[corr.index_a], lb[corr.index_b]
    both = (u >= 0) & (v >= 0)
    links = []
    if both.any():
        pairs, shared = np.unique(np.stack([u[both], v[both]], axis=1), axis=0, return_counts=True)
        for (p, q), s in zip(pairs, shared):  # a loop over nucleus pairs, a handful
            if s >= max(1.0, min_overlap * min(size_a[p], size_b[q])):
                links.append((int(p), int(q)))
    # connected groups of linked nuclei: a-nodes 0..len(pa)-1, b-nodes after them
    ia = {p: k for k, p in enumerate(pa)}
    ib = {q: len(pa) + k for k, q in enumerate(pb)}
    n = len(pa) + len(pb)
    events = []
    if n == 0:
        return events
    r = [ia[p] for p, _ in links]
    c = [ib[q] for _, q in links]
    g = sp.csr_matrix((np.ones(len(r)), (r, c)), shape=(n, n))
    _, comp = connected_components(g, directed=False)
    for k in np.unique(comp):
        nodes = np.flatnonzero(comp == k)
        fa = sorted(int(pa[m]) for m in nodes if m < len(pa))
        tb = sorted(int(pb[m - len(pa)]) for m in nodes if m >= len(pa))
        s0 = int(sum(size_a[p] for p in fa))
        s1 = int(sum(size_b[q] for q in tb))
        if not tb:
            kind = "dissolution"
        elif not fa:
            kind = "nucleation"
        elif len(fa) == 1 and len(tb) == 1:
            kind = _size_change_kind(s0, s1, min_change, rel_change)
        elif len(fa) == 1:
            kind = "division"
        elif len(tb) == 1:
            kind = "merging"
        else:
            kind = "merging+division"
        events.append({"event": kind, "from": fa, "to": tb, "size_from": s0, "size_to": s1})
    return events


# ----------------------------------------------------------------------------------------------
# A series of models
# ----------------------------------------------------------------------------------------------

class TrackResult(NamedTuple):
    """Everything :func:`track_series` found, in the frame of the first model (Å).

    Attributes
    ----------
    positions : list of (n_t, 3) float64
        Registered positions of each time.
    species : list of (n_t,) str arrays
    order : list of (n_t,) float64
        Order parameter of each atom.
    nuclei_labels : list of (n_t,) int64
        Global nucleus id of each atom (``-1`` none); ids run on across times.
    registrations : list of Registration
        Model ``t`` in its own frame -> frame of model 0 (identity for t = 0).
    correspondences : list of Correspondence
        Atom pairs ``t -> t+1`` (T - 1 of them).
    atoms : dict of column arrays
        Per-atom changes ``t -> t+1`` (see :func:`track_series`).
    nuclei : dict of column arrays
        One row per nucleus and time.
    events : list of dict
        Nucleus events between consecutive times.
    tracks : dict
        ``track id -> {"nuclei", "times", "sizes", "parents", "children", "fate"}``.
    """
    positions: list
    species: list
    order: list
    nuclei_labels: list
    registrations: list
    correspondences: list
    atoms: dict
    nuclei: dict
    events: list
    tracks: dict


def _as_models(models, species, orders):
    if isinstance(models, np.ndarray) or not hasattr(models, "__len__"):
        raise TypeError(f"models: expected a sequence of (n_t, 3) position arrays, got {type(models).__name__}")
    if len(models) < 1:
        raise ValueError("models: expected at least one model, got none")
    xs = [as_positions(m, f"models[{k}]") for k, m in enumerate(models)]
    for k, x in enumerate(xs):
        if len(x) < 4:
            raise ValueError(f"models[{k}]: expected at least 4 atoms, got {len(x)}")
    sps, ods = [], []
    for name, seq, out in (("species", species, sps), ("orders", orders, ods)):
        if seq is None:
            out.extend([None] * len(xs))
            continue
        if len(seq) != len(xs):
            raise ValueError(f"{name}: expected one entry per model ({len(xs)}), got {len(seq)}")
        for k, (s, x) in enumerate(zip(seq, xs)):
            a = np.asarray(s, dtype=str if name == "species" else np.float64)
            if a.shape != (len(x),):
                raise ValueError(f"{name}[{k}]: expected one value per atom, shape ({len(x)},), got shape {a.shape}")
            if name == "orders" and not np.isfinite(a).all():
                raise ValueError(f"{name}[{k}]: expected finite values, got NaN or Inf")
            out.append(a)
    return xs, sps, ods


def _check_options(register, trim, search_angle, match_cutoff, method, neighbour_cutoff, threshold,
                   core_threshold, min_size, min_core, min_coordination, min_overlap, min_change, rel_change,
                   threads):
    """Refuse bad options of :func:`track_series` before any work; return the normalised numbers."""
    if not isinstance(register, bool):
        raise TypeError(f"register: expected a bool, got {type(register).__name__}")
    trim = _fraction(trim, "trim")
    search_angle = at_least(search_angle, 0, "search_angle")
    resolve_threads(threads)
    one_of(method, ("hungarian", "mutual"), "method")
    match_cutoff = None if match_cutoff is None else positive(match_cutoff, "match_cutoff")
    neighbour_cutoff = None if neighbour_cutoff is None else positive(neighbour_cutoff, "neighbour_cutoff")
    # the nucleus options, checked by find_nuclei itself on a 4-atom dummy
    find_nuclei(np.eye(4, 3), np.zeros(4), threshold=threshold, core_threshold=core_threshold, min_size=min_size,
                min_core=min_core, min_coordination=min_coordination, cutoff=1.0, threads=1)
    _fraction(min_overlap, "min_overlap")
    min_change = at_least(min_change, 0, "min_change", integer=True)
    rel_change = at_least(rel_change, 0, "rel_change")
    return trim, search_angle, match_cutoff, neighbour_cutoff, min_change, rel_change


def track_series(models, species=None, *, orders=None, register=True, trim=0.9, search_angle=30.0,
                 match_cutoff=None, method="hungarian", neighbour_cutoff=None, threshold=0.5, core_threshold=0.7, min_size=13,
                 min_core=3, min_coordination=7, min_overlap=0.3, min_change=3, rel_change=0.1,
                 threads=None) -> TrackResult:
    """Register, pair and compare a time series of atomic models of one particle; find and follow nuclei.

    Parameters
    ----------
    models : sequence of (n_t, 3) arrays
        Atom positions at successive times, Å, each in its own frame.
    species : sequence of (n_t,) str arrays, optional
        Element symbols per model (species changes are reported if given).
    orders : sequence of (n_t,) arrays, optional
        Per-atom order parameter per model. Default: the normalised bond-orientational order
        :attr:`aetcore.analysis.bond_order.BondOrder.order` (1 fcc, ~0.36 amorphous).
    register : bool
        Register model t onto registered model t-1 by :func:`icp` (default). False: the models are
        already in one frame.
    trim, search_angle
        ICP fraction of pairs kept and largest turn searched (degrees), see :func:`icp`.
    match_cutoff : float, optional
        Largest distance of an atom pair, Å (default half the median nearest-neighbour distance).
    method : {"hungarian", "mutual"}
        Pairing, see :func:`correspond`.
    neighbour_cutoff : float, optional
        Neighbour distance for the bond order and nuclei, Å (default 1.207 × median nn distance).
    threshold, core_threshold, min_size, min_core, min_coordination
        Nuclei, see :func:`find_nuclei`.
    min_overlap, min_change, rel_change
        Events, see :func:`link_nuclei`.
    threads : int, optional
        Worker threads of the nearest-neighbour queries (None: every core the process may use);
        the result does not depend on it.

    Returns
    -------
    TrackResult
        ``atoms`` columns: ``time_from, time_to, atom_from, atom_to`` (-1 where the atom has no
        partner), ``species_from, species_to, species_changed``, ``x, y, z`` (at ``time_from``, or at
        ``time_to`` for atoms that appeared), ``dx, dy, dz, displacement`` (Å, NaN without partner),
        ``order_from, order_to, order_change``, ``nucleus_from, nucleus_to``.
        ``nuclei`` columns: ``nucleus, time, track, size, core_size, x, y, z`` (centroid, Å),
        ``radius_of_gyration`` (Å), ``mean_order, fate``.
    """
    xs, sps, ods = _as_models(models, species, orders)
    trim, search_angle, match_cutoff, neighbour_cutoff, min_change, rel_change = _check_options(
        register, trim, search_angle, match_cutoff, method, neighbour_cutoff, threshold, core_threshold, min_size,
        min_core, min_coordination, min_overlap, min_change, rel_change, threads)

    T = len(xs)
    regs = [Registration(np.eye(3), np.zeros(3), 0.0, len(xs[0]), 0, True)]
    pos = [xs[0]]
    for k in range(1, T):
        if register:
            reg = icp(xs[k], pos[k - 1], trim=trim, search_angle=search_angle, threads=threads)
        else:
            reg = Registration(np.eye(3), np.zeros(3), float("nan"), 0, 0, True)
        regs.append(reg)
        pos.append(xs[k] @ reg.rotation.T + reg.translation)
    sps = [np.full(len(x), "", dtype="<U1") if s is None else s for s, x in zip(sps, pos)]
    if any(o is None for o in ods):
        from .analysis.bond_order import bond_order
        ods = [bond_order(x, cutoff=neighbour_cutoff, threads=threads).order if o is None else o
               for o, x in zip(ods, pos)]

    # nuclei per time, with global ids
    local = [find_nuclei(x, o, threshold=threshold, core_threshold=core_threshold, min_size=min_size,
                         min_core=min_core, min_coordination=min_coordination, cutoff=neighbour_cutoff,
                         threads=threads) for x, o in zip(pos, ods)]
    offsets = np.cumsum([0] + [int(lab.max()) + 1 for lab in local])
    labels = [np.where(lab >= 0, lab + offsets[t], -1) for t, lab in enumerate(local)]

    corrs = [correspond(pos[t], pos[t + 1], cutoff=match_cutoff, method=method, threads=threads)
             for t in range(T - 1)]
    atoms = _atom_table(pos, sps, ods, labels, corrs)

    events = []
    for t, c in enumerate(corrs):
        for e in link_nuclei(labels[t], labels[t + 1], c, min_overlap=min_overlap, min_change=min_change,
                             rel_change=rel_change):
            events.append({"time_from": t, "time_to": t + 1, **e})
    tracks, track_of = _tracks(labels, events, T, min_change, rel_change)
    nuclei = _nucleus_table(pos, ods, labels, core_threshold, track_of, tracks)
    return TrackResult(pos, sps, list(ods), labels, regs, corrs, atoms, nuclei, events, tracks)


def _atom_table(pos, sps, ods, labels, corrs) -> dict:
    cols = {k: [] for k in ("time_from", "time_to", "atom_from", "atom_to", "species_from", "species_to",
                            "species_changed", "x", "y", "z", "dx", "dy", "dz", "displacement", "order_from",
                            "order_to", "order_change", "nucleus_from", "nucleus_to")}
    for t, c in enumerate(corrs):
        ia = np.concatenate([c.index_a, c.unmatched_a, np.full(len(c.unmatched_b), -1)])
        ib = np.concatenate([c.index_b, np.full(len(c.unmatched_a), -1), c.unmatched_b])
        n = len(ia)
        ha, hb = ia >= 0, ib >= 0
        both = ha & hb
        nan3 = np.full((n, 3), np.nan)
        xa = nan3.copy()
        xa[ha] = pos[t][ia[ha]]
        xb = nan3.copy()
        xb[hb] = pos[t + 1][ib[hb]]
        where = np.where(ha[:, None], xa, xb)
        d = xb - xa
        spa = np.where(ha, sps[t][np.maximum(ia, 0)], "")
        spb = np.where(hb, sps[t + 1][np.maximum(ib, 0)], "")
        oa = np.where(ha, ods[t][np.maximum(ia, 0)], np.nan)
        ob = np.where(hb, ods[t + 1][np.maximum(ib, 0)], np.nan)
        cols["time_from"].append(np.full(n, t))
        cols["time_to"].append(np.full(n, t + 1))
        cols["atom_from"].append(ia)
        cols["atom_to"].append(ib)
        cols["species_from"].append(spa)
        cols["species_to"].append(spb)
        cols["species_changed"].append(both & (spa != spb))
        for k, name in enumerate("xyz"):
            cols[name].append(where[:, k])
            cols["d" + name].append(d[:, k])
        cols["displacement"].append(np.linalg.norm(d, axis=1))
        cols["order_from"].append(oa)
        cols["order_to"].append(ob)
        cols["order_change"].append(ob - oa)
        cols["nucleus_from"].append(np.where(ha, labels[t][np.maximum(ia, 0)], -1))
        cols["nucleus_to"].append(np.where(hb, labels[t + 1][np.maximum(ib, 0)], -1))
    if not corrs:
        return {k: np.zeros(0) for k in cols}
    return {k: np.concatenate(v) for k, v in cols.items()}


def _tracks(labels, events, T, min_change, rel_change):
    """Chains of one-to-one links and their fates (rules in the module docstring)."""
    track_of = {}
    tracks = {}

    def new(nucleus, t, size, parents):
        tid = len(tracks)
        tracks[tid] = {"nuclei": [nucleus], "times": [t], "sizes": [size], "parents": parents,
                       "children": [], "steps": [], "end": None}
        track_of[nucleus] = tid
        for p in parents:
            tracks[p]["children"].append(tid)

    size = {int(i): int(c) for lab in labels for i, c in zip(*np.unique(lab[lab >= 0], return_counts=True))}
    for nucleus in np.unique(labels[0][labels[0] >= 0]):
        new(int(nucleus), 0, size[int(nucleus)], [])
    for t in range(1, T):
        for e in (e for e in events if e["time_to"] == t):
            if e["event"] in ("growth", "shrinkage", "stable"):
                tid = track_of[e["from"][0]]
                q = e["to"][0]
                tr = tracks[tid]
                tr["nuclei"].append(q)
                tr["times"].append(t)
                tr["sizes"].append(size[q])
                tr["steps"].append(e["event"])
                track_of[q] = tid
            else:
                parents = sorted({track_of[p] for p in e["from"]})
                for p in parents:
                    tracks[p]["end"] = e["event"]
                for q in e["to"]:
                    new(q, t, size[q], parents)
    for tid, tr in tracks.items():
        if tr["end"] is not None:
            tr["fate"] = tr["end"] if tr["end"] != "merging+division" else "merging"
        elif tr["times"][-1] != T - 1 or len(tr["times"]) == 1:
            tr["fate"] = "undetermined"
        else:
            grew = _size_change_kind(tr["sizes"][0], tr["sizes"][-1], min_change, rel_change) == "growth"
            tr["fate"] = "growth" if grew and "shrinkage" not in tr["steps"] else "fluctuation"
        del tr["end"]
    # events refer to tracks too
    for e in events:
        e["tracks_from"] = sorted({track_of[p] for p in e["from"]})
        e["tracks_to"] = sorted({track_of[q] for q in e["to"]})
    return tracks, track_of


def _nucleus_table(pos, ods, labels, core_threshold, track_of, tracks) -> dict:
    rows = {k: [] for k in ("nucleus", "time", "track", "size", "core_size", "x", "y", "z",
                            "radius_of_gyration", "mean_order", "fate")}
    for t, (x, o, lab) in enumerate(zip(pos, ods, labels)):
        m = lab >= 0
        if not m.any():
            continue
        ids, inv, cnt = np.unique(lab[m], return_inverse=True, return_counts=True)
        c = np.stack([np.bincount(inv, weights=x[m][:, k]) for k in range(3)], axis=1) / cnt[:, None]
        rg = np.sqrt(np.bincount(inv, weights=((x[m] - c[inv]) ** 2).sum(axis=1)) / cnt)
        rows["nucleus"].append(ids)
        rows["time"].append(np.full(len(ids), t))
        rows["track"].append(np.array([track_of[int(i)] for i in ids]))
        rows["size"].append(cnt)
        rows["core_size"].append(np.bincount(inv, weights=o[m] >= core_threshold).astype(np.int64))
        for k, name in enumerate("xyz"):
            rows[name].append(c[:, k])
        rows["radius_of_gyration"].append(rg)
        rows["mean_order"].append(np.bincount(inv, weights=o[m]) / cnt)
        rows["fate"].append(np.array([tracks[track_of[int(i)]]["fate"] for i in ids], dtype=object))
    if not rows["nucleus"]:
        return {k: np.zeros(0, dtype=object if k == "fate" else np.float64) for k in rows}
    return {k: np.concatenate(v) for k, v in rows.items()}


# ----------------------------------------------------------------------------------------------
# Folders of `aet run` results
# ----------------------------------------------------------------------------------------------

def _read_model(path: Path, order_key):
    from ase.io import read
    f = path / "atoms.xyz" if path.is_dir() else path
    if not f.is_file():
        raise ValueError(f"folders: {path} holds no atoms.xyz (expected an `aet run` results folder "
                         "or an extended XYZ file)")
    try:
        frames = read(f, index=":", format="extxyz")
    except Exception as e:  # ase raises many types on bad files
        raise ValueError(f"{f}: cannot read the atomic model as extended XYZ: {e}") from e
    if len(frames) != 1:
        raise ValueError(f"{f}: expected one model (one XYZ frame), got {len(frames)}")
    atoms = frames[0]
    order = None
    if order_key is not None:
        if order_key not in atoms.arrays:
            raise ValueError(f"order_key: {f} has no per-atom array {order_key!r} "
                             f"(it has {sorted(atoms.arrays)})")
        order = np.asarray(atoms.arrays[order_key], np.float64)
    return f, atoms.positions.astype(np.float64), np.asarray(atoms.get_chemical_symbols()), order


def _cell(v) -> str:
    if isinstance(v, (list, tuple, np.ndarray)):
        return ";".join(str(int(x)) for x in v)
    if isinstance(v, (float, np.floating)):
        return "nan" if not np.isfinite(v) else f"{float(v):.8g}"
    if isinstance(v, (bool, np.bool_)):
        return "1" if v else "0"
    return str(v)


def _write_csv(path: Path, columns: dict) -> None:
    from .io import atomic_path
    keys = list(columns)
    n = len(columns[keys[0]]) if keys else 0
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8", newline="") as fh:
            fh.write(",".join(keys) + "\n")
            cols = [columns[k] for k in keys]
            fh.writelines(",".join(_cell(c[r]) for c in cols) + "\n" for r in range(n))


def _event_columns(events) -> dict:
    keys = ("time_from", "time_to", "event", "from", "to", "size_from", "size_to", "tracks_from", "tracks_to")
    return {("nuclei_" + k if k in ("from", "to") else k): [e[k] for e in events] for k in keys}


def _h5_columns(group, columns: dict) -> None:
    import h5py
    for k, v in columns.items():
        if len(v) and isinstance(v[0], (list, tuple)):
            v = [";".join(str(int(x)) for x in item) for item in v]
        a = np.asarray(v)
        if a.dtype.kind in "OUS":
            group.create_dataset(k, data=np.asarray([str(s) for s in a], dtype=object),
                                 dtype=h5py.string_dtype())
        else:
            group.create_dataset(k, data=a)


def track_folders(folders, out, *, order_key=None, register=True, trim=0.9, search_angle=30.0,
                  match_cutoff=None, method="hungarian", neighbour_cutoff=None, threshold=0.5, core_threshold=0.7, min_size=13,
                  min_core=3, min_coordination=7, min_overlap=0.3, min_change=3, rel_change=0.1,
                  report=True, threads=None) -> dict:
    """Track the atomic models of one particle at successive times and write tables, figures and a report.

    Parameters
    ----------
    folders : sequence of paths
        One per time point, in time order: `aet run` results folders (``<folder>/atoms.xyz``) or
        extended XYZ files, one model each.
    out : path
        Results folder; written: ``out/track/atoms.csv`` (per-atom changes), ``nuclei.csv`` (one row
        per nucleus and time, with its track and fate), ``events.csv`` (nucleus events),
        ``track.h5`` (the same tables and, per time, the registered positions, species, order,
        nucleus labels, rotation and translation), ``summary.json`` (returned),
        ``nucleus_sizes.png``, ``displacements.png``; and a "Tracking" section in
        ``out/report.html`` if `report`. Every file is written whole or not at all.
    order_key : str, optional
        Take the per-atom order parameter from this array of the XYZ files instead of computing
        the normalised bond-orientational order (:mod:`aetcore.analysis.bond_order`).
    register, trim, search_angle, match_cutoff, method, neighbour_cutoff, threshold, core_threshold, min_size,
    min_core, min_coordination, min_overlap, min_change, rel_change, threads
        See :func:`track_series`.
    report : bool
        Add the "Tracking" section (order 110) to ``out/report.html``.

    Returns
    -------
    dict
        The summary written to ``summary.json``.
    """
    from .io import atomic_path, write_json
    if isinstance(folders, (str, Path)) or not hasattr(folders, "__len__"):
        raise TypeError(f"folders: expected a sequence of folders or XYZ files, one per time, got "
                        f"{type(folders).__name__}")
    if len(folders) < 2:
        raise ValueError(f"folders: expected at least 2 time points, got {len(folders)}")
    if not isinstance(out, (str, Path)):
        raise TypeError(f"out: expected a folder path, got {type(out).__name__}")
    if order_key is not None and not isinstance(order_key, str):
        raise TypeError(f"order_key: expected a str or None, got {type(order_key).__name__}")
    if not isinstance(report, bool):
        raise TypeError(f"report: expected a bool, got {type(report).__name__}")
    _check_options(register, trim, search_angle, match_cutoff, method, neighbour_cutoff, threshold, core_threshold,
                   min_size, min_core, min_coordination, min_overlap, min_change, rel_change, threads)
    paths = [Path(f) for f in folders]
    for p in paths:
        if not p.exists():
            raise ValueError(f"folders: {p} does not exist")
    read = [_read_model(p, order_key) for p in paths]
    files = [r[0] for r in read]
    res = track_series([r[1] for r in read], [r[2] for r in read],
                       orders=None if order_key is None else [r[3] for r in read], register=register, trim=trim,
                       search_angle=search_angle,
                       match_cutoff=match_cutoff, method=method, neighbour_cutoff=neighbour_cutoff,
                       threshold=threshold, core_threshold=core_threshold, min_size=min_size,
                       min_core=min_core, min_coordination=min_coordination, min_overlap=min_overlap,
                       min_change=min_change, rel_change=rel_change,
                       threads=threads)

    out = Path(out)
    tdir = out / "track"
    tdir.mkdir(parents=True, exist_ok=True)
    _write_csv(tdir / "atoms.csv", res.atoms)
    _write_csv(tdir / "nuclei.csv", res.nuclei)
    events = _event_columns(res.events)
    _write_csv(tdir / "events.csv", events)

    import h5py
    with atomic_path(tdir / "track.h5") as tmp:
        with h5py.File(tmp, "w") as h:
            h.attrs["n_times"] = len(paths)
            h.attrs["inputs"] = json.dumps([str(f) for f in files])
            h.attrs["units"] = "positions and translations in Å, frame of the first model"
            _h5_columns(h.create_group("atoms"), res.atoms)
            _h5_columns(h.create_group("nuclei"), res.nuclei)
            _h5_columns(h.create_group("events"), events)
            for t in range(len(paths)):
                g = h.create_group(f"times/{t}")
                g.create_dataset("positions", data=res.positions[t])
                g.create_dataset("species", data=np.asarray(res.species[t], dtype=object), dtype=h5py.string_dtype())
                g.create_dataset("order", data=res.order[t])
                g.create_dataset("nucleus", data=res.nuclei_labels[t])
                g.create_dataset("rotation", data=res.registrations[t].rotation)
                g.create_dataset("translation", data=res.registrations[t].translation)

    from .track_plots import displacements_figure, nucleus_sizes_figure
    figs = {"nucleus_sizes": (nucleus_sizes_figure(res.tracks, len(paths)),
                              "Nucleus size against time, one line per track, coloured by fate; dashed: "
                              "division or merging."),
            "displacements": (displacements_figure(res.atoms),
                              "Displacement of each paired atom between consecutive time points, after "
                              "rigid registration.")}
    for name, (fig, _) in figs.items():
        with atomic_path(tdir / f"{name}.png") as tmp:
            fig.savefig(tmp, format="png", dpi=110)

    kinds = [e["event"] for e in res.events]
    fates = [tr["fate"] for tr in res.tracks.values()]
    summary = {
        "inputs": [str(f) for f in files],
        "n_times": len(paths),
        "n_atoms": [len(x) for x in res.positions],
        "order_parameter": order_key or "normalised bond-orientational order (aetcore.analysis.bond_order)",
        "registration": [{"time": t, "rotation_deg": r.angle, "rotation": r.rotation, "translation": r.translation,
                          "rmsd": r.rmsd if np.isfinite(r.rmsd) else None, "n_pairs": r.n_pairs,
                          "iterations": r.iterations,
                          "converged": r.converged} for t, r in enumerate(res.registrations)],
        "correspondence": [{"time_from": t, "time_to": t + 1, "pairs": int(c.index_a.size),
                            "unmatched_from": int(c.unmatched_a.size), "unmatched_to": int(c.unmatched_b.size),
                            "median_displacement": float(np.median(c.distance)) if c.distance.size else None,
                            "cutoff": c.cutoff,
                            "species_changed": int(np.count_nonzero(
                                res.atoms["species_changed"][res.atoms["time_from"] == t]))}
                           for t, c in enumerate(res.correspondences)],
        "nuclei_per_time": [int(np.unique(lab[lab >= 0]).size) for lab in res.nuclei_labels],
        "events": {k: kinds.count(k) for k in EVENTS if k in kinds},
        "fates": {k: fates.count(k) for k in FATES if k in fates},
        "tracks": [{"track": tid, **{k: tr[k] for k in ("fate", "times", "sizes", "nuclei", "parents", "children")}}
                   for tid, tr in res.tracks.items()],
        "parameters": {"register": register, "trim": trim, "search_angle": search_angle,
                       "match_cutoff": match_cutoff, "method": method,
                       "neighbour_cutoff": neighbour_cutoff, "threshold": threshold,
                       "core_threshold": core_threshold, "min_size": min_size, "min_core": min_core,
                       "min_coordination": min_coordination, "min_overlap": min_overlap,
                       "min_change": min_change, "rel_change": rel_change, "order_key": order_key},
        "outputs": [f"track/{n}" for n in ("atoms.csv", "nuclei.csv", "events.csv", "track.h5", "summary.json",
                                           "nucleus_sizes.png", "displacements.png")],
        "report": False,
    }
    if report:
        try:
            from .report import add_section
        except ImportError:  # the report module is optional
            add_section = None
        if add_section is not None:
            add_section(out, "track", "Tracking", _report_html(summary), figs, order=110)
            summary["report"] = True
    write_json(tdir / "summary.json", summary)
    return summary


def _report_html(summary: dict) -> str:
    import html
    def fmt(v):
        return "n/a" if v is None else f"{v:.3f}"

    rows = "".join(
        f"<tr><td>{r['time']}</td><td>{summary['n_atoms'][r['time']]}</td><td>{fmt(r['rotation_deg'])}</td>"
        f"<td>{', '.join(fmt(v) for v in r['translation'])}</td><td>{fmt(r['rmsd'])}</td>"
        f"<td>{summary['nuclei_per_time'][r['time']]}</td></tr>" for r in summary["registration"])
    ev = ", ".join(f"{html.escape(k)}: {v}" for k, v in summary["events"].items()) or "none"
    fa = ", ".join(f"{html.escape(k)}: {v}" for k, v in summary["fates"].items()) or "none"
    return ("<table><tr><th>time</th><th>atoms</th><th>rotation (°)</th><th>translation (Å)</th>"
            "<th>ICP rmsd (Å)</th><th>nuclei</th></tr>" + rows + "</table>"
            f"<p>Nucleus events: {ev}.</p><p>Track fates: {fa}.</p>"
            "<p>Tables: <code>track/atoms.csv</code>, <code>track/nuclei.csv</code>, "
            "<code>track/events.csv</code>, <code>track/track.h5</code>.</p>")
