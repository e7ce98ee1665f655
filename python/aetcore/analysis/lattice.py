"""The ideal lattice nearest a set of traced atoms, each atom's lattice site and its displacement.

A lattice is a cell (three lattice vectors, in units of the lattice constant ``a``) and a basis
(fractional coordinates of the sites in the cell); fcc is the conventional cube with four sites.
Fitting finds the similarity transform of the ideal lattice into the object frame,

    ideal site position = origin + a * R @ cell @ (n + basis[b]),     n integer, b a basis index,

with ``R`` a proper rotation (crystal -> object frame), ``a`` the lattice constant in Å and
``origin`` in Å, minimising the sum of squared distances of the atoms to their sites.

How (no prior orientation needed):

1. Nearest-neighbour distance ``d`` (median first-shell bond) gives ``a``; the first-shell bond
   directions of the atoms near the centre that have the lattice's full coordination give ``R``:
   for every pairing of two measured bonds with two ideal bonds of the same angle, the rotation
   taking the ideal pair onto the measured pair is scored on all pooled bonds and the best one kept.
2. Sites are assigned by rounding (nearest site over the basis), then ``R``, ``a`` (unless given)
   and ``origin`` are refined in closed form (Umeyama's least-squares similarity transform), on a
   sphere around the central atom that doubles until it holds every atom, so that a small error in
   the first ``a`` or ``R`` cannot mis-assign far atoms; assignments are repeated until stable.
3. For cubic lattices, ``R`` is finally replaced by the symmetry-equivalent rotation closest to the
   identity (crystal axes as close as possible to x, y, z), so crystal directions and L1_0
   variants get reproducible names.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from itertools import permutations, product

import numpy as np
from scipy.spatial import cKDTree

from .._util.validate import as_matrix, as_positions, at_least, positive, resolve_threads
from .neighbors import nearest_neighbour_distance

__all__ = ["Lattice", "as_lattice", "LatticeFit", "fit_lattice", "assign_sites", "cubic_rotations",
           "LATTICES"]


@dataclass(frozen=True)
class Lattice:
    """A Bravais lattice with a basis.

    Attributes
    ----------
    name : str
    cell : (3, 3) float64
        Lattice vectors as columns, in units of the lattice constant.
    basis : (m, 3) float64
        Fractional coordinates of the sites in the cell.
    cubic : bool
        The cell is a cube with the full cubic point symmetry (orientation is then made canonical).
    """

    name: str
    cell: np.ndarray
    basis: np.ndarray
    cubic: bool = False

    def positions(self, cells, basis_index) -> np.ndarray:
        """Site positions ``cell @ (n + basis[b])`` in units of the lattice constant, crystal frame."""
        return (np.asarray(cells, np.float64) + self.basis[np.asarray(basis_index)]) @ self.cell.T

    def bonds(self) -> np.ndarray:
        """First-shell bond vectors (union over the basis sites), units of the lattice constant."""
        r = np.arange(-2, 3)
        n = np.stack(np.meshgrid(r, r, r, indexing="ij"), -1).reshape(-1, 3)
        sites = np.concatenate([self.positions(n, np.full(len(n), b)) for b in range(len(self.basis))])
        out = []
        for b in range(len(self.basis)):
            v = sites - self.positions(np.zeros((1, 3)), [b])
            d = np.linalg.norm(v, axis=1)
            d[d < 1e-9] = np.inf
            out.append(v[d < d.min() * (1 + 1e-6)])
        v = np.concatenate(out)
        return np.unique(np.round(v, 9), axis=0)

    @property
    def nn_distance(self) -> float:
        """Nearest-neighbour distance in units of the lattice constant."""
        return float(np.linalg.norm(self.bonds(), axis=1).min())

    @property
    def shell_gap(self) -> float:
        """Halfway between the first and second neighbour shells, in units of the first: the
        first-shell bond cutoff (1.207 for fcc, 1.077 for bcc)."""
        r = np.arange(-2, 3)
        n = np.stack(np.meshgrid(r, r, r, indexing="ij"), -1).reshape(-1, 3)
        sites = np.concatenate([self.positions(n, np.full(len(n), b)) for b in range(len(self.basis))])
        d = np.linalg.norm(sites - self.positions(np.zeros((1, 3)), [0]), axis=1)
        d1 = self.nn_distance
        d2 = d[d > d1 * (1 + 1e-6)].min()
        return float(0.5 * (d1 + d2) / d1)

    @property
    def coordination(self) -> int:
        """First-shell neighbours of a site (the smallest over the basis)."""
        r = np.arange(-2, 3)
        n = np.stack(np.meshgrid(r, r, r, indexing="ij"), -1).reshape(-1, 3)
        sites = np.concatenate([self.positions(n, np.full(len(n), b)) for b in range(len(self.basis))])
        d_nn = self.nn_distance
        counts = []
        for b in range(len(self.basis)):
            d = np.linalg.norm(sites - self.positions(np.zeros((1, 3)), [b]), axis=1)
            counts.append(int(np.count_nonzero((d > 1e-9) & (d < d_nn * (1 + 1e-6)))))
        return min(counts)


_C = np.eye(3)
LATTICES = {
    "fcc": Lattice("fcc", _C, np.array([[0, 0, 0], [0, .5, .5], [.5, 0, .5], [.5, .5, 0]]), True),
    "bcc": Lattice("bcc", _C, np.array([[0, 0, 0], [.5, .5, .5]]), True),
    "sc": Lattice("sc", _C, np.zeros((1, 3)), True),
    "diamond": Lattice("diamond", _C, np.array([[0, 0, 0], [0, .5, .5], [.5, 0, .5], [.5, .5, 0],
                                                [.25, .25, .25], [.25, .75, .75], [.75, .25, .75],
                                                [.75, .75, .25]]), True),
    # ideal c/a = sqrt(8/3): in-plane and out-of-plane neighbours at the same distance a
    "hcp": Lattice("hcp", np.array([[1.0, -0.5, 0.0], [0.0, np.sqrt(3) / 2, 0.0], [0.0, 0.0, np.sqrt(8 / 3)]]),
                   np.array([[0, 0, 0], [1 / 3, 2 / 3, 0.5]]), False),
}


def as_lattice(lattice, basis=None) -> Lattice:
    """A :class:`Lattice` from a name in :data:`LATTICES` (``"fcc"``, ``"bcc"``, ``"sc"``,
    ``"diamond"``, ``"hcp"``), a :class:`Lattice`, or a (3, 3) cell (columns, units of the lattice
    constant) with `basis` ((m, 3) fractional, default one site at the origin)."""
    if isinstance(lattice, Lattice):
        return lattice
    if isinstance(lattice, str):
        if lattice not in LATTICES:
            raise ValueError(f"lattice: expected one of {tuple(LATTICES)}, a Lattice or a (3, 3) cell, got {lattice!r}")
        return LATTICES[lattice]
    cell = as_matrix(lattice, (3, 3), "lattice", "a lattice name, a Lattice or a (3, 3) cell", "cell")
    if abs(np.linalg.det(cell)) < 1e-9:
        raise ValueError("lattice: the cell vectors are linearly dependent (determinant 0)")
    b = np.zeros((1, 3)) if basis is None else np.atleast_2d(np.asarray(basis, np.float64))
    if b.ndim != 2 or b.shape[1] != 3 or not np.isfinite(b).all():
        raise ValueError(f"basis: expected (m, 3) finite fractional coordinates, got shape {b.shape}")
    return Lattice("custom", cell, b, False)


def cubic_rotations() -> np.ndarray:
    """The 24 proper rotations of the cube, (24, 3, 3)."""
    out = []
    for perm in permutations(range(3)):
        for signs in product((1, -1), repeat=3):
            m = np.zeros((3, 3))
            m[np.arange(3), perm] = signs
            if np.linalg.det(m) > 0:
                out.append(m)
    return np.array(out)


@dataclass
class LatticeFit:
    """The ideal lattice nearest the atoms.

    Attributes
    ----------
    lattice : Lattice
    rotation : (3, 3) float64
        ``R``: crystal frame -> object frame; column ``k`` is crystal axis ``k`` in the object frame.
    lattice_constant : float
        ``a``, Å (fitted, or as given).
    origin : (3,) float64
        Object-frame position of the site ``n = 0``, basis 0, Å.
    cells : (n, 3) int64
        Cell index ``n`` of every atom's site.
    basis_index : (n,) int64
        Basis site ``b`` of every atom.
    ideal : (n, 3) float64
        Site positions in the object frame, Å.
    displacement : (n, 3) float64
        ``positions - ideal``, Å, object frame.
    duplicate : (n,) bool
        Atoms sharing their site with another atom (all but the closest one of each site).
    outlier : (n,) bool
        Atoms further than ``0.35 * d_nn`` from their site, or duplicates: left out of the fit (and
        best left out of strain estimates).
    rmsd : float
        Root-mean-square displacement over the non-duplicate atoms, Å.
    """

    lattice: Lattice
    rotation: np.ndarray
    lattice_constant: float
    origin: np.ndarray
    cells: np.ndarray
    basis_index: np.ndarray
    ideal: np.ndarray
    displacement: np.ndarray
    duplicate: np.ndarray
    outlier: np.ndarray
    rmsd: float
    info: dict = field(default_factory=dict)

    @property
    def fractional(self) -> np.ndarray:
        """``n + basis[b]`` of every atom, (n, 3) float64."""
        return self.cells + self.lattice.basis[self.basis_index]

    def fcc_indices(self) -> np.ndarray:
        """Integer site coordinates in units of ``a / 2`` (even sum) for an fcc fit, (n, 3) int64:
        the input of :mod:`aetcore.analysis.order`."""
        if self.lattice.name != "fcc":
            raise ValueError(f"lattice: fcc site indices need an fcc fit, this one is {self.lattice.name!r}")
        return np.rint(2.0 * self.fractional).astype(np.int64)


def assign_sites(positions, lattice, rotation, lattice_constant, origin):
    """Nearest ideal site of every atom.

    Parameters
    ----------
    positions : (n, 3) array, Å
    lattice : str or Lattice
    rotation : (3, 3) array
        Crystal -> object frame.
    lattice_constant : float, Å
    origin : (3,) array, Å

    Returns
    -------
    cells : (n, 3) int64
    basis_index : (n,) int64
    ideal : (n, 3) float64, Å
    """
    x = as_positions(positions)
    lat = as_lattice(lattice)
    R = as_matrix(rotation, (3, 3), "rotation", "a (3, 3) rotation matrix", "rotation matrix")
    a = positive(lattice_constant, "lattice_constant")
    o = as_matrix(origin, (3,), "origin", "a (3,) position in Å", "position")
    return _assign(x, lat, R, a, o)


def _assign(x, lat, R, a, o):
    # fractional coordinates f: x = o + a R C f
    f = ((x - o) @ R) @ np.linalg.inv(lat.cell).T / a
    best = np.full(x.shape[0], np.inf)
    cells = np.zeros((x.shape[0], 3), dtype=np.int64)
    basis = np.zeros(x.shape[0], dtype=np.int64)
    for b, fb in enumerate(lat.basis):  # a handful of basis sites
        n = np.rint(f - fb)
        r = (f - fb - n) @ lat.cell.T
        d = np.einsum("ij,ij->i", r, r)
        better = d < best
        best[better] = d[better]
        cells[better] = n[better]
        basis[better] = b
    ideal = o + a * lat.positions(cells, basis) @ R.T
    return cells, basis, ideal


def _similarity(X, x, fixed_scale=None):
    """Least-squares ``x ~ o + s R X`` (Umeyama 1991); returns R, s, o."""
    mX, mx = X.mean(axis=0), x.mean(axis=0)
    Xc, xc = X - mX, x - mx
    H = Xc.T @ xc
    U, S, Vt = np.linalg.svd(H)
    d = np.sign(np.linalg.det(Vt.T @ U.T)) or 1.0
    D = np.diag([1.0, 1.0, d])
    R = Vt.T @ D @ U.T
    s = fixed_scale if fixed_scale is not None else float(np.trace(np.diag(S) @ D) / np.einsum("ij,ij->", Xc, Xc))
    o = mx - s * R @ mX
    return R, s, o


def _kabsch2(u, v):
    """Rotation taking unit vectors v[0], v[1] onto u[0], u[1] (least squares)."""
    H = v.T @ u
    U, _, Vt = np.linalg.svd(H)
    d = np.sign(np.linalg.det(Vt.T @ U.T)) or 1.0
    return Vt.T @ np.diag([1.0, 1.0, d]) @ U.T


def _initial_orientation(x, lat, d_nn, tree, workers):
    """Orientation from the first-shell bond directions of well-coordinated central atoms."""
    ideal = lat.bonds()
    ideal = ideal / np.linalg.norm(ideal, axis=1, keepdims=True)
    z = lat.coordination
    cut = d_nn * lat.shell_gap
    counts = np.asarray(tree.query_ball_point(x, cut, return_length=True, workers=workers)) - 1
    centre = x.mean(axis=0)
    order = np.argsort(np.linalg.norm(x - centre, axis=1))
    full = order[counts[order] == z]
    if full.size == 0:
        full = order[:1]
    ref = full[:64]
    nb = tree.query_ball_point(x[ref], cut, workers=workers)
    pooled = np.concatenate([x[np.asarray(k)] - x[r] for r, k in zip(ref, nb)])  # <= 64 atoms
    norms = np.linalg.norm(pooled, axis=1)
    pooled = pooled[norms > 1e-9] / norms[norms > 1e-9, None]
    cos_ideal = ideal @ ideal.T
    best, best_score, best_ref = None, np.inf, int(ref[0])
    for r0 in range(min(4, len(ref))):  # a few reference atoms: one odd neighbour cannot mislead
        u = x[np.asarray(nb[r0])] - x[ref[r0]]
        u = u[np.linalg.norm(u, axis=1) > 1e-9]
        if u.shape[0] < 2:
            continue
        u /= np.linalg.norm(u, axis=1, keepdims=True)
        u0 = u[0]
        u1 = u[1:][np.argmin(np.abs(u[1:] @ u0))]  # the bond most perpendicular to u0: best conditioned
        c01 = float(u1 @ u0)
        for a0 in range(ideal.shape[0]):  # pairs of ideal bonds at the measured angle (a few dozen)
            for a1 in np.flatnonzero(np.abs(cos_ideal[a0] - c01) < 0.15):
                if a1 == a0:
                    continue
                R = _kabsch2(np.stack([u0, u1]), ideal[[a0, a1]])
                score = float(np.mean(1.0 - (pooled @ (ideal @ R.T).T).max(axis=1)))
                if score < best_score:
                    best, best_score, best_ref = R, score, int(ref[r0])
    if best is None:
        raise ValueError(f"positions: the bonds do not match a {lat.name} lattice (no pair of bonds at an ideal angle)")
    return best, best_ref, best_score


def fit_lattice(positions, lattice="fcc", *, lattice_constant=None, rotation=None, max_iterations: int = 20,
                threads=None) -> LatticeFit:
    """Fit the ideal lattice nearest the atoms: orientation, lattice constant, origin and sites.

    See the module docstring for the method. The model should be one crystal (a single grain; a
    chemically ordered alloy on one fcc lattice is one crystal). Atoms more than
    ``0.35 * d_nn`` (nearest-neighbour distance) from their site, and all but the closest atom of a
    site taken twice, are left out of the least-squares fit (their displacements are still given).

    Parameters
    ----------
    positions : (n, 3) array
        ``(x, y, z)`` in Å, object frame.
    lattice : str, Lattice or (3, 3) cell
        ``"fcc"`` (default), ``"bcc"``, ``"sc"``, ``"diamond"``, ``"hcp"`` (ideal c/a), or any
        :class:`Lattice` (cell + basis, see :func:`as_lattice`). Its shape is kept; only the scale
        ``a`` is fitted.
    lattice_constant : float, optional
        Fix ``a`` (Å) instead of fitting it. Give it when the absolute strain matters: a fitted
        ``a`` absorbs the mean dilatation of the particle.
    rotation : (3, 3) array, optional
        A starting orientation (crystal -> object frame) instead of the bond-direction search.
    max_iterations : int
        Assignment/refinement rounds at the full size.
    threads : int, optional
        Workers for the neighbour searches (None = every core the process may use).

    Returns
    -------
    LatticeFit
    """
    x = as_positions(positions)
    lat = as_lattice(lattice)
    if x.shape[0] < 4:
        raise ValueError(f"positions: expected at least 4 atoms to fit a lattice, got {x.shape[0]}")
    fixed = None if lattice_constant is None else positive(lattice_constant, "lattice_constant")
    max_iterations = at_least(max_iterations, 1, "max_iterations", integer=True)
    workers = resolve_threads(threads)
    tree = cKDTree(x)
    # first-shell bond length: the median of the bonds inside this lattice's first-shell cutoff
    d0 = nearest_neighbour_distance(x, threads=threads)
    pairs = tree.query_pairs(d0 * lat.shell_gap, output_type="ndarray")
    d_nn = float(np.median(np.linalg.norm(x[pairs[:, 1]] - x[pairs[:, 0]], axis=1))) if len(pairs) else d0
    a = fixed if fixed is not None else d_nn / lat.nn_distance
    if rotation is None:
        R, ref, bond_score = _initial_orientation(x, lat, d_nn, tree, workers)
    else:
        R = as_matrix(rotation, (3, 3), "rotation", "None or a (3, 3) rotation matrix", "rotation matrix")
        if not np.allclose(R @ R.T, np.eye(3), atol=1e-6) or np.linalg.det(R) < 0:
            raise ValueError("rotation: expected a proper rotation matrix (orthonormal, det = +1)")
        ref = int(np.argmin(np.linalg.norm(x - x.mean(axis=0), axis=1)))
        bond_score = float("nan")
    o = x[ref].copy()

    dist = np.linalg.norm(x - x[ref], axis=1)
    radius = 3.0 * a
    rounds = 0
    prev = None
    while True:
        sel = dist <= radius
        everything = bool(sel.all())
        cells, basis, ideal = _assign(x[sel], lat, R, a, o)
        for _ in range(max_iterations if everything else 3):
            keep = _fit_mask(x[sel], ideal, cells, basis, d_nn)
            X = lat.positions(cells[keep], basis[keep])
            R, a, o = _similarity(X, x[sel][keep], fixed)
            cells, basis, ideal = _assign(x[sel], lat, R, a, o)
            rounds += 1
            key = np.concatenate([cells, basis[:, None]], axis=1)
            if prev is not None and prev.shape == key.shape and np.array_equal(prev, key):
                break
            prev = key
        if everything:
            break
        radius *= 2.0

    if lat.cubic:  # canonical orientation: the equivalent rotation closest to the identity
        S = cubic_rotations()
        R = R @ S[int(np.argmax(np.trace(R @ S, axis1=1, axis2=2)))]
        # site coordinates transform with S^T; re-assign (exact: the lattice maps onto itself)
        cells, basis, ideal = _assign(x, lat, R, a, o)
    disp = x - ideal
    dup = _duplicates(cells, basis, np.einsum("ij,ij->i", disp, disp))
    ok = ~dup
    rmsd = float(np.sqrt(np.mean(np.einsum("ij,ij->i", disp[ok], disp[ok]))))
    outlier = ~_fit_mask(x, ideal, cells, basis, d_nn)
    info = {"nn_distance": d_nn, "bond_score": bond_score, "rounds": rounds, "outliers": int(outlier.sum())}
    return LatticeFit(lattice=lat, rotation=R, lattice_constant=float(a), origin=o, cells=cells,
                      basis_index=basis, ideal=ideal, displacement=disp, duplicate=dup, outlier=outlier,
                      rmsd=rmsd, info=info)


def _duplicates(cells, basis, d2):
    """All but the closest atom of every site that holds several."""
    key = np.concatenate([cells, basis[:, None]], axis=1)
    order = np.lexsort((d2,) + tuple(key.T[::-1]))
    k = key[order]
    same = np.concatenate([[False], (k[1:] == k[:-1]).all(axis=1)])
    dup = np.zeros(len(d2), dtype=bool)
    dup[order[same]] = True
    return dup


def _fit_mask(x, ideal, cells, basis, d_nn):
    r = x - ideal
    d2 = np.einsum("ij,ij->i", r, r)
    return (d2 < (0.35 * d_nn) ** 2) & ~_duplicates(cells, basis, d2)
