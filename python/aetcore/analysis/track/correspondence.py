"""One-to-one pairing of the atoms of two registered models (:func:`correspond`: exact minimum-cost
matching on the sparse candidate pairs within a cutoff). Positions in Å.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import min_weight_full_bipartite_matching
from scipy.spatial import cKDTree

from ..._util.validate import as_positions, one_of, positive, resolve_threads
from .registration import _median_nn

__all__ = ["Correspondence", "correspond"]


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
