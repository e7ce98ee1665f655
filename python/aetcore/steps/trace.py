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

#: ``threshold=None`` means this fraction of the volume's maximum.
DEFAULT_THRESHOLD_FRACTION = 0.1

_FITS = {"none": 0, "polynomial": 1, "gaussian": 2}


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


def _threshold(value, vol: np.ndarray) -> float:
    if value is None:
        return float(DEFAULT_THRESHOLD_FRACTION * vol.max())
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
    thr = _threshold(threshold, vol)
    return _core.local_maxima(vol, thr, resolve_threads(threads))


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


def trace_atoms(volume, pixel_size, *, threshold=None, max_atoms=None, min_distance=2.0, fit="polynomial",
                max_drift=1.5, fit_radius=2, max_iterations=50, support=None, reject_background=False,
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
    if min(vol.shape) < 3:
        raise ValueError(f"volume: expected at least 3 voxels along every axis, got shape {vol.shape}")
    p = positive(pixel_size, "pixel_size")
    thr = _threshold(threshold, vol)
    if max_atoms is None:
        cap = 0
    else:
        cap = at_least(max_atoms, 1, "max_atoms", integer=True)
    dmin = at_least(min_distance, 0.0, "min_distance")
    if not isinstance(fit, str) or fit not in _FITS:
        raise ValueError(f"fit: expected one of {sorted(_FITS)}, got {fit!r}")
    drift = positive(max_drift, "max_drift")
    radius = at_least(fit_radius, 1, "fit_radius", integer=True)
    if fit != "none" and radius < 2:
        raise ValueError(f"fit_radius: a 4th-order polynomial needs fit_radius >= 2, got {fit_radius}")
    iters = at_least(max_iterations, 1, "max_iterations", integer=True)
    nt = resolve_threads(threads)
    if isinstance(support, str):
        if support != "auto":
            raise ValueError(f"support: expected 'auto', None or a bool array, got {support!r}")
        mask = _support_mask(vol, p)
    elif support is None:
        mask = None
    else:
        mask = np.asarray(support)
        if mask.shape != vol.shape:
            raise ValueError(f"support: expected shape {vol.shape}, got {mask.shape}")
        mask = mask != 0
    reject_background = bool(reject_background)
    vox, pos, inten, status = _core.trace_atoms(vol, thr, cap, dmin / p, _FITS[fit], drift, radius, nt, iters)
    if vox.shape[0]:
        # a fit near the border may land beyond it (noisy edge voxels); such an atom keeps its voxel
        # maximum, which is inside, with status 4, so that trace never hands classify an atom it refuses
        gone = np.any((pos < -0.5) | (pos > np.array(vol.shape, np.float64) - 0.5), axis=1)
        if gone.any():
            pos = pos.copy()
            pos[gone] = vox[gone]
            status = status.copy()
            status[gone] = 4
    if mask is not None and vox.shape[0]:
        keep = mask[vox[:, 0], vox[:, 1], vox[:, 2]]
        if reject_background:
            keep &= ~_background_rejects(vol, vox, inten, mask)
        vox, pos, inten, status = vox[keep], pos[keep], inten[keep], status[keep]
    nz, ny, nx = vol.shape
    positions = (pos[:, ::-1] - np.array([nx // 2, ny // 2, nz // 2], np.float64)) * p
    return TracedAtoms(np.ascontiguousarray(positions), vox, inten, status, p, vol.shape)
