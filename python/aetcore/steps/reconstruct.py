"""Tomographic reconstruction: GENFIRE (Fourier iterative), RESIRE, SIRT and WBP.

Every function takes a tilt series ``(n_angles, ny, nx)`` and angles in degrees (CONVENTIONS.md)
and returns a :class:`Reconstruction` whose ``volume`` is ``(n, n, n)`` float32 with
``n = max(ny, nx)`` unless ``volume_shape`` says otherwise, in the units of the projections per
voxel (lengths along the beam counted in voxels).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np
from scipy import ndimage
from tqdm.auto import tqdm

from .. import _core
from .._util.memory import check_memory
from .._util.validate import as_angles, as_generator, as_tilts, as_volume, at_least, positive, resolve_threads
from ..model.projection import backproject_volume, project_volume

__all__ = ["Reconstruction", "genfire", "resire", "sirt", "wbp", "auto_support", "oversampled_size"]


@dataclass
class Reconstruction:
    """The result of a reconstruction.

    Attributes
    ----------
    volume : (nz, ny, nx) float32
        The reconstructed object, ``vol[z, y, x]``, origin at ``n // 2``.
    method : str
        ``"genfire"``, ``"resire"``, ``"sirt"`` or ``"wbp"``.
    errors : (n_iterations,) float64
        GENFIRE: Fourier R-factor ``sum|F - F_meas| / sum|F_meas|`` on the measured points.
        RESIRE/SIRT: real-space ``sum|P x - b| / sum|b|``. WBP: one entry, the same.
    rfree : (n_iterations,) float64 or None
        GENFIRE: the R-factor on the held-out points.
    pixel_size : float
        Å per voxel.
    support : bool array or None
        The support used (GENFIRE).
    parameters : dict
        Every parameter of the run.
    timings : dict
        Seconds per stage.
    """

    volume: np.ndarray
    method: str
    errors: np.ndarray
    rfree: Optional[np.ndarray] = None
    pixel_size: float = 1.0
    support: Optional[np.ndarray] = None
    parameters: dict = field(default_factory=dict)
    timings: dict = field(default_factory=dict)


def oversampled_size(n: int, oversampling: float) -> int:
    """The side of the oversampled Fourier grid: ``ceil(oversampling * n)`` rounded up to even."""
    N = int(math.ceil(oversampling * n - 1e-9))
    return N + (N % 2)


def _volume_shape(tilts: np.ndarray, volume_shape) -> tuple:
    ny, nx = tilts.shape[1:]
    if volume_shape is None:
        n = max(ny, nx)
        return (n, n, n)
    if not (isinstance(volume_shape, (tuple, list)) and len(volume_shape) == 3):
        raise ValueError(f"volume_shape: expected (nz, ny, nx), got {volume_shape!r}")
    return tuple(at_least(s, 1, "volume_shape", integer=True) for s in volume_shape)


def _otsu(values: np.ndarray, bins: int = 256) -> float:
    hist, edges = np.histogram(values, bins=bins)
    centres = 0.5 * (edges[:-1] + edges[1:])
    w0 = np.cumsum(hist)
    w1 = w0[-1] - w0
    m0 = np.cumsum(hist * centres)
    mu0 = m0 / np.maximum(w0, 1)
    mu1 = (m0[-1] - m0) / np.maximum(w1, 1)
    between = w0 * w1 * (mu0 - mu1) ** 2
    return float(centres[int(np.argmax(between))])


def auto_support(volume: np.ndarray, *, smoothing: float = 2.0, dilation: int = 3) -> np.ndarray:
    """A support mask from a low-resolution reconstruction: Gaussian-smoothed, Otsu-thresholded,
    holes filled and dilated.

    Parameters
    ----------
    volume : (nz, ny, nx) array
    smoothing : float
        Gaussian sigma in voxels.
    dilation : int
        Dilation in voxels (a cube of side ``2 * dilation + 1``).

    Returns
    -------
    bool array of the volume's shape.
    """
    vol = as_volume(volume)
    smoothing = positive(smoothing, "smoothing")
    dilation = at_least(dilation, 0, "dilation", integer=True)
    smooth = ndimage.gaussian_filter(vol, smoothing)
    mask = smooth > _otsu(smooth.ravel())
    mask = ndimage.binary_fill_holes(mask)
    if dilation > 0:
        mask = ndimage.binary_dilation(mask, iterations=int(dilation))
    return mask


def _check_common(tilts, angles, pixel_size):
    t = as_tilts(tilts)
    a = as_angles(angles, t.shape[0])
    ps = positive(pixel_size, "pixel_size")
    if not np.any(t):
        raise ValueError("tilts: every image is zero; nothing to reconstruct")
    return t, a, ps


def genfire(tilts, angles, *, pixel_size: float = 1.0, oversampling: float = 3, iterations: int = 100,
            support=None, positivity: bool = True, interpolation_radius: float = 0.3,
            plane_upsampling: int = 2, support_margin: float = 6.0,
            extension: float = 0.5, momentum: float = 0.9, rfree_fraction: float = 0.05, patience: int = 20, tol: float = 1e-4,
            volume_shape=None, threads=None, seed=None, progress: bool = True,
            callback: Callable[[int, float, float], None] | None = None) -> Reconstruction:
    """GENFIRE reconstruction (Pryor et al., Sci. Rep. 7, 10409, 2017).

    The projections' 2D FFTs, zero-padded by the oversampling ratio, are gridded into a 3D Fourier
    grid; the iteration then alternates between real space (positivity, support) and Fourier space
    (the measured values replace the current ones). Low frequencies are enforced first and the
    enforced resolution grows linearly to all measured points (resolution extension).

    Parameters
    ----------
    tilts : (n_angles, ny, nx) array
        Aligned tilt series (rotation centre at ``n // 2``).
    angles : (n_angles,) or (n_angles, 3) array
        Tilt angles about y, or ZYZ Euler angles, degrees.
    pixel_size : float
        Å per pixel; recorded with the result.
    oversampling : float
        Ratio of the Fourier grid side to the volume side (>= 1; 3 is GENFIRE's default).
    iterations : int
        Maximum number of iterations.
    support : None, "box", or bool array (nz, ny, nx)
        None: automatic (10 iterations of the lowest quarter of the frequencies with the whole box
        as support, smoothed, thresholded and dilated; that low-resolution volume inside the mask
        is also the starting point); "box": the whole volume; an array: the user's mask.
    support_margin : float
        Automatic support: how far (Å) the mask is dilated beyond the thresholded low-resolution
        object (at least 2 voxels). A generous margin: a tighter one barely lowers the volume error
        but pulls the maxima of surface atoms off their places.
    positivity : bool
        Set negative voxels to zero each iteration.
    interpolation_radius : float
        Gridding radius in Fourier grid steps (measured samples within it contribute, weighted by
        inverse squared distance).
    extension : float
        Fraction of the iterations over which the enforced resolution grows from the lowest
        frequencies to all of them (0: every measured point from the start).
    plane_upsampling : int
        The images are zero-padded by this further factor before their FFT, so each slice plane is
        sampled every ``1 / plane_upsampling`` grid steps and more grid points find a measured
        sample within the radius (the 2D FFTs are cheap next to the iteration).
    momentum : float
        In [0, 1): each iterate steps on by ``momentum`` times its last move before the next
        projection (accelerated alternating projections). 0 is GENFIRE's plain error reduction;
        0.9 reaches in 100 iterations a lower error than several hundred plain ones.
    rfree_fraction : float
        Fraction of the measured points held out to compute R-free (0 disables).
    patience, tol : int, float
        Once every point is enforced, stop when the error has not fallen by a relative ``tol``
        for ``patience`` iterations.
    volume_shape : (nz, ny, nx), optional
        Defaults to a cube of side ``max(ny, nx)``.
    threads : int, optional
        OpenMP threads; None: every core the process may use.
    seed : None, int or numpy.random.Generator
        Chooses the R-free points.
    progress : bool
        Show a progress bar.
    callback : callable(iteration, error, rfree), optional
        Called after every iteration.

    Returns
    -------
    Reconstruction
        ``volume`` is the iterate with the lowest error once every measured point was enforced.
    """
    t0 = time.perf_counter()
    t, a, ps = _check_common(tilts, angles, pixel_size)
    oversampling = at_least(oversampling, 1.0, "oversampling")
    iterations = at_least(iterations, 1, "iterations", integer=True)
    radius = positive(interpolation_radius, "interpolation_radius")
    plane_upsampling = at_least(plane_upsampling, 1, "plane_upsampling", integer=True)
    if plane_upsampling > 8:
        raise ValueError(f"plane_upsampling: expected 1..8, got {plane_upsampling}")
    extension = float(at_least(extension, 0.0, "extension"))
    if extension > 1:
        raise ValueError(f"extension: expected a fraction in [0, 1], got {extension}")
    support_margin = float(at_least(support_margin, 0.0, "support_margin"))
    momentum = float(at_least(momentum, 0.0, "momentum"))
    if momentum >= 1:
        raise ValueError(f"momentum: expected a value in [0, 1), got {momentum}")
    rfree_fraction = float(at_least(rfree_fraction, 0.0, "rfree_fraction"))
    if rfree_fraction >= 0.5:
        raise ValueError(f"rfree_fraction: expected a fraction below 0.5, got {rfree_fraction}")
    patience = at_least(patience, 1, "patience", integer=True)
    tol = float(at_least(tol, 0.0, "tol"))
    shape = _volume_shape(t, volume_shape)
    nthreads = resolve_threads(threads)
    rng = as_generator(seed)
    mask = None
    if isinstance(support, str):
        if support != "box":
            raise ValueError(f"support: expected None, 'box' or a bool array, got {support!r}")
    elif support is not None:
        mask = np.asarray(support)
        if mask.shape != shape:
            raise ValueError(f"support: expected shape {shape}, got {mask.shape}")
        if not np.any(mask):
            raise ValueError("support: the mask is empty")
        mask = np.ascontiguousarray(mask != 0, dtype=np.uint8)

    N = oversampled_size(max(shape), oversampling)
    if N < max(t.shape[1:]):
        raise ValueError("oversampling: the grid would be smaller than the images")
    nh = N // 2 + 1
    plan_bytes = N * N * nh * 8 + 3 * int(np.prod(shape)) * 4
    grid_bytes = 24 * t.shape[0] * N * N // 2 + t.nbytes
    check_memory(plan_bytes + grid_bytes, f"GENFIRE on a {N}^3 grid")

    tg = time.perf_counter()
    idx, val, _, kr = _core.grid_projections(t, np.radians(a), N, radius, plane_upsampling, nthreads)
    if idx.size == 0:
        raise ValueError("tilts: no measured Fourier sample fell within interpolation_radius of the grid")
    timings = {"gridding": time.perf_counter() - tg}

    # Hold out the R-free points, then order the rest by |k| so the enforced set is a prefix.
    free = np.zeros(idx.size, bool)
    if rfree_fraction > 0:
        free[rng.choice(idx.size, int(round(rfree_fraction * idx.size)), replace=False)] = True
    order = np.argsort(kr[~free], kind="stable")
    e_idx, e_val, e_kr = idx[~free][order], val[~free][order], kr[~free][order]
    f_idx, f_val = np.ascontiguousarray(idx[free]), np.ascontiguousarray(val[free])
    e_idx, e_val = np.ascontiguousarray(e_idx), np.ascontiguousarray(e_val)
    kmax = float(e_kr[-1]) if e_kr.size else 0.0

    tp = time.perf_counter()
    plan = _core.GenfirePlan(N, *shape, nthreads)
    timings["planning"] = time.perf_counter() - tp
    box = np.zeros(shape, np.float32)

    if support is None:
        # Low-resolution pass with the whole box as support, then threshold it.
        ts = time.perf_counter()
        n_low = int(np.searchsorted(e_kr, 0.25 * kmax, side="right"))
        for _ in range(10):
            plan.iterate(box, None, positivity, e_idx, e_val, n_low, f_idx, f_val)
        mask = np.ascontiguousarray(auto_support(box, dilation=max(2, int(round(support_margin / ps)))), dtype=np.uint8)
        box *= mask  # the low-resolution pass, cut to the support, is the starting point
        timings["support"] = time.perf_counter() - ts

    n_ext = int(round(extension * iterations))
    errors, rfree = [], []
    best, best_err, since_best = None, np.inf, 0
    x_prev = None
    ti = time.perf_counter()
    bar = tqdm(total=iterations, desc="GENFIRE", disable=None if progress else True, leave=False)
    try:
        for it in range(iterations):
            if it < n_ext:
                kcut = kmax * (0.1 + 0.9 * (it + 1) / n_ext)
                n_enf = int(np.searchsorted(e_kr, kcut, side="right"))
            else:
                n_enf = e_idx.size
            err, rf = plan.iterate(box, mask, positivity, e_idx, e_val, n_enf, f_idx, f_val)
            current = box
            if momentum > 0:
                # Accelerated alternating projections: step on along the last move.
                current = box.copy()
                if x_prev is not None:
                    box += momentum * (current - x_prev)
                x_prev = current
            errors.append(err)
            rfree.append(rf if rf >= 0 else np.nan)
            bar.update(1)
            bar.set_postfix(error=f"{err:.4f}")
            if callback is not None:
                callback(it, err, rfree[-1])
            if n_enf == e_idx.size:
                # `err` measures the iterate that went into this step; `box` is one step further,
                # so keep the iterate whose successor had the lowest error.
                if err < best_err * (1 - tol):
                    since_best = 0
                else:
                    since_best += 1
                if err < best_err:
                    best_err, best = err, current.copy()
                if since_best >= patience:
                    break
    finally:
        bar.close()
    timings["iterations"] = time.perf_counter() - ti
    timings["total"] = time.perf_counter() - t0
    volume = best if best is not None else (x_prev if x_prev is not None else box)
    params = dict(pixel_size=ps, oversampling=oversampling, grid_size=N, iterations=iterations,
                  iterations_run=len(errors), support="auto" if support is None else
                  ("box" if isinstance(support, str) else "user"), positivity=positivity,
                  support_margin=support_margin, interpolation_radius=radius, plane_upsampling=plane_upsampling, extension=extension, momentum=momentum, rfree_fraction=rfree_fraction,
                  patience=patience, tol=tol, volume_shape=shape, threads=nthreads,
                  measured_points=int(idx.size))
    return Reconstruction(volume=volume, method="genfire", errors=np.asarray(errors),
                          rfree=np.asarray(rfree) if rfree_fraction > 0 else None, pixel_size=ps,
                          support=None if mask is None else mask.astype(bool), parameters=params,
                          timings=timings)


def _iterative_setup(tilts, angles, pixel_size, iterations, volume_shape, threads):
    """The checks and derived values every iterative real-space method starts with."""
    t, a, ps = _check_common(tilts, angles, pixel_size)
    iterations = at_least(iterations, 1, "iterations", integer=True)
    shape = _volume_shape(t, volume_shape)
    # the iterate, its update, two volume-sized normalisers and a few series-sized work arrays
    check_memory(4.0 * 4 * float(np.prod(shape, dtype=np.float64)) + 3.0 * t.nbytes,
                 f"a real-space reconstruction of a {'x'.join(map(str, shape))} volume")
    return t, a, ps, iterations, shape, resolve_threads(threads)


def _residual(P, b):
    return float(np.abs(P - b).sum(dtype=np.float64) / max(np.abs(b).sum(dtype=np.float64), 1e-30))


def _preconditioned_descent(t, a, shape, x, vol_scale, det_scale, positivity, iterations, threads,
                            progress, desc):
    """``x <- x - vol_scale * P^T (det_scale * (P x - b))`` (optionally clipped at 0), the common
    loop of RESIRE (scalar scales) and SIRT (inverse column and row sums). Returns the residuals."""
    det = t.shape[1:]
    errors = []
    for _ in tqdm(range(iterations), desc=desc, disable=None if progress else True, leave=False):
        r = project_volume(x, a, detector_shape=det, threads=threads)
        errors.append(_residual(r, t))
        r -= t
        r *= det_scale
        x -= vol_scale * backproject_volume(r, a, shape, threads=threads)
        if positivity:
            np.maximum(x, 0, out=x)
    return np.asarray(errors)


def resire(tilts, angles, *, pixel_size: float = 1.0, iterations: int = 100, step: float = 1.0,
           positivity: bool = True, volume_shape=None, initial=None, threads=None,
           progress: bool = True) -> Reconstruction:
    """RESIRE (Pham et al., 2020): gradient descent on ``sum_k |P_k x - b_k|^2`` in real space,
    ``x <- max(0, x - step / L * sum_k P_k^T (P_k x - b_k) / n_angles)``.

    Parameters
    ----------
    tilts, angles, pixel_size, volume_shape, threads, progress
        As in :func:`genfire`.
    iterations : int
    step : float
        Step in units of ``1 / L``, where ``L`` bounds the largest eigenvalue of
        ``sum_k P_k^T P_k / n_angles`` (its largest row sum); below 2 converges.
    positivity : bool
    initial : (nz, ny, nx) array, optional
        Starting volume (zeros by default).
    """
    t0 = time.perf_counter()
    t, a, ps, iterations, shape, nthreads = _iterative_setup(tilts, angles, pixel_size, iterations,
                                                              volume_shape, threads)
    step = positive(step, "step")
    if step >= 2:
        raise ValueError(f"step: expected a value below 2 (in units of 1/L) for convergence, got {step}")
    K = t.shape[0]
    det = t.shape[1:]
    row = backproject_volume(project_volume(np.ones(shape, np.float32), a, detector_shape=det,
                                            threads=nthreads), a, shape, threads=nthreads)
    L = float(row.max()) / K
    x = np.zeros(shape, np.float32) if initial is None else np.array(as_volume(initial, "initial"))
    if x.shape != shape:
        raise ValueError(f"initial: expected shape {shape}, got {x.shape}")
    errors = _preconditioned_descent(t, a, shape, x, np.float32(step / (L * K)), np.float32(1.0), positivity,
                                     iterations, nthreads, progress, "RESIRE")
    params = dict(pixel_size=ps, iterations=iterations, step=step, lipschitz=L, positivity=positivity,
                  volume_shape=shape, threads=nthreads)
    return Reconstruction(volume=x, method="resire", errors=errors, pixel_size=ps,
                          parameters=params, timings={"total": time.perf_counter() - t0})


def sirt(tilts, angles, *, pixel_size: float = 1.0, iterations: int = 100, relaxation: float = 1.0,
         positivity: bool = False, volume_shape=None, threads=None, progress: bool = True) -> Reconstruction:
    """SIRT: ``x <- x + relaxation * C P^T R (b - P x)`` with ``R``, ``C`` the inverse row and
    column sums of the projector.

    Parameters
    ----------
    relaxation : float
        In (0, 2).
    positivity : bool
        Clip negative voxels after each update (off in classical SIRT).
    Other parameters as in :func:`genfire`.
    """
    t0 = time.perf_counter()
    t, a, ps, iterations, shape, nthreads = _iterative_setup(tilts, angles, pixel_size, iterations,
                                                              volume_shape, threads)
    relaxation = positive(relaxation, "relaxation")
    if relaxation >= 2:
        raise ValueError(f"relaxation: expected a value in (0, 2), got {relaxation}")
    det = t.shape[1:]
    rows = project_volume(np.ones(shape, np.float32), a, detector_shape=det, threads=nthreads)
    cols = backproject_volume(np.ones_like(t), a, shape, threads=nthreads)
    R = np.where(rows > 1e-6, 1.0 / np.maximum(rows, 1e-6), 0.0).astype(np.float32)
    C = np.where(cols > 1e-6, relaxation / np.maximum(cols, 1e-6), 0.0).astype(np.float32)
    x = np.zeros(shape, np.float32)
    errors = _preconditioned_descent(t, a, shape, x, C, R, positivity, iterations, nthreads, progress, "SIRT")
    params = dict(pixel_size=ps, iterations=iterations, relaxation=relaxation, positivity=positivity,
                  volume_shape=shape, threads=nthreads)
    return Reconstruction(volume=x, method="sirt", errors=errors, pixel_size=ps,
                          parameters=params, timings={"total": time.perf_counter() - t0})


def _angular_weights(theta_deg: np.ndarray) -> np.ndarray:
    """Angular spacing (radians) each projection stands for, for unevenly spaced tilts."""
    th = np.radians(theta_deg)
    order = np.argsort(th)
    s = th[order]
    if s.size == 1:
        return np.array([np.pi])
    gaps = np.diff(s)
    w = np.empty_like(s)
    w[1:-1] = 0.5 * (gaps[:-1] + gaps[1:])
    w[0], w[-1] = gaps[0], gaps[-1]
    out = np.empty_like(w)
    out[order] = w
    return out


def wbp(tilts, angles, *, pixel_size: float = 1.0, filter: str = "ram-lak", volume_shape=None,
        threads=None) -> Reconstruction:
    """Weighted (filtered) back projection: every image ramp-filtered along x (the detector
    direction perpendicular to the tilt axis), weighted by the angular interval it covers, and back
    projected.

    Parameters
    ----------
    filter : {"ram-lak", "shepp-logan", "hann"}
        Ramp filter and its apodisation.
    Other parameters as in :func:`genfire`.
    """
    t0 = time.perf_counter()
    t, a, ps = _check_common(tilts, angles, pixel_size)
    if filter not in ("ram-lak", "shepp-logan", "hann"):
        raise ValueError(f"filter: expected 'ram-lak', 'shepp-logan' or 'hann', got {filter!r}")
    shape = _volume_shape(t, volume_shape)
    nthreads = resolve_threads(threads)
    nx = t.shape[2]
    npad = 1 << int(math.ceil(math.log2(2 * nx)))
    check_memory(4.0 * float(np.prod(shape, dtype=np.float64)) + 4.0 * t.nbytes * npad / nx,
                 f"WBP into a {'x'.join(map(str, shape))} volume")
    f = np.fft.rfftfreq(npad)  # cycles per pixel
    # Ramp with the exact discrete DC term of the Ram-Lak kernel (avoids a biased mean).
    ramp = 2 * np.abs(f)
    ramp[0] = 0.25 / npad
    if filter == "shepp-logan":
        ramp *= np.sinc(f)
    elif filter == "hann":
        ramp *= 0.5 * (1 + np.cos(2 * np.pi * f))
    spec = np.fft.rfft(t, n=npad, axis=2) * ramp
    filt = np.fft.irfft(spec, n=npad, axis=2)[:, :, :nx].astype(np.float32)
    filt *= _angular_weights(a[:, 1])[:, None, None].astype(np.float32) / 2.0
    vol = backproject_volume(np.ascontiguousarray(filt), a, shape, threads=nthreads)
    err = _residual(project_volume(vol, a, detector_shape=t.shape[1:], threads=nthreads), t)
    params = dict(pixel_size=ps, filter=filter, volume_shape=shape, threads=nthreads)
    return Reconstruction(volume=vol, method="wbp", errors=np.asarray([err]), pixel_size=ps,
                          parameters=params, timings={"total": time.perf_counter() - t0})
