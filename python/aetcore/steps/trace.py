"""From volume to atoms: local maxima, sub-voxel positions and a minimum distance between atoms.

:func:`trace_atoms` finds the local maxima of a volume (26-neighbourhood; a plateau of equal values
yields one peak), fits each one to sub-voxel precision, keeps the brighter of any two atoms closer than
``min_distance`` and returns a :class:`TracedAtoms`. Positions are in Å in the CONVENTIONS.md object frame:
voxel ``vol[z, y, x]`` sits at ``((x - nx//2) p, (y - ny//2) p, (z - nz//2) p)``.

Fits (in the C++ core, in parallel):

``"polynomial"``
    Least-squares polynomial of total degree 4 (35 terms) over the 5x5x5 box around the voxel maximum
    (``fit_radius=2``; degree 2 where the volume border truncates the box below 5 voxels along an
    axis), evaluated on a 3x upsampled grid of the +-1 voxel crop around the maximum; the argmax on that
    grid is refined by Newton steps.
``"gaussian"``
    The polynomial result refined by a Levenberg-Marquardt fit of ``B + H g(r)``, where ``g`` is the
    voxel mean (exact, with error functions, as in :func:`aetcore.model.projection.render_atoms`) of an isotropic
    Gaussian ``exp(-|r - c|^2 / (2 s^2))``: background, height, centre and width are fitted.
``"none"``
    The voxel maxima themselves.

Each fit has a status (:data:`STATUS`): 0 converged, 1 not a maximum (polynomial Hessian not negative
definite, or a non-positive Gaussian height or width), 2 drifted more than ``max_drift`` voxels from the
voxel maximum, 3 did not converge (or too few voxels to fit), 4 the fit left the volume (beyond half a voxel
outside its border). Atoms whose fit failed keep the position of their voxel maximum, so every traced atom
lies inside the volume and the next step (classification) accepts the whole set.
"""
from __future__ import annotations

from dataclasses import dataclass
from numbers import Real

import numpy as np

from .. import _core
from .._util.validate import as_volume, at_least, positive, resolve_threads

__all__ = ["trace_atoms", "local_maxima", "TracedAtoms", "STATUS", "DEFAULT_THRESHOLD_FRACTION"]

#: Meaning of the ``status`` codes of :class:`TracedAtoms`.
STATUS = {0: "converged", 1: "not a maximum", 2: "drifted", 3: "did not converge", 4: "left the volume"}

#: The defaults of :func:`trace_atoms`: the C++ options struct ``aet::TraceOptions`` (the one home of
#: every tracing default, shared with C++ hosts and ``aet config --defaults``).
_D = _core.TraceOptions()

#: ``threshold=None`` means this fraction of the volume's maximum (``aet::TraceOptions::threshold_fraction``).
DEFAULT_THRESHOLD_FRACTION = _D.threshold_fraction

#: ``fit`` names and their ``aet::TraceOptions::fit`` codes.
FITS = {"none": 0, "polynomial": 1, "gaussian": 2}
_FITS = FITS
_FIT_NAMES = {v: k for k, v in FITS.items()}
#: The default ``fit`` name (``aet::TraceOptions::fit``).
DEFAULT_FIT = _FIT_NAMES[_D.fit]


