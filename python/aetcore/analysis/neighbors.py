"""Neighbour lists, the radial distribution function and coordination numbers of an atomic model.

Positions are ``(n, 3)`` arrays in Å in the object frame (CONVENTIONS.md). Every search goes through
:class:`scipy.spatial.cKDTree`; nothing loops over atoms in Python.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy.spatial import ConvexHull, cKDTree

from .._util.validate import as_positions, positive, resolve_threads

__all__ = ["neighbour_list", "nearest_neighbour_distance", "shell_cutoff", "coordination",
           "partial_coordination", "RDF", "radial_distribution", "SHELL_FACTOR"]

#: Default first-shell cutoff in units of the nearest-neighbour distance d: (1 + sqrt 2) / 2, halfway
#: between the first (d) and second (sqrt(2) d) fcc shells.
SHELL_FACTOR = (1.0 + np.sqrt(2.0)) / 2.0


def _species(species, n: int, name: str = "species") -> np.ndarray:
    s = np.asarray(species)
    if s.ndim != 1 or s.shape[0] != n:
        raise ValueError(f"{name}: expected one label per atom ({n}), got shape {s.shape}")
    return s


def neighbour_list(positions, cutoff):
    """Every ordered pair of atoms closer than `cutoff`.

    Parameters
    ----------
    positions : (n, 3) array
        ``(x, y, z)``, Å.
    cutoff : float
        Pairs with ``|r_j - r_i| < cutoff`` are neighbours, Å.

    Returns
    -------
    i, j : (m,) int64
        Both directions of every pair (``i != j``), sorted by ``i`` then ``j``.
    d : (m,) float64
        Distances, Å.
    vectors : (m, 3) float64
        ``r_j - r_i``, Å.
    """
    x = as_positions(positions)
    cutoff = positive(cutoff, "cutoff")
    pairs = cKDTree(x).query_pairs(cutoff, output_type="ndarray")
    i = np.concatenate([pairs[:, 0], pairs[:, 1]]).astype(np.int64)
    j = np.concatenate([pairs[:, 1], pairs[:, 0]]).astype(np.int64)
    order = np.lexsort((j, i))
    i, j = i[order], j[order]
    v = x[j] - x[i]
    d = np.sqrt(np.einsum("ij,ij->i", v, v))
    keep = d < cutoff  # query_pairs includes r == cutoff
    return i[keep], j[keep], d[keep], v[keep]


def nearest_neighbour_distance(positions, *, threads=None) -> float:
    """Typical nearest-neighbour distance of a crystal-like model, Å.

    The median distance of every atom to its nearest neighbour is a first guess ``d0``; the result
    is the median length of all bonds shorter than ``1.2 * d0`` (the whole first shell, so thermal
    noise does not bias it low as the minimum over 12 neighbours would).

    Parameters
    ----------
    positions : (n, 3) array, Å (at least 2 atoms)
    threads : int, optional
        Workers for the tree queries (None = every core the process may use).

    Returns
    -------
    float, Å
    """
    x = as_positions(positions)
    if x.shape[0] < 2:
        raise ValueError(f"positions: expected at least 2 atoms, got {x.shape[0]}")
    tree = cKDTree(x)
    d, _ = tree.query(x, k=2, workers=resolve_threads(threads))
    d0 = float(np.median(d[:, 1]))
    if d0 <= 0:
        raise ValueError("positions: more than half of the atoms sit on top of another atom")
    pairs = tree.query_pairs(1.2 * d0, output_type="ndarray")
    v = x[pairs[:, 1]] - x[pairs[:, 0]]
    return float(np.median(np.sqrt(np.einsum("ij,ij->i", v, v))))


def shell_cutoff(positions, *, factor: float = SHELL_FACTOR, threads=None) -> float:
    """First-shell cutoff ``factor * nearest_neighbour_distance(positions)``, Å (default halfway
    between the first and second fcc shells)."""
    factor = positive(factor, "factor")
    return factor * nearest_neighbour_distance(positions, threads=threads)


def coordination(positions, cutoff=None, *, threads=None) -> np.ndarray:
    """Number of neighbours of every atom within `cutoff`.

    Parameters
    ----------
    positions : (n, 3) array, Å
    cutoff : float, optional
        Å; default :func:`shell_cutoff` (12 in the interior of an fcc crystal).
    threads : int, optional

    Returns
    -------
    (n,) int64
    """
    x = as_positions(positions)
    cutoff = shell_cutoff(x, threads=threads) if cutoff is None else positive(cutoff, "cutoff")
    counts = cKDTree(x).query_ball_point(x, cutoff, return_length=True, workers=resolve_threads(threads))
    return np.asarray(counts, dtype=np.int64) - 1  # the atom itself


def partial_coordination(positions, species, cutoff=None, *, threads=None):
    """Neighbours of every atom counted per species.

    Parameters
    ----------
    positions : (n, 3) array, Å
    species : (n,) sequence of labels (element symbols)
    cutoff : float, optional
        Å; default :func:`shell_cutoff`.
    threads : int, optional

    Returns
    -------
    counts : (n, k) int64
        ``counts[i, s]`` neighbours of atom ``i`` of species ``names[s]``.
    names : (k,) array
        The sorted distinct species.
    """
    x = as_positions(positions)
    s = _species(species, x.shape[0])
    cutoff = shell_cutoff(x, threads=threads) if cutoff is None else positive(cutoff, "cutoff")
    names, code = np.unique(s, return_inverse=True)
    i, j, _, _ = neighbour_list(x, cutoff)
    counts = np.zeros((x.shape[0], names.size), dtype=np.int64)
    np.add.at(counts, (i, code[j]), 1)
    return counts, names


class RDF(NamedTuple):
    """A radial distribution function.

    Attributes
    ----------
    r : (m,) float64
        Bin centres, Å.
    g : (m,) float64
        ``g(r)``; 1 for an ideal gas of the same density (not for a finite particle at large r).
    counts : (m,) int64
        Ordered pairs ``(i in A, j in B)`` per bin.
    edges : (m + 1,) float64
        Bin edges, Å.
    density : float
        Number density of B used for the normalisation, atoms per Å³.
    """

    r: np.ndarray
    g: np.ndarray
    counts: np.ndarray
    edges: np.ndarray
    density: float


def radial_distribution(positions, r_max: float = 10.0, *, dr: float = 0.05, species=None, pair=None,
                        density=None) -> RDF:
    """Radial distribution function of a finite particle.

    ``g(r) = counts(r) / (N_A * rho_B * 4 pi r^2 dr)`` where ``counts`` are ordered pairs
    ``(i, j)``, ``i`` of species A and ``j != i`` of species B, at distance in ``[r, r + dr)`` and
    ``rho_B = N_B / V``. Without a `density`, ``V`` is the volume of the convex hull of all atoms
    (a particle-size estimate: the surface layer makes it slightly too small). For a finite
    particle ``g`` falls towards 0 beyond a fraction of the diameter, since atoms near the surface
    lack partners; the peak positions and the first-shell integral
    ``4 pi rho int r^2 g dr`` (= mean coordination) are unaffected.

    Parameters
    ----------
    positions : (n, 3) array, Å
    r_max : float
        Largest distance, Å.
    dr : float
        Bin width, Å.
    species : (n,) sequence, optional
        Labels, needed with `pair`.
    pair : (str, str), optional
        Partial RDF ``g_AB`` (neighbours of A atoms that are B); default every atom with every atom.
    density : float, optional
        ``rho_B`` in atoms per Å³ (default from the convex hull, see above).

    Returns
    -------
    RDF
    """
    x = as_positions(positions)
    r_max = positive(r_max, "r_max")
    dr = positive(dr, "dr")
    if dr > r_max:
        raise ValueError(f"dr: expected a bin width below r_max = {r_max} Å, got {dr}")
    n = x.shape[0]
    sel_a = sel_b = np.ones(n, dtype=bool)
    if pair is not None:
        if species is None:
            raise ValueError("species: expected one label per atom with pair=..., got None")
        s = _species(species, n)
        if not (isinstance(pair, (tuple, list)) and len(pair) == 2):
            raise ValueError(f"pair: expected two species labels (A, B), got {pair!r}")
        for p in pair:
            if not np.any(s == p):
                raise ValueError(f"pair: no atom of species {p!r} (species present: {sorted(set(s.tolist()))})")
        sel_a, sel_b = s == pair[0], s == pair[1]
    if density is None:
        if n < 4:
            raise ValueError(f"positions: expected at least 4 atoms to estimate the volume, got {n}; pass density")
        volume = ConvexHull(x).volume
        density = sel_b.sum() / volume
    else:
        density = positive(density, "density")
    edges = np.arange(0.0, r_max + 0.5 * dr, dr)
    if edges[-1] < r_max:
        edges = np.append(edges, edges[-1] + dr)
    tree = cKDTree(x)
    pairs = tree.query_pairs(edges[-1], output_type="ndarray")
    a, b = pairs[:, 0], pairs[:, 1]
    d = np.linalg.norm(x[b] - x[a], axis=1)
    # an unordered pair {a, b} counts once as (a, b) and once as (b, a) when both orders qualify
    w = (sel_a[a] & sel_b[b]).astype(np.int64) + (sel_a[b] & sel_b[a]).astype(np.int64)
    counts = np.histogram(d, bins=edges, weights=w)[0].round().astype(np.int64)
    shell = 4.0 / 3.0 * np.pi * (edges[1:] ** 3 - edges[:-1] ** 3)
    g = counts / (sel_a.sum() * density * shell)
    r = 0.5 * (edges[1:] + edges[:-1])
    return RDF(r=r, g=g, counts=counts, edges=edges, density=float(density))
