"""Bond-orientational order: Steinhardt q_l per atom, Lechner–Dellago averaged q̄_l, global Q_l, and
a normalised local order parameter (1 for fcc, low for amorphous) for nucleation studies.

Definitions (positions in Å, object frame (x, y, z); bonds are the vectors ``r_j - r_i`` to the
neighbours ``j`` of atom ``i``):

* ``q_lm(i) = 1/N_b(i) Σ_j Y_lm(r_ij)`` and
  ``q_l(i) = sqrt(4π/(2l+1) Σ_m |q_lm(i)|²)`` (Steinhardt, Nelson & Ronchetti, PRB 28, 784 (1983)).
* ``q̄_lm(i) = 1/(N_b(i)+1) Σ_{k ∈ {i} ∪ N(i)} q_lm(k)`` and ``q̄_l(i)`` from ``q̄_lm`` as above
  (Lechner & Dellago, J. Chem. Phys. 129, 114707 (2008)).
* Global ``Q_lm = Σ_bonds Y_lm / Σ_i N_b(i)`` and ``Q_l`` from ``Q_lm`` (Steinhardt 1983).

An atom without neighbours has ``q_lm = 0`` (no bond, no order), hence ``q_l = 0``.
"""
from __future__ import annotations

from numbers import Integral
from typing import NamedTuple

import numpy as np
import scipy.sparse as sp
from scipy.spatial import cKDTree

from .._util.validate import as_positions, at_least, positive, resolve_threads

try:  # SciPy >= 1.15
    from scipy.special import sph_harm_y as _sph_harm_y
except ImportError:  # pragma: no cover - older SciPy: sph_harm(m, n, azimuth, polar)
    from scipy.special import sph_harm as _sph_harm

    def _sph_harm_y(l, m, polar, azimuth):
        return _sph_harm(m, l, azimuth, polar)

__all__ = ["REFERENCE", "FCC_Q4", "FCC_Q6", "CUTOFF_FACTOR", "neighbour_bonds", "steinhardt",
           "global_steinhardt", "normalized_order", "BondOrder", "bond_order"]

#: (q4, q6) of perfect lattices with their first coordination shell (12 neighbours for fcc, hcp and
#: the icosahedron; 8 + 6 for bcc), Steinhardt 1983 and Mickel et al., J. Chem. Phys. 138, 044501 (2013).
REFERENCE = {
    "fcc": (0.190941, 0.574524),
    "hcp": (0.097222, 0.484762),
    "bcc": (0.036370, 0.510688),
    "icosahedral": (0.0, 0.663325),
}
FCC_Q4, FCC_Q6 = REFERENCE["fcc"]

#: Default cutoff in units of the median nearest-neighbour distance: (1 + sqrt 2) / 2, halfway
#: between the first (d) and second (sqrt(2) d) fcc shells, so fcc and hcp get 12 neighbours and
#: bcc (shells d and 2/sqrt 3 d) its 14.
CUTOFF_FACTOR = (1.0 + np.sqrt(2.0)) / 2.0


def _ls(l) -> tuple:
    ls = (l,) if isinstance(l, Integral) else tuple(l)
    if not ls or any(isinstance(v, bool) or not isinstance(v, Integral) or v < 0 for v in ls):
        raise ValueError(f"l: expected a non-negative integer or a sequence of them, got {l!r}")
    return tuple(int(v) for v in ls)


def neighbour_bonds(positions, *, cutoff=None, n_neighbours=None, threads=None):
    """Directed bonds ``i -> j`` between neighbours.

    Parameters
    ----------
    positions : (n, 3) array
        Atom positions ``(x, y, z)``, Å.
    cutoff : float, optional
        Neighbours are the atoms closer than `cutoff`, Å. By default ``CUTOFF_FACTOR`` (1.207) times
        the median nearest-neighbour distance.
    n_neighbours : int, optional
        Instead of a cutoff, the `n_neighbours` nearest atoms of each atom (the relation is then not
        symmetric). Exclusive with `cutoff`.
    threads : int, optional
        Worker threads of the nearest-neighbour queries (None: every core the process may use);
        the result does not depend on it.

    Returns
    -------
    i, j : (n_bonds,) int64
        Bond ``k`` goes from atom ``i[k]`` to atom ``j[k]``; sorted by ``i``.
    cutoff : float
        The cutoff used, Å (NaN with `n_neighbours`).
    """
    x = as_positions(positions)
    n = x.shape[0]
    workers = resolve_threads(threads)
    if cutoff is not None and n_neighbours is not None:
        raise ValueError("cutoff, n_neighbours: expected at most one of them, got both")
    tree = cKDTree(x)
    if n_neighbours is not None:
        k = at_least(n_neighbours, 1, "n_neighbours", integer=True)
        if k > n - 1:
            raise ValueError(f"n_neighbours: expected at most n_atoms - 1 = {n - 1}, got {k}")
        _, idx = tree.query(x, k=k + 1, workers=workers)
        i = np.repeat(np.arange(n), k)
        j = idx[:, 1:].ravel()  # column 0 is the atom itself
        return i.astype(np.int64), j.astype(np.int64), float("nan")
    if cutoff is None:
        if n < 2:
            raise ValueError(f"positions: expected at least 2 atoms to estimate the cutoff, got {n}")
        d, _ = tree.query(x, k=2, workers=workers)
        cutoff = CUTOFF_FACTOR * float(np.median(d[:, 1]))
        if cutoff <= 0:
            raise ValueError("positions: the median nearest-neighbour distance is 0 (coincident atoms); "
                             "give cutoff explicitly")
    else:
        cutoff = positive(cutoff, "cutoff")
    pairs = tree.query_pairs(cutoff, output_type="ndarray")
    i = np.concatenate([pairs[:, 0], pairs[:, 1]]).astype(np.int64)
    j = np.concatenate([pairs[:, 1], pairs[:, 0]]).astype(np.int64)
    order = np.argsort(i, kind="stable")
    return i[order], j[order], float(cutoff)