@dataclass(frozen=True)
class TracedAtoms:
    """Atoms traced in a volume, brightest first.

    Attributes
    ----------
    positions : (n, 3) float64
        Object-frame ``(x, y, z)`` in Å relative to the volume origin (index ``n // 2`` on every axis).
    voxel : (n, 3) int64
        ``(z, y, x)`` indices of the voxel maxima.
    intensity : (n,) float32
        Volume value at each voxel maximum.
    status : (n,) int8
        Fit status, see :data:`STATUS` (0 converged).
    pixel_size : float
        Å per voxel.
    shape : (nz, ny, nx)
        Shape of the traced volume.
    """

    positions: np.ndarray
    voxel: np.ndarray
    intensity: np.ndarray
    status: np.ndarray
    pixel_size: float
    shape: tuple

    def __len__(self) -> int:
        return int(self.intensity.shape[0])

    @property
    def positions_voxels(self) -> np.ndarray:
        """(n, 3) float64 sub-voxel positions as fractional array indices ``(z, y, x)``."""
        nz, ny, nx = self.shape
        return self.positions[:, ::-1] / self.pixel_size + np.array([nz // 2, ny // 2, nx // 2], np.float64)

    @property
    def converged(self) -> np.ndarray:
        """(n,) bool: the fit converged (status 0)."""
        return self.status == 0


def _threshold(value) -> float:
    """The threshold for the core: a finite number, or NaN for the automatic one (None)."""
    if value is None:
        return float("nan")
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"threshold: expected a number (volume intensity units) or None, got {type(value).__name__}")
    if not np.isfinite(value):
        raise ValueError(f"threshold: expected a finite number, got {value}")
    return float(value)


def local_maxima(volume, threshold=None, *, threads=None):
    """Local maxima of a volume above a threshold, brightest first.

    A voxel is a maximum if its value is ``> threshold`` and ``>=`` every voxel of its 26-neighbourhood
    inside the volume; a connected plateau of equal values that no higher voxel touches yields one
    maximum, the plateau voxel nearest its centroid. The order (value descending, then linear index)
    does not depend on ``threads``.

    Parameters
    ----------
    volume : (nz, ny, nx) array
    threshold : float, optional
        In volume intensity units; None means ``DEFAULT_THRESHOLD_FRACTION * volume.max()``.
    threads : int, optional
        OpenMP threads; None uses every core the process may use.

    Returns
    -------
    voxel : (n, 3) int64 ``(z, y, x)`` indices
    values : (n,) float32
    """
    vol = as_volume(volume)
    return _core.local_maxima(vol, _threshold(threshold), resolve_threads(threads))


def _support_mask(vol: np.ndarray, p: float) -> np.ndarray:
    """The particle: the volume smoothed over 1 Å, Otsu-thresholded, holes filled, dilated by 2.5 Å."""
    from .reconstruct import auto_support

    return auto_support(vol, smoothing=max(0.5, 1.0 / p), dilation=max(1, int(round(2.5 / p))))


def _background_rejects(vol: np.ndarray, vox: np.ndarray, inten: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Candidates whose 3x3x3 box is closer to the background than to the typical faint atom.

    The atom reference is the mean box of the candidates at or below the median peak value (the
    lightest species dominate there, so light atoms are not measured against heavy ones); the
    background reference is a flat box at the median of the voxels outside the particle.
    """
    if vox.shape[0] < 4 or mask.all():
        return np.zeros(vox.shape[0], bool)
    off = np.stack(np.meshgrid(*([np.arange(-1, 2)] * 3), indexing="ij"), -1).reshape(-1, 3)
    idx = np.clip(vox[:, None, :] + off[None], 0, np.array(vol.shape) - 1)
    boxes = vol[idx[..., 0], idx[..., 1], idx[..., 2]].astype(np.float64)
    faint = inten <= np.median(inten)
    atom = boxes[faint].mean(axis=0)
    background = float(np.median(vol[~mask]))
    d_atom = np.linalg.norm(boxes - atom, axis=1)
    d_bg = np.linalg.norm(boxes - background, axis=1)
    return d_bg < d_atom


def trace_atoms(volume, pixel_size, *, threshold=None, max_atoms=None, min_distance=_D.min_distance,
                fit=DEFAULT_FIT, max_drift=_D.max_drift, fit_radius=_D.fit_radius,
                max_iterations=_D.max_iterations, support=None, reject_background=False,
                threads=None) -> TracedAtoms:
    """Trace atoms in a volume: local maxima, sub-voxel fits, minimum distance.

    Parameters
    ----------
    volume : (nz, ny, nx) array
        Indexed ``vol[z, y, x]``; every axis at least 3 voxels long.
    pixel_size : float
        Å per voxel.
    threshold : float, optional
        Only maxima with a value ``> threshold`` (volume intensity units) are atoms. None means
        ``DEFAULT_THRESHOLD_FRACTION`` (0.1) times the volume's maximum.
    max_atoms : int, optional
        Keep at most this many atoms (the brightest). None keeps all.
    min_distance : float
        Minimum distance between atoms, Å. Of two atoms closer than this (fitted positions) the brighter
        voxel maximum wins, greedily in brightness order. 0 disables the rule.
    fit : {"polynomial", "gaussian", "none"}
        Sub-voxel method (see the module documentation).
    max_drift : float
        Largest accepted distance, in voxels, between a fitted position and its voxel maximum; farther
        fits get status 2 and keep the voxel maximum. 1.5 (default): on noisy light atoms (Fe next to
        Pt) the voxel maximum is often a noise voxel more than one voxel from the peak the fit finds;
        with 1.0, 4 % of the atoms of a 96^3 GENFIRE volume of FePt kept their voxel and the RMSD was
        10.3 pm instead of 7.0 pm (5.3 pm with ``fit="gaussian"``).
    fit_radius : int
        Half-width of the fitting box in voxels (2: the 5x5x5 box, 125 voxels for 35 polynomial terms).
    max_iterations : int
        Newton steps of the polynomial fit (the Gaussian fit takes up to 4x as many
        Levenberg-Marquardt steps); a fit that has not converged by then gets status 3 and keeps its
        voxel maximum. Newton converges in a handful of steps on atom-like peaks.
    support : None, "auto" or bool array (nz, ny, nx)
        Peaks outside the particle are dropped. "auto": the volume smoothed over 1 Å, thresholded by
        Otsu's method and dilated by 2.5 Å; None (default) keeps every peak. Off by default: on
        GENFIRE volumes of FePt it dropped a surface Fe atom now and then, and the species
        classification's non-atom class already removes faint peaks.
    reject_background : bool
        With a support: drop candidates whose 3x3x3 box is closer to the background (the median
        outside the support) than to the mean box of the fainter half of the candidates. Off by
        default: where the light species is a minority (FePt) it rejects light atoms.
    threads : int, optional
        OpenMP threads; None uses every core the process may use. The result does not depend on it.

    Returns
    -------
    TracedAtoms
        Brightest first; positions in Å, object frame ``(x, y, z)``.
    """
    vol = as_volume(volume)
    p = positive(pixel_size, "pixel_size")
    if max_atoms is None:
        cap = 0  # the core's "no cap"
    else:
        cap = at_least(max_atoms, 1, "max_atoms", integer=True)
    if not isinstance(fit, str) or fit not in _FITS:
        raise ValueError(f"fit: expected one of {sorted(_FITS)}, got {fit!r}")
    if isinstance(support, str) and support != "auto":
        raise ValueError(f"support: expected 'auto', None or a bool array, got {support!r}")
    mask = None
    if support is not None and not isinstance(support, str):
        mask = np.asarray(support)
        if mask.shape != vol.shape:
            raise ValueError(f"support: expected shape {vol.shape}, got {mask.shape}")
        mask = mask != 0
    # Types here (a message naming the argument); ranges, the volume's size and the rule that a fit
    # which left the volume keeps its voxel (status 4) in the core (aet::trace_atoms, aet::validate).
    vox, pos, inten, status = _core.trace_atoms(
        vol, _threshold(threshold), cap, at_least(min_distance, -np.inf, "min_distance"), _FITS[fit],
        at_least(max_drift, -np.inf, "max_drift"), at_least(fit_radius, -np.inf, "fit_radius", integer=True),
        resolve_threads(threads), at_least(max_iterations, -np.inf, "max_iterations", integer=True), p)
    if isinstance(support, str):
        mask = _support_mask(vol, p)
    if mask is not None and vox.shape[0]:
        keep = mask[vox[:, 0], vox[:, 1], vox[:, 2]]
        if bool(reject_background):
            keep &= ~_background_rejects(vol, vox, inten, mask)
        vox, pos, inten, status = vox[keep], pos[keep], inten[keep], status[keep]
    nz, ny, nx = vol.shape
    positions = (pos[:, ::-1] - np.array([nx // 2, ny // 2, nz // 2], np.float64)) * p
    return TracedAtoms(np.ascontiguousarray(positions), vox, inten, status, p, vol.shape)
