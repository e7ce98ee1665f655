"""Simulated atomic models and ADF-STEM tilt series (CONVENTIONS.md geometry and units).

Atomic models are returned in Å in the object frame, centred on the origin; tilt series are
exact projections of Gaussian atoms (:func:`aetcore.model.projection.project_atoms`) with optional
misalignment, frame drift, Poisson counting noise, Gaussian read noise and a constant background.
Every stochastic function takes ``seed=None``, an int or a :class:`numpy.random.Generator`.
"""
from __future__ import annotations

from dataclasses import dataclass
from numbers import Real
from typing import NamedTuple, Optional, Sequence

import numpy as np
from scipy.spatial.transform import Rotation

from .._util.validate import (as_angles, as_matrix, one_of, as_generator, as_positions, at_least,
                              finite_array, positive, resolve_threads)
from .geometry import euler_matrices
from .projection import AtomModel, project_atoms, render_atoms

__all__ = ["fcc_particle", "fept_particle", "pt_particle", "FePtParticle", "tilt_series",
           "SimulatedSeries", "ground_truth_volume", "angles_range",
           "PT_LATTICE_CONSTANT", "FEPT_LATTICE_CONSTANT"]

#: Lattice constant of fcc Pt at room temperature, Å.
PT_LATTICE_CONSTANT = 3.924
#: Cubic lattice constant used for FePt, Å (the L1_0 tetragonality is not modelled).
FEPT_LATTICE_CONSTANT = 3.86

_SHAPES = ("sphere", "cuboctahedron")
_PHASES = ("L10", "L10x", "L10y", "L10z", "L12", "A1")
_AXES = {"x": 0, "y": 1, "z": 2}


# ----------------------------------------------------------------------------------------- helpers
def _fraction(value, name: str, *, upper: float = 1.0) -> float:
    v = at_least(value, 0.0, name)
    if v > upper:
        raise ValueError(f"{name}: expected a fraction in [0, {upper:g}], got {value}")
    return v


def _orientation(orientation, name: str = "orientation"):
    """Validate `orientation`; return None, "random" or a float64 (3, 3) rotation matrix."""
    if orientation is None:
        return None
    if isinstance(orientation, str):
        if orientation != "random":
            raise ValueError(f"{name}: expected None, 'random' or a (3, 3) rotation matrix, got {orientation!r}")
        return "random"
    R = as_matrix(orientation, (3, 3), name, "None, 'random' or a (3, 3) rotation matrix", "rotation matrix")
    if not np.allclose(R @ R.T, np.eye(3), atol=1e-6) or np.linalg.det(R) < 0:
        raise ValueError(f"{name}: expected a proper rotation matrix (orthonormal, det = +1)")
    return R


def _rotation_matrix(orientation, rng: np.random.Generator) -> Optional[np.ndarray]:
    if orientation is None:
        return None
    if isinstance(orientation, str):  # "random": uniform over SO(3)
        return Rotation.random(random_state=rng).as_matrix()
    return orientation


def _fcc_sites(a: float, radius: float, shape: str) -> np.ndarray:
    """Integer fcc sites in units of a/2 (i + j + k even) inside the particle, crystal frame."""
    m = int(np.ceil(2.0 * radius / a)) + 1
    r = np.arange(-m, m + 1)
    ijk = np.stack(np.meshgrid(r, r, r, indexing="ij"), axis=-1).reshape(-1, 3)
    ijk = ijk[(ijk.sum(axis=1) % 2) == 0]
    x = ijk * (0.5 * a)
    eps = 1e-9 * max(radius, a)
    if shape == "sphere":
        keep = np.einsum("ij,ij->i", x, x) <= (radius + eps) ** 2
    else:  # cuboctahedron with its 12 vertices at distance `radius`: {100} and {111} facets
        c = radius / np.sqrt(2.0)
        ax = np.abs(x)
        keep = (ax.max(axis=1) <= c + eps) & (ax.sum(axis=1) <= 2.0 * c + eps)
    return ijk[keep].astype(np.int64)