def _bond_harmonics(x, i, j, l):
    """Y_lm of every bond direction, (n_bonds, 2l+1) complex, m = -l..l."""
    v = x[j] - x[i]
    r = np.linalg.norm(v, axis=1)
    polar = np.arccos(np.clip(v[:, 2] / np.where(r > 0, r, 1.0), -1.0, 1.0))
    azimuth = np.mod(np.arctan2(v[:, 1], v[:, 0]), 2 * np.pi)
    m = np.arange(-l, l + 1)
    return _sph_harm_y(l, m[None, :], polar[:, None], azimuth[:, None])


def _norm(qlm, l):
    return np.sqrt(4 * np.pi / (2 * l + 1) * np.sum(np.abs(qlm) ** 2, axis=-1))


def _local_qlm(x, i, j, l, counts):
    n = x.shape[0]
    incidence = sp.csr_matrix((np.ones(i.size), (i, np.arange(i.size))), shape=(n, i.size))
    y = _bond_harmonics(x, i, j, l)
    return (incidence @ y) / np.maximum(counts, 1)[:, None]


def _averaged(qlm, i, j, counts):
    n = qlm.shape[0]
    # each atom averages its own q_lm with its neighbours' (Lechner–Dellago)
    adjacency = sp.csr_matrix((np.ones(i.size), (i, j)), shape=(n, n)) + sp.identity(n, format="csr")
    return (adjacency @ qlm) / (counts + 1)[:, None]


def steinhardt(positions, l=(4, 6), *, cutoff=None, n_neighbours=None, average=False, threads=None) -> np.ndarray:
    """Steinhardt bond-orientational order ``q_l`` (or averaged ``q̄_l``) of every atom.

    Parameters
    ----------
    positions : (n, 3) array
        Atom positions ``(x, y, z)``, Å.
    l : int or sequence of int
        Degrees, default ``(4, 6)``.
    cutoff, n_neighbours
        Neighbour definition, see :func:`neighbour_bonds` (default: 1.207 × the median
        nearest-neighbour distance).
    average : bool
        Lechner–Dellago ``q̄_l`` (q_lm averaged over the atom and its neighbours) instead of ``q_l``.
    threads : int, optional
        Worker threads of the nearest-neighbour queries (None: every core the process may use);
        the result does not depend on it.

    Returns
    -------
    (n, len(l)) float64, dimensionless; for a perfect bulk fcc atom ``q4 = 0.19094``, ``q6 = 0.57452``.
    """
    ls = _ls(l)
    x = as_positions(positions)
    i, j, _ = neighbour_bonds(x, cutoff=cutoff, n_neighbours=n_neighbours, threads=threads)
    counts = np.bincount(i, minlength=x.shape[0]).astype(np.float64)
    out = np.empty((x.shape[0], len(ls)))
    for k, lv in enumerate(ls):  # a loop over degrees, not atoms
        qlm = _local_qlm(x, i, j, lv, counts)
        out[:, k] = _norm(_averaged(qlm, i, j, counts) if average else qlm, lv)
    return out


def global_steinhardt(positions, l=(4, 6), *, cutoff=None, n_neighbours=None, threads=None) -> np.ndarray:
    """Global bond-orientational order ``Q_l`` over every bond of the model (Steinhardt 1983).

    Bond directions are averaged before the norm, so ``Q_l`` is large only when the bonds of the
    whole model share one orientation (a single crystal: ``Q4 = 0.19094``, ``Q6 = 0.57452`` for fcc)
    and tends to 0 for amorphous or randomly oriented polycrystalline models.

    Parameters
    ----------
    positions, l, cutoff, n_neighbours, threads
        As in :func:`steinhardt`.

    Returns
    -------
    (len(l),) float64, dimensionless.
    """
    ls = _ls(l)
    x = as_positions(positions)
    i, j, _ = neighbour_bonds(x, cutoff=cutoff, n_neighbours=n_neighbours, threads=threads)
    if i.size == 0:
        return np.zeros(len(ls))
    return np.array([_norm(_bond_harmonics(x, i, j, lv).mean(axis=0), lv) for lv in ls])


