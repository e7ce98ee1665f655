"""Forward and back projection of volumes and of atomic models (CONVENTIONS.md geometry).

Projections are line integrals with lengths counted in voxels, so ``project_volume(vol, [0])[0]``
equals ``vol.sum(axis=0)``. Atoms are isotropic Gaussians ``H_s exp(-|r - r_i|^2 / (2 sigma_s^2))``
with ``sigma_s^2 = B_s / (8 pi^2) + blur^2``; a pixel holds the mean of the projection over its square.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
from ase.data import atomic_numbers

from .. import _core
from .._util.validate import as_angles, as_positions, as_tilts, as_volume, at_least, positive, resolve_threads

__all__ = ["project_volume", "backproject_volume", "project_atoms", "render_atoms", "AtomModel",
           "atom_model", "DEFAULT_B_FACTOR", "DEFAULT_BLUR"]

#: Debye-Waller factor used when none is given, Å².
DEFAULT_B_FACTOR = 4.0
#: Instrument blur (standard deviation, Å) folded into every atom's sigma when none is given.
DEFAULT_BLUR = 0.5


def _shape2(shape, name: str) -> tuple[int, int]:
    if not (isinstance(shape, (tuple, list)) and len(shape) == 2):
        raise ValueError(f"{name}: expected a (ny, nx) pair, got {shape!r}")
    return (at_least(shape[0], 1, f"{name}[0]", integer=True), at_least(shape[1], 1, f"{name}[1]", integer=True))


def _shape3(shape, name: str) -> tuple[int, int, int]:
    if not (isinstance(shape, (tuple, list)) and len(shape) == 3):
        raise ValueError(f"{name}: expected an (nz, ny, nx) triple, got {shape!r}")
    return tuple(at_least(s, 1, f"{name}[{i}]", integer=True) for i, s in enumerate(shape))


def project_volume(volume, angles, *, detector_shape=None, threads=None) -> np.ndarray:
    """Project a volume along Euler angles (real space, trilinear interpolation).

    Parameters
    ----------
    volume : (nz, ny, nx) array
        Indexed ``vol[z, y, x]``, origin at ``n // 2`` on every axis.
    angles : (n,) or (n, 3) array
        Tilt angles about y or ZYZ Euler angles ``(phi, theta, psi)``, degrees.
    detector_shape : (ny, nx), optional
        Detector size in pixels; defaults to the volume's ``(ny, nx)``.
    threads : int, optional
        OpenMP threads; None uses every core the process may use.

    Returns
    -------
    (n, ny, nx) float32 tilt series; lengths along the beam counted in voxels.
    """
    vol = as_volume(volume)
    a = as_angles(angles)
    ndy, ndx = _shape2(detector_shape, "detector_shape") if detector_shape is not None else vol.shape[1:]
    return _core.project_volume(vol, np.radians(a), ndy, ndx, resolve_threads(threads))


def backproject_volume(tilts, angles, shape, *, threads=None) -> np.ndarray:
    """The exact adjoint of :func:`project_volume`: ``<P x, y> == <x, backproject(y)>``.

    Parameters
    ----------
    tilts : (n, ny, nx) array
    angles : (n,) or (n, 3) array, degrees
    shape : (nz, ny, nx)
        Shape of the volume to return.
    threads : int, optional
    """
    t = as_tilts(tilts)
    a = as_angles(angles, t.shape[0])
    nz, ny, nx = _shape3(shape, "shape")
    return _core.backproject_volume(t, np.radians(a), nz, ny, nx, resolve_threads(threads))


@dataclass(frozen=True)
class AtomModel:
    """Per-species parameters of the Gaussian atom model.

    Attributes
    ----------
    symbols : tuple of str
        Species, in the order of the integer labels.
    heights : (n_species,) array
        Peak height ``H_s`` (volume intensity units).
    b_factors : (n_species,) array
        Debye-Waller factors ``B_s``, Å².
    blur : float
        Instrument blur folded into sigma, Å.
    """

    symbols: tuple
    heights: np.ndarray
    b_factors: np.ndarray
    blur: float

    @property
    def sigmas(self) -> np.ndarray:
        """``sigma_s = sqrt(B_s / (8 pi^2) + blur^2)``, Å."""
        return np.sqrt(self.b_factors / (8 * np.pi ** 2) + self.blur ** 2)

    def labels(self, species) -> np.ndarray:
        """Integer labels (int32) of a sequence of element symbols."""
        sp = np.asarray(species)
        if sp.dtype.kind in "iu":
            lab = sp.astype(np.int32)
            if lab.size and (lab.min() < 0 or lab.max() >= len(self.symbols)):
                raise ValueError(f"species: labels must lie in 0..{len(self.symbols) - 1}")
            return lab
        index = {s: i for i, s in enumerate(self.symbols)}
        try:
            return np.fromiter((index[str(s)] for s in sp.ravel()), dtype=np.int32, count=sp.size)
        except KeyError as exc:
            raise ValueError(f"species: unknown symbol {exc.args[0]!r}; known: {self.symbols}") from None


def _per_species(values, symbols, default, name) -> np.ndarray:
    if values is None:
        return np.array([default(s) for s in symbols], dtype=np.float64)
    try:
        if isinstance(values, Mapping):
            missing = [s for s in symbols if s not in values]
            if missing:
                raise ValueError(f"{name}: no value for species {missing}")
            out = np.array([float(values[s]) for s in symbols], dtype=np.float64)
        else:
            out = np.asarray(values, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError) as e:
        if str(e).startswith(name):
            raise
        raise TypeError(f"{name}: expected numbers (a float, one per species or a dict by symbol), got "
                        f"{values!r}") from None
        if out.size == 1:
            out = np.full(len(symbols), float(out[0]))
        if out.size != len(symbols):
            raise ValueError(f"{name}: expected one value per species ({len(symbols)}), got {out.size}")
    if not np.all(np.isfinite(out)):
        raise ValueError(f"{name}: expected finite values, got {out}")
    return out


def default_height(symbol: str) -> float:
    """ADF-STEM peak height of an element, ``(Z / 78) ** 1.7`` (Pt = 1): integrated intensity
    rises roughly as Z^1.7 for incoherent imaging."""
    if symbol not in atomic_numbers:
        raise ValueError(f"species: {symbol!r} is not an element symbol")
    return (atomic_numbers[symbol] / 78.0) ** 1.7


def atom_model(symbols: Sequence[str], heights=None, b_factors=None, blur: float = DEFAULT_BLUR) -> AtomModel:
    """Build an :class:`AtomModel`.

    Parameters
    ----------
    symbols : sequence of str
        Distinct element symbols (e.g. ``("Fe", "Pt")``).
    heights : dict, sequence or float, optional
        ``H_s`` per species; default :func:`default_height`.
    b_factors : dict, sequence or float, optional
        ``B_s`` per species in Å²; default :data:`DEFAULT_B_FACTOR`.
    blur : float
        Instrument blur in Å (>= 0).
    """
    symbols = tuple(str(s) for s in symbols)
    if not symbols:
        raise ValueError("symbols: expected at least one species")
    if len(set(symbols)) != len(symbols):
        raise ValueError(f"symbols: expected distinct species, got {symbols}")
    h = _per_species(heights, symbols, default_height, "heights")
    b = _per_species(b_factors, symbols, lambda s: DEFAULT_B_FACTOR, "b_factors")
    if np.any(b < 0):
        raise ValueError(f"b_factors: expected values >= 0 Å², got {b}")
    blur = at_least(blur, 0.0, "blur")
    if blur > 1e3 or np.any(b > 1e6):  # Å, Å^2: far beyond any atom, and sigma^2 would overflow
        raise ValueError(f"blur/b_factors: expected an atom width below 1000 Å, got blur {blur} Å and "
                         f"B {b} Å^2")
    model = AtomModel(symbols, h, b, blur)
    if np.any(model.sigmas <= 0):
        raise ValueError("b_factors/blur: every atom needs a positive width (B > 0 or blur > 0)")
    return model


def _atom_inputs(positions, species, pixel_size, model, heights, b_factors, blur):
    p = as_positions(positions)
    ps = positive(pixel_size, "pixel_size")
    sp = np.asarray(species)
    if sp.ndim != 1 or sp.shape[0] != p.shape[0]:
        raise ValueError(f"species: expected one entry per atom ({p.shape[0]}), got shape {sp.shape}")
    if model is None:
        symbols = list(dict.fromkeys(str(s) for s in sp)) if sp.dtype.kind not in "iu" else None
        if symbols is None:
            raise ValueError("species: integer labels need a `model` (see atom_model)")
        model = atom_model(sorted(symbols, key=lambda s: atomic_numbers.get(s, 0)), heights, b_factors, blur)
    labels = model.labels(sp)
    return np.ascontiguousarray(p / ps), labels, model.heights, model.sigmas / ps


def project_atoms(positions, species, angles, shape, pixel_size, *, model: AtomModel | None = None,
                  heights=None, b_factors=None, blur: float = DEFAULT_BLUR, cutoff: float = 5.0,
                  threads=None) -> np.ndarray:
    """Exact projections of Gaussian atoms at any angles (CONVENTIONS.md forward model).

    Parameters
    ----------
    positions : (n_atoms, 3) array
        Object-frame ``(x, y, z)`` in Å relative to the origin.
    species : (n_atoms,) sequence
        Element symbols, or integer labels into ``model.symbols``.
    angles : (n,) or (n, 3) array
        Degrees.
    shape : (ny, nx)
        Detector size in pixels.
    pixel_size : float
        Å per pixel.
    model : AtomModel, optional
        Per-species heights, B-factors and blur; otherwise built from `heights`, `b_factors`, `blur`.
    cutoff : float
        Atoms are evaluated within ``cutoff`` sigmas.
    threads : int, optional

    Returns
    -------
    (n, ny, nx) float32; an atom's total intensity is ``H_s (2 pi)^{3/2} sigma_s^3`` with sigma in pixels.
    """
    pos, lab, h, sig = _atom_inputs(positions, species, pixel_size, model, heights, b_factors, blur)
    a = as_angles(angles)
    ny, nx = _shape2(shape, "shape")
    cutoff = positive(cutoff, "cutoff")
    return _core.project_atoms(pos, lab, h, sig, np.radians(a), ny, nx, cutoff, resolve_threads(threads))


def render_atoms(positions, species, shape, pixel_size, *, model: AtomModel | None = None, heights=None,
                 b_factors=None, blur: float = DEFAULT_BLUR, cutoff: float = 5.0, threads=None) -> np.ndarray:
    """Gaussian atoms rendered on the voxel grid (each voxel the mean over its cube).

    The ground-truth volume of a simulation: ``render_atoms(...).sum(axis=0)`` equals the
    ``theta = 0`` projection from :func:`project_atoms`.

    Parameters are those of :func:`project_atoms`, with ``shape = (nz, ny, nx)``.
    """
    pos, lab, h, sig = _atom_inputs(positions, species, pixel_size, model, heights, b_factors, blur)
    nz, ny, nx = _shape3(shape, "shape")
    cutoff = positive(cutoff, "cutoff")
    return _core.render_atoms(pos, lab, h, sig, nz, ny, nx, cutoff, resolve_threads(threads))
