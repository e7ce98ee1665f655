"""Grains: connected regions of atoms sharing one label (phase and variant), and their sizes.

Two atoms are connected when they are first neighbours (a pair list from
:func:`aetcore.analysis.neighbors.neighbour_list`, or the fcc site table of
:func:`aetcore.analysis.order.site_neighbours`) and carry the same label; a grain is a connected
component of that graph (:func:`scipy.sparse.csgraph.connected_components`).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from .._util.validate import as_positions, at_least, positive

__all__ = ["Grains", "find_grains", "site_pairs"]


@dataclass
class Grains:
    """Grains and their sizes.

    Attributes
    ----------
    label : (n,) int64
        Grain of every atom, numbered 0, 1, ... by decreasing size; -1 for atoms in components
        smaller than `min_size` (or with an ignored label).
    phase : (k,) str
        Label of each grain.
    size : (k,) int64
        Atoms per grain.
    volume : (k,) float64
        ``size * atomic_volume``, Å³ (NaN without an atomic volume).
    diameter : (k,) float64
        Diameter of the sphere of that volume, Å.
    centroid : (k, 3) float64
        Mean position, Å (NaN without positions).
    """

    label: np.ndarray
    phase: np.ndarray
    size: np.ndarray
    volume: np.ndarray
    diameter: np.ndarray
    centroid: np.ndarray

    def table(self) -> list:
        """One dict per grain (id, phase, atoms, volume_A3, diameter_A, centroid_A)."""
        return [{"id": k, "phase": str(self.phase[k]), "atoms": int(self.size[k]),
                 "volume_A3": float(self.volume[k]), "diameter_A": float(self.diameter[k]),
                 "centroid_A": [float(c) for c in self.centroid[k]]} for k in range(len(self.size))]


def site_pairs(neighbour_table) -> tuple:
    """(i, j) pairs from an (n, k) neighbour table with -1 for empty sites (e.g.
    ``order.site_neighbours(sites, order.fcc_shell_offsets(1))``)."""
    nb = np.asarray(neighbour_table)
    if nb.ndim != 2:
        raise ValueError(f"neighbour_table: expected an (n, k) table of atom indices, got shape {nb.shape}")
    i = np.repeat(np.arange(nb.shape[0]), nb.shape[1])
    j = nb.ravel()
    ok = j >= 0
    return i[ok].astype(np.int64), j[ok].astype(np.int64)


def find_grains(labels, pairs, *, min_size: int = 1, ignore=(), positions=None, atomic_volume=None) -> Grains:
    """Connected regions of first-neighbour atoms with equal labels.

    Parameters
    ----------
    labels : (n,) array
        Per-atom label (e.g. the phase from :func:`aetcore.analysis.order.classify_phases`, or any
        hashable combination such as phase + anti-phase variant).
    pairs : (i, j) tuple of (m,) int arrays
        First-neighbour pairs (either or both directions).
    min_size : int
        Components with fewer atoms get label -1 and are not listed.
    ignore : sequence
        Labels that never form grains (e.g. ``("A1",)`` to list ordered grains only).
    positions : (n, 3) array, optional
        For the centroids, Å.
    atomic_volume : float, optional
        Volume per atom, Å³ (fcc: ``a**3 / 4``), for volumes and diameters.

    Returns
    -------
    Grains
    """
    lab = np.asarray(labels)
    if lab.ndim != 1:
        raise ValueError(f"labels: expected one label per atom, got shape {lab.shape}")
    n = lab.shape[0]
    if not (isinstance(pairs, (tuple, list)) and len(pairs) == 2):
        raise TypeError(f"pairs: expected a tuple (i, j) of index arrays, got {type(pairs).__name__}")
    i, j = (np.asarray(p, dtype=np.int64) for p in pairs)
    if i.shape != j.shape or i.ndim != 1:
        raise ValueError(f"pairs: expected two index arrays of one length, got shapes {i.shape} and {j.shape}")
    if i.size and (min(i.min(), j.min()) < 0 or max(i.max(), j.max()) >= n):
        raise ValueError(f"pairs: expected atom indices in [0, {n}), got values out of range")
    min_size = at_least(min_size, 1, "min_size", integer=True)
    x = None if positions is None else as_positions(positions)
    if x is not None and x.shape[0] != n:
        raise ValueError(f"positions: expected {n} positions (one per label), got {x.shape[0]}")
    vol = None if atomic_volume is None else positive(atomic_volume, "atomic_volume")

    _, code = np.unique(lab, return_inverse=True)
    skip = np.isin(lab, list(ignore)) if len(ignore) else np.zeros(n, bool)
    keep = (code[i] == code[j]) & ~skip[i] & ~skip[j]
    graph = coo_matrix((np.ones(int(keep.sum()), dtype=np.int8), (i[keep], j[keep])), shape=(n, n))
    _, comp = connected_components(graph, directed=False)
    sizes = np.bincount(comp)
    big = (sizes >= min_size)
    big_ids = np.flatnonzero(big)
    # ignored atoms are singletons: never grains
    ignored_comp = np.unique(comp[skip])
    big_ids = big_ids[~np.isin(big_ids, ignored_comp)]
    order = big_ids[np.lexsort((big_ids, -sizes[big_ids]))]  # by decreasing size, ties by first atom
    remap = np.full(sizes.size, -1, dtype=np.int64)
    remap[order] = np.arange(order.size)
    label = remap[comp]
    k = order.size
    size = sizes[order].astype(np.int64)
    first = np.full(k, -1, dtype=np.int64)
    valid = label >= 0
    first[label[valid][::-1]] = np.flatnonzero(valid)[::-1]  # an atom of every grain, for its label
    phase = lab[first] if k else lab[:0]
    volume = size * vol if vol is not None else np.full(k, np.nan)
    diameter = np.cbrt(6.0 * volume / np.pi)
    centroid = np.full((k, 3), np.nan)
    if x is not None and k:
        sums = np.zeros((k, 3))
        np.add.at(sums, label[valid], x[valid])
        centroid = sums / size[:, None]
    return Grains(label=label, phase=np.asarray(phase).astype(str), size=size, volume=np.asarray(volume, float),
                  diameter=np.asarray(diameter, float), centroid=centroid)