def _check_particle_args(a, radius, shape, orientation, thermal):
    a = positive(a, "a")
    radius = positive(radius, "radius")
    shape = one_of(shape, _SHAPES, "shape")
    orientation = _orientation(orientation)
    thermal = at_least(thermal, 0.0, "thermal")
    return a, radius, shape, orientation, thermal


def _child_generators(seed, n: int):
    """Independent generators for the independent random parts of a model, so that switching one
    option on or off does not change the random draws of the others."""
    rng = as_generator(seed)
    return [np.random.default_rng(s) for s in rng.integers(0, 2 ** 63 - 1, size=n, dtype=np.int64)]


def _finish(x: np.ndarray, R, thermal: float, rng_thermal) -> np.ndarray:
    if R is not None:
        x = x @ R.T
    if thermal > 0:
        x = x + rng_thermal.normal(0.0, thermal, size=x.shape)
    return np.ascontiguousarray(x, dtype=np.float64)


# ---------------------------------------------------------------------------------------- particles
def fcc_particle(a: float = 3.89, radius: float = 20.0, *, shape: str = "sphere", orientation=None,
                 thermal: float = 0.0, seed=None) -> np.ndarray:
    """Atom positions of an fcc nanoparticle cut from a perfect lattice.

    One lattice site sits on the origin and the cut is centrosymmetric, so the particle is centred
    on 0 exactly (before thermal displacements).

    Parameters
    ----------
    a : float
        Cubic lattice constant, Å (default 3.89 Å; Pt is 3.924 Å, see :func:`pt_particle`).
        Nearest-neighbour distance is ``a / sqrt(2)``.
    radius : float
        Sphere radius, or the circumradius (centre-to-vertex distance) of the cuboctahedron, Å.
    shape : {"sphere", "cuboctahedron"}
        ``"cuboctahedron"`` has {100} facets at ``|x_i| = radius / sqrt(2)`` and {111} facets at
        ``|x| + |y| + |z| = radius * sqrt(2)`` (crystal frame).
    orientation : None, "random" or (3, 3) array
        Rotation applied to the particle (``r -> R r``, column vectors). None keeps the cube axes
        along x, y, z; "random" draws R uniformly over SO(3).
    thermal : float
        Root-mean-square Gaussian displacement per axis, Å (0 = perfect lattice).
    seed : None, int or numpy.random.Generator
        Randomness for "random" orientation and thermal displacements.

    Returns
    -------
    (n_atoms, 3) float64 positions ``(x, y, z)``, Å.
    """
    a, radius, shape, orientation, thermal = _check_particle_args(a, radius, shape, orientation, thermal)
    rng_rot, rng_thermal = _child_generators(seed, 2)
    x = _fcc_sites(a, radius, shape) * (0.5 * a)
    return _finish(x, _rotation_matrix(orientation, rng_rot), thermal, rng_thermal)


def pt_particle(radius: float = 20.0, *, a: float = PT_LATTICE_CONSTANT, shape: str = "sphere",
                orientation=None, thermal: float = 0.0, seed=None):
    """A pure Pt fcc nanoparticle (:func:`fcc_particle` with Pt's lattice constant).

    Parameters
    ----------
    radius, shape, orientation, thermal, seed
        As in :func:`fcc_particle`.
    a : float
        Lattice constant, Å (default 3.924 Å, fcc Pt).

    Returns
    -------
    positions : (n_atoms, 3) float64, Å
    species : (n_atoms,) array of ``'Pt'``
    """
    x = fcc_particle(a, radius, shape=shape, orientation=orientation, thermal=thermal, seed=seed)
    return x, np.full(x.shape[0], "Pt", dtype="<U2")


class FePtParticle(NamedTuple):
    """An FePt particle; unpacks as ``positions, species, phase``.

    Attributes
    ----------
    positions : (n_atoms, 3) float64
        ``(x, y, z)`` in Å, object frame.
    species : (n_atoms,) str array
        ``'Fe'`` or ``'Pt'``.
    phase : (n_atoms,) str array
        The domain each atom belongs to, as named in `domains` (e.g. ``'L10'``, ``'L12'``, ``'A1'``).
    """

    positions: np.ndarray
    species: np.ndarray
    phase: np.ndarray