def normalized_order(q4, q6, reference=(FCC_Q4, FCC_Q6)) -> np.ndarray:
    """Normalised local bond-orientational order parameter (1 at the reference, 0 at the origin).

    ``S = 1 - |(q4, q6) - (q4_ref, q6_ref)| / |(q4_ref, q6_ref)|``

    i.e. one minus the Euclidean distance in the (q̄4, q̄6) plane from the perfect-fcc point, in units
    of that point's distance from the origin. This follows the use of (Q4, Q6) distances from fcc
    to identify crystal nuclei in 4D-AET (Zhou et al., Nature 570, 500 (2019)). Perfect fcc gives 1,
    a structureless environment (q4 = q6 = 0) gives 0; a dense random packing (q̄4 ≈ 0.09,
    q̄6 ≈ 0.20) falls near 0.36 (95 % of its atoms below 0.5); perfect hcp gives 0.79, bcc
    (14 neighbours) 0.72, the icosahedron 0.65. Environments
    farther from fcc than the origin (e.g. bcc with 8 neighbours only) give values < 0. Use it with
    the averaged q̄4, q̄6, which separate crystal from amorphous far better than q4, q6.

    Parameters
    ----------
    q4, q6 : array_like
        Per-atom (averaged) q4 and q6.
    reference : (float, float)
        The (q4, q6) that scores 1, default perfect fcc (0.190941, 0.574524).

    Returns
    -------
    float64 array of the broadcast shape of `q4` and `q6`, dimensionless.
    """
    ref = np.asarray(reference, dtype=np.float64)
    if ref.shape != (2,) or not np.isfinite(ref).all() or np.hypot(*ref) == 0:
        raise ValueError(f"reference: expected a non-zero (q4, q6) pair, got {reference!r}")
    q4 = np.asarray(q4, dtype=np.float64)
    q6 = np.asarray(q6, dtype=np.float64)
    return 1.0 - np.hypot(q4 - ref[0], q6 - ref[1]) / np.hypot(*ref)


class BondOrder(NamedTuple):
    """Per-atom and global bond-orientational order of one model (dimensionless unless noted).

    Attributes
    ----------
    q4, q6 : (n,) float64
        Steinhardt q4, q6 of each atom.
    q4_avg, q6_avg : (n,) float64
        Lechner–Dellago averaged q̄4, q̄6.
    order : (n,) float64
        :func:`normalized_order` of (q̄4, q̄6): 1 for fcc, ~0.36 for a dense random packing.
    Q4, Q6 : float
        Global Q4, Q6 over every bond.
    coordination : (n,) int64
        Number of neighbours of each atom.
    cutoff : float
        Neighbour cutoff used, Å (NaN with `n_neighbours`).
    """
    q4: np.ndarray
    q6: np.ndarray
    q4_avg: np.ndarray
    q6_avg: np.ndarray
    order: np.ndarray
    Q4: float
    Q6: float
    coordination: np.ndarray
    cutoff: float


def bond_order(positions, *, cutoff=None, n_neighbours=None, reference=(FCC_Q4, FCC_Q6), threads=None) -> BondOrder:
    """q4, q6, their Lechner–Dellago averages, the normalised order parameter and global Q4, Q6.

    Parameters
    ----------
    positions : (n, 3) array
        Atom positions ``(x, y, z)``, Å.
    cutoff, n_neighbours
        Neighbour definition, see :func:`neighbour_bonds` (default: 1.207 × the median
        nearest-neighbour distance).
    reference : (float, float)
        (q4, q6) scoring 1 in :func:`normalized_order`, default perfect fcc.
    threads : int, optional
        Worker threads of the nearest-neighbour queries (None: every core the process may use);
        the result does not depend on it.

    Returns
    -------
    BondOrder
    """
    x = as_positions(positions)
    i, j, used = neighbour_bonds(x, cutoff=cutoff, n_neighbours=n_neighbours, threads=threads)
    n = x.shape[0]
    counts = np.bincount(i, minlength=n)
    fc = counts.astype(np.float64)
    local, averaged, glob = [], [], []
    for lv in (4, 6):
        qlm = _local_qlm(x, i, j, lv, fc)
        local.append(_norm(qlm, lv))
        averaged.append(_norm(_averaged(qlm, i, j, fc), lv))
        # Σ_bonds Y_lm = Σ_i N_b(i) q_lm(i): the global average reuses the per-atom sums
        glob.append(float(_norm((qlm * fc[:, None]).sum(axis=0) / max(i.size, 1), lv)))
    return BondOrder(q4=local[0], q6=local[1], q4_avg=averaged[0], q6_avg=averaged[1],
                     order=normalized_order(averaged[0], averaged[1], reference), Q4=glob[0], Q6=glob[1],
                     coordination=counts.astype(np.int64), cutoff=used)
