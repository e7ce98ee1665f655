"""Crystal nuclei in one model (:func:`find_nuclei`: ordered atoms grouped by steepest ascent of the
order parameter onto cores) and their events between two times (:func:`link_nuclei`; the rules are
in :mod:`aetcore.analysis.track`).
"""
from __future__ import annotations

from numbers import Real

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

from ..._util.validate import as_positions, at_least, positive, resolve_threads
from .correspondence import Correspondence
from .registration import _fraction, _median_nn

__all__ = ["find_nuclei", "link_nuclei", "EVENTS"]

EVENTS = ("growth", "shrinkage", "stable", "division", "merging", "merging+division", "dissolution",
          "nucleation")


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