def _seed_directions(n: int) -> np.ndarray:
    """n well-separated unit vectors: antipodes, triangle, tetrahedron, then a Fibonacci sphere."""
    if n == 1:
        return np.zeros((1, 3))
    if n == 2:
        return np.array([[1.0, 0, 0], [-1.0, 0, 0]])
    if n == 3:
        t = 2 * np.pi * np.arange(3) / 3
        return np.stack([np.cos(t), np.sin(t), np.zeros(3)], axis=1)
    if n == 4:
        return np.array([[1.0, 1, 1], [1, -1, -1], [-1, 1, -1], [-1, -1, 1]]) / np.sqrt(3)
    i = np.arange(n) + 0.5
    z = 1 - 2 * i / n
    phi = np.pi * (1 + 5 ** 0.5) * i
    rxy = np.sqrt(1 - z ** 2)
    return np.stack([rxy * np.cos(phi), rxy * np.sin(phi), z], axis=1)


def fept_particle(radius: float = 20.0, *, a: float = FEPT_LATTICE_CONSTANT, domains=("L10", "L12", "A1"),
                  shape: str = "sphere", partition: str = "voronoi", l10_axis: str = "z",
                  l12: str = "FePt3", pt_fraction: float = 0.5, antisite: float = 0.0,
                  orientation=None, thermal: float = 0.0, seed=None) -> FePtParticle:
    """An FePt nanoparticle on an fcc lattice with chemically different domains.

    Chemical order is defined in the crystal frame on fcc sites ``(i, j, k) * a / 2`` with
    ``i + j + k`` even (one site on the origin):

    * ``"L10"`` (FePt, L1_0): alternating Fe and Pt (001) planes normal to `l10_axis`; the plane
      through the origin is Fe. ``"L10x"``, ``"L10y"``, ``"L10z"`` choose the variant per domain.
      Each Fe has 4 Fe neighbours (in-plane) and 8 Pt neighbours (adjacent planes).
    * ``"L12"``: with ``l12="FePt3"`` the cube corners (i, j, k all even) are Fe and face centres
      Pt (25 % Fe / 75 % Pt); ``l12="Fe3Pt"`` swaps the two.
    * ``"A1"``: chemically disordered; each site is Pt with probability `pt_fraction`.

    Parameters
    ----------
    radius : float
        Particle radius (or cuboctahedron circumradius), Å.
    a : float
        Cubic lattice constant, Å (default 3.86 Å, close to FePt's a = 3.85 Å; the tetragonal
        c/a of about 0.96 of L1_0 is not modelled: the lattice stays cubic).
    domains : sequence of str
        One phase name per domain, each one of ``"L10", "L10x", "L10y", "L10z", "L12", "A1"``;
        names may repeat.
    shape : {"sphere", "cuboctahedron"}
    partition : {"voronoi", "slabs"}
        ``"voronoi"``: each atom joins the domain of the nearest of ``len(domains)`` seed points.
        The seeds are well-spread directions (2: antipodes, 3: an equilateral triangle,
        4: a tetrahedron, more: a Fibonacci sphere) at ``radius / 2`` from the centre, turned by a
        random rotation and jittered (Gaussian, ``0.1 * radius`` per axis), so domains are random
        but of comparable size. ``"slabs"``: equal-thickness slabs along the crystal x axis across
        ``[-radius, radius]``, in the order of `domains` (deterministic).
    l10_axis : {"x", "y", "z"}
        Stacking axis (crystal frame) of ``"L10"`` domains.
    l12 : {"FePt3", "Fe3Pt"}
        Which L1_2 compound ``"L12"`` domains are.
    pt_fraction : float
        Pt fraction of ``"A1"`` domains, in [0, 1].
    antisite : float
        Anti-site defects, in [0, 1]: ``round(antisite * n_atoms / 2)`` Fe atoms and as many Pt
        atoms, drawn uniformly over the particle, exchange species, so a fraction ``antisite`` of
        the atoms change species and the composition is preserved.
    orientation : None, "random" or (3, 3) array
        Rotation of the whole particle (domains included), as in :func:`fcc_particle`.
    thermal : float
        RMS Gaussian displacement per axis, Å.
    seed : None, int or numpy.random.Generator
        The orientation, domain seeds, A1 occupation, anti-sites and displacements use independent
        streams drawn from it, so e.g. changing `antisite` leaves the rest of the particle unchanged.

    Returns
    -------
    FePtParticle
        ``(positions, species, phase)``: (n, 3) float64 Å, (n,) ``'Fe'``/``'Pt'``, (n,) phase names.
    """
    a, radius, shape, orientation, thermal = _check_particle_args(a, radius, shape, orientation, thermal)
    if isinstance(domains, str) or not isinstance(domains, Sequence):
        raise TypeError(f"domains: expected a sequence of phase names from {_PHASES}, got "
                        f"{type(domains).__name__}")
    domains = tuple(domains)
    if not domains:
        raise ValueError("domains: expected at least one phase name, got none")
    for d in domains:
        one_of(d, _PHASES, "domains")
    partition = one_of(partition, ("voronoi", "slabs"), "partition")
    l10_axis = one_of(l10_axis, tuple(_AXES), "l10_axis")
    l12 = one_of(l12, ("FePt3", "Fe3Pt"), "l12")
    pt_fraction = _fraction(pt_fraction, "pt_fraction")
    antisite = _fraction(antisite, "antisite")

    rng_rot, rng_dom, rng_a1, rng_anti, rng_thermal = _child_generators(seed, 5)
    ijk = _fcc_sites(a, radius, shape)
    x = ijk * (0.5 * a)
    n = x.shape[0]

    # domains
    nd = len(domains)
    if partition == "slabs":
        edges = np.linspace(-radius, radius, nd + 1)[1:-1]
        dom = np.searchsorted(edges, x[:, 0], side="right")
    else:
        seeds = _seed_directions(nd) * (0.5 * radius)
        if nd > 1:
            seeds = seeds @ Rotation.random(random_state=rng_dom).as_matrix().T
            seeds = seeds + rng_dom.normal(0.0, 0.1 * radius, size=seeds.shape)
        d2 = (np.einsum("ij,ij->i", x, x)[:, None] - 2.0 * x @ seeds.T
              + np.einsum("ij,ij->i", seeds, seeds)[None, :])
        dom = np.argmin(d2, axis=1)
    phase = np.asarray(domains, dtype="<U4")[dom]

    # chemical order: True = Pt
    is_pt = np.zeros(n, dtype=bool)
    even = (ijk % 2) == 0
    corner = even.all(axis=1)
    a1_draw = rng_a1.random(n) < pt_fraction  # drawn for every site: independent of the domain layout
    for name in set(domains):
        sel = phase == name
        if name.startswith("L10"):
            axis = _AXES[name[3]] if len(name) == 4 else _AXES[l10_axis]
            is_pt[sel] = ~even[sel, axis]
        elif name == "L12":
            is_pt[sel] = ~corner[sel] if l12 == "FePt3" else corner[sel]
        else:
            is_pt[sel] = a1_draw[sel]

    # anti-site exchanges
    k = int(round(antisite * n / 2))
    if k:
        fe_idx = np.flatnonzero(~is_pt)
        pt_idx = np.flatnonzero(is_pt)
        if k > min(fe_idx.size, pt_idx.size):
            raise ValueError(f"antisite: {antisite} asks for {k} Fe-Pt exchanges but the particle has only "
                             f"{fe_idx.size} Fe and {pt_idx.size} Pt atoms")
        swap_fe = rng_anti.choice(fe_idx, size=k, replace=False)
        swap_pt = rng_anti.choice(pt_idx, size=k, replace=False)
        is_pt[swap_fe] = True
        is_pt[swap_pt] = False

    species = np.where(is_pt, "Pt", "Fe").astype("<U2")
    positions = _finish(x, _rotation_matrix(orientation, rng_rot), thermal, rng_thermal)
    return FePtParticle(positions, species, phase)


