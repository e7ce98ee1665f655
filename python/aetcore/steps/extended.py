"""Extended objects: films, needle tips, anything that leaves the field of view (issue 13, item 2).

A particle sits in vacuum: the borders of every image are background. A film extends beyond the
field of view: its borders carry the same projected mass as the interior, and at high tilt the rays
through the edge pixels also cross the film *outside* the reconstruction box, mass that no model
inside the box can explain. Three things follow from the data alone:

* :func:`detect_extended`: whether the series is an extended object. Per image, the mean of four
  border strips (each ``border`` of the image side wide) and of the central half of the image are
  compared with the vacuum level ``b0`` (the 1st percentile of all pixels of the series):
  ``ratio = (mean(strip) - b0) / (mean(centre) - b0)``. Vacuum borders give ``ratio ~ 0`` (noise over
  contrast), borders through the object ``ratio ~ 1``. The median over the images of each strip's
  ratio, and the largest of the four (a needle tip leaves the field on one side only), is compared
  with `threshold`.
* :func:`slab_extent`: the film's extent along the beam at zero tilt (``z``) from the reconstruction's
  z-profile: the fraction of each z-plane occupied by atoms (the volume smoothed over 1 Å, above its
  Otsu threshold). The mean of each plane is a poor profile on measured films (their surfaces are
  rough, and a Fourier reconstruction's vacuum is not zero); the occupancy falls from its maximum
  inside the film to nearly zero in the vacuum. The film ends where, going outwards from the densest
  plane, the profile first falls below ``level`` of the way from its minimum to its maximum; the
  extent is those crossings plus `margin`. :func:`slab_support` is the
  same as a voxel mask for :func:`aetcore.steps.trace.trace_atoms` (peaks in the vacuum above and
  below the film are not atoms).
* :func:`ray_mask`: the pixels whose ray stays inside the box laterally while it crosses the slab
  (every point of the ray between ``z0`` and ``z1`` within the box's ``x`` and ``y`` extent; the
  segment and the box are convex, so checking the two ends suffices). Only these pixels are explained
  by atoms inside the box; the evidence step weighs the others zero
  (:func:`aetcore.steps.evidence.decide_atoms` ``pixel_mask``).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._util.validate import as_angles, as_tilts, positive
from ..model.geometry import euler_matrices

__all__ = ["ExtendedDetection", "detect_extended", "slab_extent", "slab_support", "ray_mask", "padded_resire",
           "HALF_SET_ITERATIONS"]

_SIDES = ("x-", "x+", "y-", "y+")


@dataclass(frozen=True)
class ExtendedDetection:
    """The outcome of :func:`detect_extended`.

    Attributes
    ----------
    extended : bool
        The series is an extended object (``max(ratios) > threshold``).
    ratios : dict
        Median over the images of ``(mean(strip) - b0) / (mean(centre) - b0)`` for the strips
        ``"x-"``, ``"x+"`` (first and last columns), ``"y-"``, ``"y+"`` (first and last rows).
    background : float
        ``b0``, the vacuum level (series units).
    threshold : float
    """

    extended: bool
    ratios: dict
    background: float
    threshold: float


def detect_extended(tilts, *, border: float = 0.05, threshold: float = 0.5) -> ExtendedDetection:
    """Whether the images' borders are vacuum (a particle) or not (an extended object).

    Parameters
    ----------
    tilts : (n_angles, ny, nx) array
        The tilt series (background not necessarily removed).
    border : float
        Width of each border strip, as a fraction of the image side (at least 2 pixels).
    threshold : float
        The series is extended when the largest strip ratio exceeds this (module documentation).

    Returns
    -------
    ExtendedDetection
    """
    t = as_tilts(tilts).astype(np.float64)
    border = positive(border, "border")
    if border >= 0.25:
        raise ValueError(f"border: expected a fraction of the image side below 0.25, got {border}")
    threshold = positive(threshold, "threshold")
    _, ny, nx = t.shape
    bx, by = max(2, int(round(border * nx))), max(2, int(round(border * ny)))
    b0 = float(np.percentile(t, 1.0))
    centre = t[:, ny // 4: ny - ny // 4, nx // 4: nx - nx // 4].mean(axis=(1, 2)) - b0
    strips = {"x-": t[:, :, :bx], "x+": t[:, :, nx - bx:], "y-": t[:, :by, :], "y+": t[:, ny - by:, :]}
    ok = centre > 0
    ratios = {}
    for side in _SIDES:
        m = strips[side].mean(axis=(1, 2)) - b0
        ratios[side] = float(np.median(m[ok] / centre[ok])) if ok.any() else 0.0
    return ExtendedDetection(extended=max(ratios.values()) > threshold, ratios=ratios, background=b0,
                             threshold=threshold)


def slab_extent(volume, pixel_size: float, *, level: float = 0.15, margin: float = 4.0) -> tuple[float, float]:
    """The film's extent along z from a reconstruction (module documentation).

    Parameters
    ----------
    volume : (nz, ny, nx) array
        The reconstruction (voxel = `pixel_size`), origin at index ``n // 2`` of every axis.
    pixel_size : float
        Å per voxel.
    level : float
        The film ends where its occupancy profile falls below ``min + level * (max - min)``, in (0, 1).
    margin : float
        Å added on both sides of the crossings. On the Ta film (area 1) the surface layers are faint in
        aetcore's GENFIRE volume: 1.5 Å cut 9 % of the published atoms (4.0 Å: 4 %, with 35 instead of 9
        of 176 vacuum peaks left); on the source's RESIRE volume neither loses any.

    Returns
    -------
    (z0, z1) : floats
        Å, object frame, ``z0 < z1``, clipped to the box.
    """
    from scipy import ndimage

    from .reconstruct import _otsu
    vol = np.asarray(volume, np.float64)
    if vol.ndim != 3:
        raise ValueError(f"volume: expected a (nz, ny, nx) array, got shape {vol.shape}")
    ps = positive(pixel_size, "pixel_size")
    level = float(level)
    if not 0.0 < level < 1.0:
        raise ValueError(f"level: expected a fraction in (0, 1), got {level}")
    margin = float(margin)
    if not (np.isfinite(margin) and margin >= 0):
        raise ValueError(f"margin: expected a non-negative number of Å, got {margin}")
    nz = vol.shape[0]
    lo_box, hi_box = -(nz // 2) * ps, (nz - 1 - nz // 2) * ps
    smooth = ndimage.gaussian_filter(vol, 1.0 / ps)                   # atoms -> blobs (1 Å)
    prof = (smooth > _otsu(smooth.ravel())).mean(axis=(1, 2))       # occupied fraction of each z-plane
    top, bottom = float(prof.max()), float(prof.min())
    if not top > bottom:
        return float(lo_box), float(hi_box)
    cut = bottom + level * (top - bottom)
    peak = int(np.argmax(prof))
    below = np.flatnonzero(prof < cut)
    left, right = below[below < peak], below[below > peak]
    # from the densest plane outwards to the first plane below the cut (the box ends of a Fourier
    # reconstruction can rise again: wrap-around), with linear interpolation of the crossing
    z0 = 0.0 if left.size == 0 else left[-1] + (cut - prof[left[-1]]) / (prof[left[-1] + 1] - prof[left[-1]])
    z1 = nz - 1.0 if right.size == 0 else right[0] - (cut - prof[right[0]]) / (prof[right[0] - 1] - prof[right[0]])
    lo = max((z0 - nz // 2) * ps - margin, lo_box)
    hi = min((z1 - nz // 2) * ps + margin, hi_box)
    return float(lo), float(hi)


def slab_support(shape, pixel_size: float, extent) -> np.ndarray:
    """The voxels of a `shape` ``(nz, ny, nx)`` box whose z (Å, origin at ``nz // 2``) lies within
    `extent` ``(z0, z1)``: a bool support mask."""
    nz, ny, nx = (int(s) for s in shape)
    ps = positive(pixel_size, "pixel_size")
    z0, z1 = (float(v) for v in extent)
    if not z0 < z1:
        raise ValueError(f"extent: expected z0 < z1, got {extent!r}")
    z = (np.arange(nz) - nz // 2) * ps
    inside = (z >= z0) & (z <= z1)
    return np.broadcast_to(inside[:, None, None], (nz, ny, nx)).copy()


def ray_mask(angles, image_shape, pixel_size: float, extent, volume_shape=None) -> np.ndarray:
    """The pixels whose rays stay inside the box laterally across the slab (module documentation).

    Parameters
    ----------
    angles : (n_angles,) or (n_angles, 3) array
        Degrees (CONVENTIONS.md ZYZ).
    image_shape : (ny, nx)
        Detector size, pixels (origin at ``n // 2``).
    pixel_size : float
        Å.
    extent : (z0, z1)
        The slab, Å (:func:`slab_extent`).
    volume_shape : (nz, ny, nx), optional
        The reconstruction box (default ``(nx, ny, nx)``); its lateral extent is the box.

    Returns
    -------
    (n_angles, ny, nx) bool
        True where the pixel's ray crosses the slab inside the box.
    """
    ny, nx = (int(s) for s in image_shape)
    ps = positive(pixel_size, "pixel_size")
    z0, z1 = (float(v) for v in extent)
    if not z0 < z1:
        raise ValueError(f"extent: expected z0 < z1, got {extent!r}")
    _, vy, vx = (nx, ny, nx) if volume_shape is None else (int(s) for s in volume_shape)
    a = as_angles(angles)
    R = np.transpose(euler_matrices(a), (0, 2, 1))                    # detector = R @ object
    u = (np.arange(nx) - nx // 2) * ps
    v = (np.arange(ny) - ny // 2) * ps
    xlo, xhi = -(vx // 2 + 0.5) * ps, (vx - 1 - vx // 2 + 0.5) * ps
    ylo, yhi = -(vy // 2 + 0.5) * ps, (vy - 1 - vy // 2 + 0.5) * ps
    out = np.zeros((R.shape[0], ny, nx), bool)
    for k, Rk in enumerate(R):
        d = Rk[2]                                                     # ray direction, object frame
        if abs(d[2]) < 1e-9:
            continue                                                  # a ray parallel to the slab
        ok = np.ones((ny, nx), bool)
        for z in (z0, z1):
            # the point of the ray through (u, v) at height z: r = R^T (u, v, w) with r_z = z
            w = (z - Rk[0, 2] * u[None, :] - Rk[1, 2] * v[:, None]) / Rk[2, 2]
            x = Rk[0, 0] * u[None, :] + Rk[1, 0] * v[:, None] + Rk[2, 0] * w
            y = Rk[0, 1] * u[None, :] + Rk[1, 1] * v[:, None] + Rk[2, 1] * w
            ok &= (x >= xlo) & (x <= xhi) & (y >= ylo) & (y <= yhi)
        out[k] = ok
    return out


#: Iterations of each half-set reconstruction of :func:`padded_resire` for the half-set FSC (``aet run``
#: ``[reconstruct] extended_half_set_iterations``): each half is reconstructed from scratch (no warm
#: start, so the halves stay independent of each other and of the full volume), with the accelerated
#: descent. On the Ta film (area 1, pad 0.375) 10 iterations per half put the FSC's 0.5 crossing within
#: 0.23 shells of that of halves run to 100 plain iterations (the 0.143 crossing is at Nyquist both
#: ways) and add 42 % to the full reconstruction's projections (bench/README.md, real_film).
HALF_SET_ITERATIONS = 10


def padded_resire(tilts, angles, *, pixel_size: float = 1.0, pad: float = 0.375, iterations: int = 25,
                  accelerate: bool = True, threads=None, progress: bool = False):
    """RESIRE in a box wider than the field of view along x, cropped back: a reconstruction of an
    extended object that gives the mass outside the box a place to go.

    A film's rays at high tilt cross it outside the ``(nx, ny, nx)`` box; GENFIRE (and RESIRE) in that
    box must put the mass inside it. Here the volume is ``(nx, ny, nx + 2 p)`` (``p = round(pad * nx)``
    voxels on each side along x, the tilt direction), the detector stays ``(ny, nx)``
    (:func:`aetcore.steps.reconstruct.resire`: real space, so voxels outside the field of view are seen
    only by the rays that cross them), and the central ``nx`` columns are returned. On the Ta film
    (area 1, 100 plain iterations, ``pad`` 0.37) the traced atoms scored 86 % recall, 92 % precision and
    30 pm against the published model, against 76 %, 70 % and 45 pm from GENFIRE in the box and 72 %,
    88 % and 30 pm from RESIRE in the box (bench/README.md).

    The default is the accelerated descent (``resire(accelerate=True)``): 25 of its iterations reach the
    residual of 100 plain ones (0.144 and 0.146 on the film) and the same atoms (86.0 % recall, 93.6 %
    precision, 29.5 pm against 85.7 %, 93.3 %, 30.0 pm) at a quarter of the cost. The iteration count
    regularises: on the film 40 accelerated iterations gave 92 %, 88 %, 30 pm and 100 gave 92 %, 82 %,
    40 pm (the descent then fits the noise).

    Parameters
    ----------
    tilts : (n_angles, ny, nx) array
    angles : (n_angles,) or (n_angles, 3) array
        Degrees.
    pixel_size : float
        Å.
    pad : float
        Padding on each side along x, as a fraction of ``nx`` (>= 0).
    iterations : int
    accelerate : bool
        The accelerated descent (True) or plain RESIRE (False; about 100 iterations for the same volume).
    threads : int, optional
    progress : bool

    Returns
    -------
    Reconstruction
        ``volume`` ``(nx, ny, nx)`` (the cropped box), ``method`` "resire", ``parameters`` with ``pad``
        (voxels) and ``padded_shape``.
    """
    from dataclasses import replace

    from .reconstruct import resire
    t = as_tilts(tilts)
    pad = float(pad)
    if not (np.isfinite(pad) and pad >= 0):
        raise ValueError(f"pad: expected a non-negative fraction of the image width, got {pad}")
    _, ny, nx = t.shape
    p = int(round(pad * nx))
    rec = resire(t, angles, pixel_size=pixel_size, iterations=iterations, accelerate=accelerate,
                 volume_shape=(nx, ny, nx + 2 * p), threads=threads, progress=progress)
    params = dict(rec.parameters, pad=p, padded_shape=(nx, ny, nx + 2 * p), volume_shape=(nx, ny, nx))
    return replace(rec, volume=np.ascontiguousarray(rec.volume[:, :, p:p + nx]), parameters=params)
