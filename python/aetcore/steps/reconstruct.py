"""Tomographic reconstruction: GENFIRE (Fourier iterative), RESIRE, SIRT and WBP.

Every function takes a tilt series ``(n_angles, ny, nx)`` and angles in degrees (CONVENTIONS.md)
and returns a :class:`Reconstruction` whose ``volume`` is ``(nx, ny, nx)`` float32 (the box follows
the data, CONVENTIONS.md: the image's ``ny x nx`` and as deep as it is wide) unless
``volume_shape`` says otherwise, in the units of the projections per voxel (lengths along the beam
counted in voxels).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from numbers import Integral
from typing import Callable, Optional

import numpy as np
from scipy import ndimage
from tqdm.auto import tqdm

from .. import _core
from .._util.memory import check_memory
from .._util.validate import as_angles, as_tilts, as_volume, at_least, positive, resolve_threads
from ..model.projection import backproject_volume, project_volume

__all__ = ["Reconstruction", "genfire", "resire", "sirt", "wbp", "auto_support", "oversampled_size", "genfire_memory"]


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


def _volume_shape(image_shape, volume_shape) -> tuple:
    """The reconstruction box: `volume_shape` checked, or ``(nx, ny, nx)`` for ``(ny, nx)`` images."""
    ny, nx = image_shape
    if volume_shape is None:
        return (nx, ny, nx)
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


#: The defaults of :func:`genfire`: the C++ options struct ``aet::GenfireOptions`` (the one home of
#: every GENFIRE default, shared with C++ hosts and ``aet config --defaults``).
_D = _core.GenfireOptions()


def oversampled_size(n: int, oversampling: float) -> int:
    """The side of the oversampled Fourier grid along an axis of ``n`` voxels:
    ``ceil(oversampling * n)`` rounded up to an even 7-smooth number (2^a 3^b 5^c 7^d), a size FFTW
    transforms fast (``aet::genfire_grid_size``)."""
    return int(_core.genfire_grid_size(int(n), float(oversampling)))


def genfire_memory(n_images: int, image_shape, *, volume_shape=None, oversampling: float = _D.oversampling,
                   interpolation_radius: float = _D.interpolation_radius,
                   plane_upsampling: int = _D.plane_upsampling, threads=None) -> int:
    """Bytes :func:`genfire` needs for `n_images` images of `image_shape` (the estimate the core
    checks before it allocates: gridding records, FFT plan, iterates and support).

    Parameters
    ----------
    n_images : int
        Images in the series.
    image_shape : (ny, nx)
        Pixels per image.
    volume_shape : (nz, ny, nx), optional
        The reconstruction box; None: ``(nx, ny, nx)``, as :func:`genfire` chooses it.
    oversampling, interpolation_radius, plane_upsampling, threads
        As for :func:`genfire`: the options the memory depends on.

    Returns
    -------
    int
        Bytes.

    Examples
    --------
    >>> from aetcore.steps.reconstruct import genfire_memory
    >>> genfire_memory(68, (288, 288)) > genfire_memory(68, (128, 128))
    True
    """
    k = at_least(n_images, 1, "n_images", integer=True)
    if not (isinstance(image_shape, (tuple, list)) and len(image_shape) == 2):
        raise ValueError(f"image_shape: expected (ny, nx), got {image_shape!r}")
    ny, nx = (at_least(v, 1, "image_shape", integer=True) for v in image_shape)
    shape = _volume_shape((ny, nx), volume_shape)
    opt = _core.GenfireOptions()
    opt.oversampling = at_least(oversampling, -np.inf, "oversampling")
    opt.interpolation_radius = at_least(interpolation_radius, -np.inf, "interpolation_radius")
    opt.plane_upsampling = at_least(plane_upsampling, -np.inf, "plane_upsampling", integer=True)
    opt.threads = resolve_threads(threads)
    opt.validate()
    return int(_core.genfire_memory_bytes(k, ny, nx, *shape, opt))


def _seed64(seed) -> int:
    """The unsigned 64-bit seed of the C++ R-free draw: an int in [0, 2^64) as it is; a Generator
    gives one draw and None fresh entropy, both below 2^63 (recorded in the results, which store
    signed 64-bit integers)."""
    if isinstance(seed, np.random.Generator):
        return int(seed.integers(0, 2**63, dtype=np.int64))
    if seed is None:
        return int(np.random.SeedSequence().entropy % 2**63)
    if isinstance(seed, Integral) and not isinstance(seed, bool):
        if not 0 <= int(seed) < 2**64:
            raise ValueError(f"seed: expected an integer in [0, 2^64), got {seed}")
        return int(seed)
    raise TypeError(f"seed: expected None, an int or a numpy.random.Generator, got {type(seed).__name__}")


def genfire(tilts, angles, *, pixel_size: float = 1.0, oversampling: float = _D.oversampling,
            iterations: int = _D.iterations, support=None, positivity: bool = _D.positivity,
            interpolation_radius: float = _D.interpolation_radius, plane_upsampling: int = _D.plane_upsampling,
            support_margin: float = _D.support_margin, extension: float = _D.extension,
            momentum: float = _D.momentum, rfree_fraction: float = _D.rfree_fraction,
            patience: int = _D.patience, tol: float = _D.tol, volume_shape=None, threads=None, seed=None,
            progress: bool = True, callback: Callable[[int, float, float], None] | None = None) -> Reconstruction:
    """GENFIRE reconstruction (Pryor et al., Sci. Rep. 7, 10409, 2017).

    The projections' 2D FFTs, zero-padded by the oversampling ratio, are gridded into a 3D Fourier
    grid; the iteration then alternates between real space (positivity, support) and Fourier space
    (the measured values replace the current ones). Low frequencies are enforced first and the
    enforced resolution grows linearly to all measured points (resolution extension).

    The whole algorithm runs in the C++ core (``aet::Genfire``, ``<aetcore/genfire.hpp>``), called
    once with the GIL released: a C++ host gets the same volume from the same inputs and seed.
    Defaults are those of ``aet::GenfireOptions`` (``aetcore._core.GenfireOptions()``).

    Parameters
    ----------
    tilts : (n_angles, ny, nx) array
        Aligned tilt series (rotation centre at ``n // 2``).
    angles : (n_angles,) or (n_angles, 3) array
        Tilt angles about y, or ZYZ Euler angles, degrees.
    pixel_size : float
        Å per pixel; recorded with the result.
    oversampling : float
        Ratio of the Fourier grid side to the volume side along every axis (>= 1; default 3,
        GENFIRE's). The grid follows the box: along an axis of ``n`` voxels its side
        ``ceil(oversampling * n)`` is rounded up to an even 7-smooth size (:func:`oversampled_size`),
        so odd image sizes cost no more than their smooth neighbours, and a slab's grid is a slab
        (memory and time follow the box, not the cube of its largest side). The grid is in
        ``parameters["grid_shape"]`` (``"grid_size"``: its largest side).
    iterations : int
        Maximum number of iterations (default 100).
    support : None, "box", or bool array (nz, ny, nx)
        None: automatic (``aet::GenfireOptions::support_iterations`` = 10 iterations of the lowest
        quarter of the frequencies with the whole box as support, smoothed, thresholded and
        dilated; that low-resolution volume inside the mask is also the starting point); "box": the
        whole volume; an array: the user's mask.
    support_margin : float
        Automatic support: how far (Å) the mask is dilated beyond the thresholded low-resolution
        object (at least 2 voxels; default 6). A generous margin: a tighter one barely lowers the
        volume error but pulls the maxima of surface atoms off their places.
    positivity : bool
        Set negative voxels to zero each iteration (default True).
    interpolation_radius : float
        Gridding radius in Fourier grid steps (default 0.3): measured samples within it contribute,
        weighted by inverse squared distance.
    plane_upsampling : int
        The images are zero-padded by this further factor (1..8, default 2) before their FFT, so
        each slice plane is sampled every ``1 / plane_upsampling`` grid steps and more grid points
        find a measured sample within the radius (the 2D FFTs are cheap next to the iteration).
    extension : float
        Fraction of the iterations (default 0.5) over which the enforced resolution grows from the
        lowest frequencies to all of them (0: every measured point from the start).
    momentum : float
        In [0, 1) (default 0.9): each iterate steps on by ``momentum`` times its last move before
        the next projection (accelerated alternating projections). 0 is GENFIRE's plain error
        reduction; 0.9 reaches in 100 iterations a lower error than several hundred plain ones.
    rfree_fraction : float
        Fraction of the measured points held out to compute R-free (default 0.05; 0 disables).
    patience, tol : int, float
        Once every point is enforced, stop when the error has not fallen by a relative ``tol``
        (default 1e-4) for ``patience`` (default 20) iterations.
    volume_shape : (nz, ny, nx), optional
        Defaults to ``(nx, ny, nx)``: the image's size, as deep as it is wide (CONVENTIONS.md).
    threads : int, optional
        OpenMP threads; None: every core the process may use.
    seed : None, int or numpy.random.Generator
        Chooses the R-free points: an int in [0, 2^64) seeds the C++ ``std::mt19937_64`` draw
        (``aet::genfire_rfree_split``) as it is; a Generator gives one 64-bit draw; None fresh
        entropy. The seed used is recorded in ``parameters["seed"]``.
    progress : bool
        Show a progress bar.
    callback : callable(iteration, error, rfree), optional
        Called after every iteration (rfree is NaN without R-free points).

    Returns
    -------
    Reconstruction
        ``volume`` is the iterate with the lowest error once every measured point was enforced.
    """
    t0 = time.perf_counter()
    t, a, ps = _check_common(tilts, angles, pixel_size)
    opt = _core.GenfireOptions()
    # Types here (a message naming the argument); ranges in the core (aet::validate), which names it too.
    for name, value, integer in (("oversampling", oversampling, False), ("iterations", iterations, True),
                                 ("interpolation_radius", interpolation_radius, False),
                                 ("plane_upsampling", plane_upsampling, True), ("extension", extension, False),
                                 ("momentum", momentum, False), ("rfree_fraction", rfree_fraction, False),
                                 ("patience", patience, True), ("tol", tol, False),
                                 ("support_margin", support_margin, False)):
        setattr(opt, name, at_least(value, -np.inf, name, integer=integer))
    opt.positivity = bool(positivity)
    opt.threads = resolve_threads(threads)
    opt.seed = _seed64(seed)
    opt.validate()
    shape = _volume_shape(t.shape[1:], volume_shape)
    mask = None
    if isinstance(support, str):
        if support != "box":
            raise ValueError(f"support: expected None, 'box' or a bool array, got {support!r}")
    elif support is not None:
        mask = np.asarray(support)
        if mask.shape != shape:
            raise ValueError(f"support: expected shape {shape}, got {mask.shape}")
        mask = np.ascontiguousarray(mask != 0, dtype=np.uint8)

    plan = _core.Genfire(t, np.ascontiguousarray(np.radians(a)), *shape, opt)
    timings = {"gridding": plan.seconds_gridding, "planning": plan.seconds_planning}
    initial = None
    if support is None:
        ts = time.perf_counter()
        initial = plan.low_resolution()
        mask = np.ascontiguousarray(auto_support(initial, dilation=max(2, int(round(opt.support_margin / ps)))),
                                    dtype=np.uint8)
        initial *= mask  # the low-resolution pass, cut to the support, is the starting point
        timings["support"] = time.perf_counter() - ts

    bar = tqdm(total=opt.iterations, desc="GENFIRE", disable=None if progress else True, leave=False)

    def report(it, err, rf):
        bar.update(1)
        bar.set_postfix(error=f"{err:.4f}")
        if callback is not None:
            callback(it, err, rf)

    try:
        r = plan.run(mask, initial, report)
    finally:
        bar.close()
    timings["iterations"] = r["seconds_iterations"]
    timings["total"] = time.perf_counter() - t0
    errors = r["errors"]
    params = dict(pixel_size=ps, oversampling=opt.oversampling, grid_size=int(r["grid_size"]),
                  grid_shape=tuple(int(v) for v in r["grid_shape"]),
                  iterations=opt.iterations, iterations_run=int(errors.size),
                  support="auto" if support is None else ("box" if isinstance(support, str) else "user"),
                  positivity=opt.positivity, support_margin=opt.support_margin,
                  interpolation_radius=opt.interpolation_radius, plane_upsampling=opt.plane_upsampling,
                  extension=opt.extension, momentum=opt.momentum, rfree_fraction=opt.rfree_fraction,
                  patience=opt.patience, tol=opt.tol, volume_shape=shape, threads=opt.threads, seed=opt.seed,
                  measured_points=int(r["measured_points"]))
    return Reconstruction(volume=r["volume"], method="genfire", errors=errors,
                          rfree=r["rfree"] if opt.rfree_fraction > 0 else None, pixel_size=ps,
                          support=None if mask is None else mask.astype(bool), parameters=params,
                          timings=timings)


def _iterative_setup(tilts, angles, pixel_size, iterations, volume_shape, threads):
    """The checks and derived values every iterative real-space method starts with."""
    t, a, ps = _check_common(tilts, angles, pixel_size)
    iterations = at_least(iterations, 1, "iterations", integer=True)
    shape = _volume_shape(t.shape[1:], volume_shape)
    # the iterate, its update, two volume-sized normalisers and a few series-sized work arrays
    check_memory(4.0 * 4 * float(np.prod(shape, dtype=np.float64)) + 3.0 * t.nbytes,
                 f"a real-space reconstruction of a {'x'.join(map(str, shape))} volume")
    return t, a, ps, iterations, shape, resolve_threads(threads)


def _residual(P, b):
    return float(np.abs(P - b).sum(dtype=np.float64) / max(np.abs(b).sum(dtype=np.float64), 1e-30))


def _preconditioned_descent(t, a, shape, x, vol_scale, det_scale, positivity, iterations, threads,
                            progress, desc, tol=0.0, patience=5):
    """``x <- x - vol_scale * P^T (det_scale * (P x - b))`` (optionally clipped at 0), the common
    loop of RESIRE (scalar scales) and SIRT (inverse column and row sums). Returns the residuals
    ``sum|P x_k - b| / sum|b|``; stops early when the residual has improved by less than `tol`
    (relative) over the last `patience` iterations (``tol = 0``: never)."""
    det = t.shape[1:]
    errors = []
    for _ in tqdm(range(iterations), desc=desc, disable=None if progress else True, leave=False):
        if tol > 0 and len(errors) > patience and errors[-1 - patience] - errors[-1] < tol * errors[-1 - patience]:
            break
        r = project_volume(x, a, detector_shape=det, threads=threads)
        errors.append(_residual(r, t))
        r -= t
        r *= det_scale
        x -= vol_scale * backproject_volume(r, a, shape, threads=threads)
        if positivity:
            np.maximum(x, 0, out=x)
    return np.asarray(errors)


def _accelerated_descent(t, a, shape, x, step, positivity, iterations, threads, progress, desc,
                         restart=True, tol=0.0, patience=5, callback=None):
    """Projected accelerated gradient (FISTA, Beck & Teboulle 2009) on ``f(x) = |P x - b|^2 / 2``,
    ``x_{k+1} = max(0, y_k - step * P^T (P y_k - b))``, ``y_{k+1} = x_{k+1} + (t_k - 1) / t_{k+1}
    (x_{k+1} - x_k)``, ``t_{k+1} = (1 + sqrt(1 + 4 t_k^2)) / 2``, with the gradient restart of
    O'Donoghue & Candes (2015): when ``<y_k - x_{k+1}, x_{k+1} - x_k> > 0`` (the momentum points
    uphill) ``t`` is reset to 1 and the next step starts from ``x_{k+1}``. One projection and one
    back-projection per iteration, as the plain descent. Updates `x` in place; returns the residuals
    ``sum|P y_k - b| / sum|b|`` (at the point where the gradient was taken) and the iterations run.

    Stops early when the residual has improved by less than `tol` (relative) over the last `patience`
    iterations (``tol = 0``: never)."""
    det = t.shape[1:]
    y = x.copy()
    x_new = np.empty_like(x)
    tk = 1.0
    errors = []
    for k in tqdm(range(iterations), desc=desc, disable=None if progress else True, leave=False):
        r = project_volume(y, a, detector_shape=det, threads=threads)
        errors.append(_residual(r, t))
        r -= t
        g = backproject_volume(r, a, shape, threads=threads)
        np.multiply(g, -step, out=x_new)
        x_new += y
        if positivity:
            np.maximum(x_new, 0, out=x_new)
        # y <- the next extrapolated point; x <- x_new
        y -= x_new                                                    # y_k - x_{k+1}
        d = x_new - x                                                 # x_{k+1} - x_k
        if restart and float(np.dot(y.ravel(), d.ravel())) > 0:
            tk = 1.0
            y[...] = x_new
        else:
            t_next = 0.5 * (1.0 + math.sqrt(1.0 + 4.0 * tk * tk))
            np.multiply(d, np.float32((tk - 1.0) / t_next), out=y)
            y += x_new
            tk = t_next
        x[...] = x_new
        if callback is not None:
            callback(k + 1, x)
        if tol > 0 and len(errors) > patience and errors[-1 - patience] - errors[-1] < tol * errors[-1 - patience]:
            break
    return np.asarray(errors), len(errors)


def resire(tilts, angles, *, pixel_size: float = 1.0, iterations: int = 100, step: float = 1.0,
           positivity: bool = True, accelerate: bool = False, tol: float = 0.0, volume_shape=None,
           initial=None, threads=None, progress: bool = True) -> Reconstruction:
    """RESIRE (Pham et al., 2020): gradient descent on ``sum_k |P_k x - b_k|^2`` in real space,
    ``x <- max(0, x - step / L * sum_k P_k^T (P_k x - b_k) / n_angles)``; with `accelerate`, the same
    gradient step taken from an extrapolated point (projected accelerated gradient, FISTA, with
    adaptive restart; see Notes), which reaches a given residual in far fewer iterations.

    Parameters
    ----------
    tilts, angles, pixel_size, volume_shape, threads, progress
        As in :func:`genfire`.
    iterations : int
        Maximum number of iterations (each one projection and one back-projection).
    step : float
        Step in units of ``1 / L``, where ``L`` bounds the largest eigenvalue of
        ``sum_k P_k^T P_k / n_angles`` (its largest row sum); below 2 converges (plain descent). The
        accelerated descent needs ``step <= 1``.
    positivity : bool
    accelerate : bool
        Projected accelerated gradient instead of the plain descent (False: RESIRE as published).
    tol : float
        Stop when the residual has improved by less than this fraction over the last 5 iterations
        (0: run every iteration).
    initial : (nz, ny, nx) array, optional
        Starting volume (zeros by default).

    Notes
    -----
    Both minimise ``f(x) = sum_k |P_k x - b_k|^2 / 2`` over ``x >= 0`` (if `positivity`) with the
    step ``s = step / (L n_angles)`` (``L n_angles`` bounds the Lipschitz constant of ``grad f``).
    Plain (RESIRE): ``x_{k+1} = max(0, x_k - s grad f(x_k))``; ``f(x_k) - f* = O(1/k)``.
    Accelerated: ``x_{k+1} = max(0, y_k - s grad f(y_k))``, ``y_{k+1} = x_{k+1} + (t_k - 1) / t_{k+1}
    (x_{k+1} - x_k)``, ``t_{k+1} = (1 + sqrt(1 + 4 t_k^2)) / 2``, ``t_0 = 1``; ``f(x_k) - f* =
    O(1/k^2)`` (Beck & Teboulle 2009, FISTA with ``g`` the indicator of ``x >= 0``). The objective is
    not monotone; the gradient restart (``t <- 1`` and ``y <- x_{k+1}`` when ``<y_k - x_{k+1},
    x_{k+1} - x_k> > 0``, O'Donoghue & Candes 2015) removes its oscillations. ``errors`` is then the
    residual at ``y_k``, where the gradient was taken.

    References
    ----------
    M. Pham, Y. Yuan, A. Rana, S. Osher, J. Miao, "Accurate real space iterative reconstruction (RESIRE)
    algorithm for tomography", Sci. Rep. 13, 5624 (2023), arXiv:2004.10445 (2020).
    A. Beck, M. Teboulle, "A fast iterative shrinkage-thresholding algorithm for linear inverse
    problems", SIAM J. Imaging Sci. 2, 183 (2009).
    B. O'Donoghue, E. Candes, "Adaptive restart for accelerated gradient schemes", Found. Comput.
    Math. 15, 715 (2015).
    """
    t0 = time.perf_counter()
    t, a, ps, iterations, shape, nthreads = _iterative_setup(tilts, angles, pixel_size, iterations,
                                                              volume_shape, threads)
    step = positive(step, "step")
    if step >= 2 or (accelerate and step > 1):
        raise ValueError(f"step: expected a value below 2 (in units of 1/L; at most 1 with accelerate) for "
                         f"convergence, got {step}")
    tol = float(tol)
    if not (np.isfinite(tol) and 0 <= tol < 1):
        raise ValueError(f"tol: expected a fraction in [0, 1), got {tol}")
    K = t.shape[0]
    det = t.shape[1:]
    row = backproject_volume(project_volume(np.ones(shape, np.float32), a, detector_shape=det,
                                            threads=nthreads), a, shape, threads=nthreads)
    L = float(row.max()) / K
    x = np.zeros(shape, np.float32) if initial is None else np.array(as_volume(initial, "initial"))
    if x.shape != shape:
        raise ValueError(f"initial: expected shape {shape}, got {x.shape}")
    s = np.float32(step / (L * K))
    if accelerate:
        errors, n_run = _accelerated_descent(t, a, shape, x, s, positivity, iterations, nthreads, progress,
                                             "RESIRE (accelerated)", tol=tol)
    else:
        errors = _preconditioned_descent(t, a, shape, x, s, np.float32(1.0), positivity, iterations, nthreads,
                                         progress, "RESIRE", tol=tol)
        n_run = len(errors)
    params = dict(pixel_size=ps, iterations=iterations, iterations_run=int(n_run), step=step, lipschitz=L,
                  positivity=positivity, accelerate=bool(accelerate), tol=tol, volume_shape=shape,
                  threads=nthreads)
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
    shape = _volume_shape(t.shape[1:], volume_shape)
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