# ------------------------------------------------------------------------------------- tilt series
@dataclass
class SimulatedSeries:
    """A simulated tilt series.

    Attributes
    ----------
    tilts : float32 array
        ``(n_angles, ny, nx)``, or ``(n_angles, n_frames, ny, nx)`` when ``n_frames > 1``: the
        misaligned, noisy images, in projection units (expected value = projection + background).
    angles : (n_angles, 3) float64
        ZYZ Euler angles ``(phi, theta, psi)``, degrees.
    shifts : (n_angles, 2) float64
        ``(dy, dx)`` in pixels APPLIED to each image (frame 0) as misalignment, in the
        ``scipy.ndimage.shift`` sign convention; the alignment shift that undoes it is ``-shifts``.
    clean : (n_angles, ny, nx) float32
        Noiseless, aligned projections (no background), ``project_atoms`` output.
    pixel_size : float
        Å per pixel.
    frame_shifts : (n_angles, n_frames, 2) float64
        ``(dy, dx)`` applied to every frame: ``shifts[k] + f * drift_k``.
    count_scale : float or None
        Expected electron counts per unit of projection intensity in one frame (None if noiseless).
    """

    tilts: np.ndarray
    angles: np.ndarray
    shifts: np.ndarray
    clean: np.ndarray
    pixel_size: float
    frame_shifts: np.ndarray
    count_scale: Optional[float] = None


def _per_image_vectors(value, n: int, name: str) -> np.ndarray:
    try:
        v = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"{name}: expected numbers, got {type(value).__name__}") from None
    if v.shape == (2,):
        v = np.broadcast_to(v, (n, 2))
    if v.shape != (n, 2):
        raise ValueError(f"{name}: expected shape (2,) or ({n}, 2) (dy, dx) in pixels, got shape {v.shape}")
    finite_array(v, name)
    return np.array(v, dtype=np.float64)


def tilt_series(positions, species, angles, shape, pixel_size, *, model: AtomModel | None = None,
                dose: float | None = None, read_noise: float = 0.0, background: float = 0.0,
                shifts=None, max_shift: float = 5.0, n_frames: int = 1, drift=0.0, raster: bool = False,
                seed=None, threads=None) -> SimulatedSeries:
    """Simulate an ADF-STEM tilt series of an atomic model.

    Every image (and frame) is an exact projection of the Gaussian atoms
    (:func:`aetcore.model.projection.project_atoms`). Misalignment is applied exactly, by projecting the
    atoms translated along the detector by ``(dy, dx) * pixel_size`` — equivalent to
    ``scipy.ndimage.shift(clean[k], (dy, dx))`` without interpolation error or ringing.

    Noise model (when `dose` is given): with ``s = dose * pixel_size**2 / (n_frames * mean(clean))``
    (``mean`` over the whole clean series), each frame is ``poisson(s * P) / s`` where ``P`` is its
    shifted noiseless projection, so the mean count per pixel of the series is
    ``dose * pixel_size**2 / n_frames`` (the detector is taken to collect every electron in
    proportion to the projected signal) and the expected value of every frame equals ``P``
    (variance ``P / s``). Then ``background`` is added and Gaussian read noise (standard deviation
    `read_noise`, projection units) on top.

    Parameters
    ----------
    positions : (n_atoms, 3) array
        ``(x, y, z)`` in Å, object frame.
    species : (n_atoms,) sequence
        Element symbols (or integer labels into ``model.symbols``).
    angles : (n_angles,) or (n_angles, 3) array
        Tilt angles about y or ZYZ Euler angles, degrees.
    shape : (ny, nx)
        Image size, pixels.
    pixel_size : float
        Å per pixel.
    model : AtomModel, optional
        Per-species heights, B-factors and blur (default :func:`aetcore.model.projection.atom_model`).
    dose : float or None
        Electrons per Å² for the whole exposure of one angle (split evenly over the frames);
        None means no counting noise.
    read_noise : float
        Standard deviation of additive Gaussian noise per pixel and frame, projection units.
    background : float
        Constant added to every pixel, projection units.
    shifts : None, "random" or (n_angles, 2) array
        Misalignment ``(dy, dx)`` in pixels: None = none; "random" = uniform in
        ``[-max_shift, max_shift]`` per component; an array is used as given.
    max_shift : float
        Bound of random shifts, pixels.
    n_frames : int
        Frames per angle; with more than one, `tilts` is ``(n_angles, n_frames, ny, nx)``.
    drift : float, (2,) or (n_angles, 2) array
        Drift per frame, pixels. A float is a speed: each angle drifts in its own random direction.
        A vector gives ``(dy, dx)`` per frame (for all angles or per angle). Frame ``f`` of angle
        ``k`` is shifted by ``shifts[k] + f * drift_k``.
    raster : bool
        Also drift during each frame, as in a raster scan whose rows take the whole frame period:
        row ``y`` of frame ``f`` is acquired at ``f + y / ny`` frame periods and displaced by
        ``shifts[k] + (f + y / ny) * drift_k`` (``frame_shifts`` is then the displacement of row 0).
        Each frame is projected exactly at its row-0 displacement, then resampled row by row (cubic
        spline, :func:`scipy.ndimage.map_coordinates`, zero outside) for the extra ``(y / ny) *
        drift_k``, before any noise. The linear drift within a frame shears it.
    seed : None, int or numpy.random.Generator
    threads : int, optional
        Threads for the projector; None uses every core the process may use.

    Returns
    -------
    SimulatedSeries
    """
    pos = as_positions(positions)
    sp = np.asarray(species)
    if sp.ndim != 1 or sp.shape[0] != pos.shape[0]:
        raise ValueError(f"species: expected one entry per atom ({pos.shape[0]}), got shape {sp.shape}")
    ang = as_angles(angles)
    n = ang.shape[0]
    if not (isinstance(shape, (tuple, list)) and len(shape) == 2):
        raise ValueError(f"shape: expected a (ny, nx) pair, got {shape!r}")
    ny = at_least(shape[0], 1, "shape[0]", integer=True)
    nx = at_least(shape[1], 1, "shape[1]", integer=True)
    ps = positive(pixel_size, "pixel_size")
    if dose is not None:
        dose = positive(dose, "dose")
    read_noise = at_least(read_noise, 0.0, "read_noise")
    if isinstance(background, bool) or not isinstance(background, Real) or not np.isfinite(background):
        raise TypeError(f"background: expected a finite number, got {background!r}")
    background = float(background)
    max_shift = at_least(max_shift, 0.0, "max_shift")
    n_frames = at_least(n_frames, 1, "n_frames", integer=True)
    if not isinstance(raster, (bool, np.bool_)):
        raise TypeError(f"raster: expected True or False, got {type(raster).__name__}")
    threads = resolve_threads(threads)
    if model is not None and not isinstance(model, AtomModel):
        raise TypeError(f"model: expected an AtomModel or None, got {type(model).__name__}")
    rng_shift, rng_drift, rng_noise = _child_generators(seed, 3)

    if shifts is None:
        sh = np.zeros((n, 2))
    elif isinstance(shifts, str):
        if shifts != "random":
            raise ValueError(f"shifts: expected None, 'random' or an ({n}, 2) array, got {shifts!r}")
        sh = rng_shift.uniform(-max_shift, max_shift, size=(n, 2))
    else:
        sh = _per_image_vectors(shifts, n, "shifts")
    if isinstance(drift, Real) and not isinstance(drift, bool):
        speed = at_least(drift, 0.0, "drift")
        t = rng_drift.uniform(0.0, 2 * np.pi, size=n)
        dr = speed * np.stack([np.sin(t), np.cos(t)], axis=1)
    else:
        dr = _per_image_vectors(drift, n, "drift")
    frame_shifts = sh[:, None, :] + np.arange(n_frames)[None, :, None] * dr[:, None, :]

    kw = dict(model=model, threads=threads)
    clean = project_atoms(pos, sp, ang, (ny, nx), ps, **kw)
    out = np.empty((n, n_frames, ny, nx), dtype=np.float32)
    R = euler_matrices(ang)  # R = Rz(phi) Ry(theta) Rz(psi)
    for k in range(n):
        for f in range(n_frames):
            dy, dx = frame_shifts[k, f]
            if dy == 0 and dx == 0:
                out[k, f] = clean[k]
            else:  # detector offset (du, dv) = (dx, dy) px  <=>  object offset R_k (dx, dy, 0) p
                offset = R[k] @ np.array([dx * ps, dy * ps, 0.0])
                out[k, f] = project_atoms(pos + offset, sp, ang[k:k + 1], (ny, nx), ps, **kw)[0]
    if raster and np.any(dr):
        from scipy import ndimage
        yy, xx = np.mgrid[0:ny, 0:nx].astype(np.float64)
        frac = yy / ny
        for k in range(n):
            if not np.any(dr[k]):
                continue
            coords = [yy - frac * dr[k, 0], xx - frac * dr[k, 1]]
            for f in range(n_frames):
                out[k, f] = ndimage.map_coordinates(out[k, f].astype(np.float64), coords, order=3,
                                                    mode="constant")

    scale = None
    if dose is not None:
        mean = float(np.mean(clean, dtype=np.float64))
        if mean <= 0:
            raise ValueError("positions: the clean projections are empty (no atom inside the field of view), "
                             "so a dose cannot be applied")
        scale = dose * ps * ps / (n_frames * mean)
        lam = np.clip(out.astype(np.float64) * scale, 0.0, None)
        out = (rng_noise.poisson(lam) / scale).astype(np.float32)
    if background:
        out += np.float32(background)
    if read_noise > 0:
        out += rng_noise.normal(0.0, read_noise, size=out.shape).astype(np.float32)
    tilts = np.ascontiguousarray(out if n_frames > 1 else out[:, 0])
    return SimulatedSeries(tilts=tilts, angles=ang, shifts=sh.copy(), clean=clean, pixel_size=ps,
                           frame_shifts=frame_shifts, count_scale=scale)


def ground_truth_volume(positions, species, shape, pixel_size, *, model: AtomModel | None = None,
                        threads=None) -> np.ndarray:
    """The atoms rendered on the voxel grid: the truth to compare reconstructions with.

    Same Gaussian atoms as :func:`tilt_series` (:func:`aetcore.model.projection.render_atoms`), so
    ``ground_truth_volume(...).sum(axis=0)`` equals the ``theta = 0`` clean projection.

    Parameters
    ----------
    positions : (n_atoms, 3) array, Å
    species : (n_atoms,) sequence of element symbols
    shape : (nz, ny, nx)
        Voxels.
    pixel_size : float
        Å per voxel.
    model : AtomModel, optional
    threads : int, optional

    Returns
    -------
    (nz, ny, nx) float32 volume, origin at ``n // 2``.
    """
    return render_atoms(positions, species, shape, pixel_size, model=model, threads=threads)


def angles_range(start: float = -70.0, stop: float = 70.0, n: int = 51, *, uneven: float = 0.0,
                 seed=None) -> np.ndarray:
    """Single-axis tilt angles from `start` to `stop` inclusive, degrees.

    Parameters
    ----------
    start, stop : float
        First and last angle, degrees (kept exactly).
    n : int
        Number of angles (default 51: the 2.8° step of a typical ±70° AET series).
    uneven : float
        In [0, 1): every interior angle moves by a uniform random amount in
        ``[-uneven/2, uneven/2] * step``, so steps vary between ``(1 - uneven)`` and
        ``(1 + uneven)`` times the even step and the order is preserved.
    seed : None, int or numpy.random.Generator

    Returns
    -------
    (n,) float64 angles in degrees.
    """
    for name, v in (("start", start), ("stop", stop)):
        if isinstance(v, bool) or not isinstance(v, Real) or not np.isfinite(v) or abs(v) > 360:
            raise ValueError(f"{name}: expected a finite angle in degrees within [-360, 360], got {v!r}")
    n = at_least(n, 1, "n", integer=True)
    uneven = at_least(uneven, 0.0, "uneven")
    if uneven >= 1:
        raise ValueError(f"uneven: expected a value in [0, 1), got {uneven}")
    rng = as_generator(seed)
    out = np.linspace(float(start), float(stop), n)
    if uneven > 0 and n > 2:
        step = (float(stop) - float(start)) / (n - 1)
        out[1:-1] += rng.uniform(-0.5, 0.5, size=n - 2) * uneven * step
    return out
