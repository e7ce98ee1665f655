"""Pre-processing of ADF-STEM frames and tilt series (CONVENTIONS.md layouts and shift sign).

Steps, each usable on its own and composed by :func:`preprocess`:

* :func:`split_pages` — a multi-page stack ``(n_pages, ny, nx)`` (angle-major, page ``k*n_frames + f``)
  to frames ``(n_angles, n_frames, ny, nx)``.
* :func:`register_frames` — sub-pixel registration of the frames of every angle (phase correlation
  refined by matrix-multiply DFT upsampling, Guizar-Sicairos, Thurman & Fienup, Opt. Lett. 33, 156
  (2008)), optional correction of the raster-scan shear caused by drift, and averaging.
* :func:`correct_scan_distortion` / :func:`estimate_affine_from_lattice` — affine or non-linear
  scan-distortion correction, and an affine estimate from an image of a reference lattice.
* :func:`denoise` — scikit-image NLM / TV / wavelet denoising (BM3D if the ``bm3d`` package is installed).
* :func:`subtract_background`, :func:`normalize` — background removal and equal total intensity.

Shifts are ``(dy, dx)`` in pixels in the ``scipy.ndimage.shift`` sign convention: the amount by
which the image content is moved.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from numbers import Integral, Real
from typing import Optional

import numpy as np
import scipy.fft as sfft
from scipy import ndimage

from .._util.parallel import thread_map
from .._util.validate import as_matrix, one_of, at_least, finite_array, positive, real_array, resolve_threads

__all__ = ["split_pages", "register_frames", "FrameRegistration", "correct_scan_distortion",
           "estimate_affine_from_lattice", "denoise", "subtract_background", "normalize",
           "preprocess", "PreprocessResult"]


# ----------------------------------------------------------------------------------------- checks
def _no_constant_images(a: np.ndarray, name: str) -> None:
    """ValueError if any image (last two axes) is constant, e.g. all zero."""
    flat = a.reshape(-1, a.shape[-2] * a.shape[-1])
    const = flat.max(axis=1) == flat.min(axis=1)
    if const.any():
        idx = np.unravel_index(int(np.flatnonzero(const)[0]), a.shape[:-2])
        raise ValueError(f"{name}: expected images with structure, got {int(const.sum())} constant "
                         f"(e.g. all-zero) image(s), the first at index {tuple(int(i) for i in idx)}")


def _images(images, name: str = "images"):
    """(n, ny, nx) float32 and whether the input was a single (ny, nx) image."""
    a = real_array(images, name, (2, 3), "(ny, nx) or (n_images, ny, nx)")
    single = a.ndim == 2
    return (a[None] if single else a), single


# -------------------------------------------------------------------------------------------- pages
def split_pages(pages, n_frames: int) -> np.ndarray:
    """A multi-page stack ``(n_pages, ny, nx)`` in angle-major order (page ``k*n_frames + f`` is
    frame ``f`` of angle ``k``) as frames ``(n_angles, n_frames, ny, nx)`` float32.

    Raises ValueError if `n_frames` does not divide the number of pages.
    """
    p = real_array(pages, "pages", (3,), "(n_pages, ny, nx)")
    n_frames = at_least(n_frames, 1, "n_frames", integer=True)
    if p.shape[0] % n_frames:
        raise ValueError(f"n_frames: expected a divisor of the number of pages ({p.shape[0]}), got {n_frames}")
    return np.ascontiguousarray(p.reshape(p.shape[0] // n_frames, n_frames, *p.shape[1:]))


# ------------------------------------------------------------------------------ phase correlation
def _cross_power(F_ref: np.ndarray, F_mov: np.ndarray, normalization) -> np.ndarray:
    R = F_ref * np.conj(F_mov)
    R[..., 0, 0] = 0                       # the images' means do not take part
    if normalization == "phase":
        mag = np.abs(R)
        R = R / np.maximum(mag, np.finfo(np.float32).tiny * 1e6 + 1e-30 * mag.max())
    return R


def _parabolic(cm, c0, cp):
    """Vertex offset in (-0.5, 0.5) of the parabola through (-1, cm), (0, c0), (1, cp)."""
    den = cm - 2 * c0 + cp
    frac = np.where(den < 0, 0.5 * (cm - cp) / np.where(den < 0, den, -1.0), 0.0)
    return np.clip(frac, -0.5, 0.5)


def _upsampled_peak(R: np.ndarray, nx: int, upsample: int, threads: int) -> np.ndarray:
    """Shifts (B, 2) maximising the cross-correlation ``irfft2(R, (ny, nx))`` of each half
    cross-power spectrum R (B, ny, nx // 2 + 1) of real images.

    Coarse FFT peak, then the matrix-multiply DFT of a 1.5 x 1.5 pixel neighbourhood sampled at
    1/upsample pixel (Guizar-Sicairos et al. 2008) on the half spectrum (the correlation of real
    images is real: ``c = Re(sum w R e^{2 pi i f s})`` with weight 2 on the columns with a mirror),
    in single precision, all frames at once; last, a parabola through the upsampled maximum and its
    neighbours in y and in x places the peak between the upsampled samples (a 1/upsample grid alone
    leaves an RMS quantisation error of about 0.4/upsample pixel per shift)."""
    B, ny, nxh = R.shape
    cc = sfft.irfft2(R, s=(ny, nx), workers=threads)
    idx = np.argmax(cc.reshape(B, -1), axis=1)
    py, px = np.unravel_index(idx, (ny, nx))
    s = np.stack([py, px], axis=1).astype(np.float64)
    s[:, 0] = np.where(s[:, 0] > ny // 2, s[:, 0] - ny, s[:, 0])
    s[:, 1] = np.where(s[:, 1] > nx // 2, s[:, 1] - nx, s[:, 1])
    r = np.arange(B)
    if upsample <= 1:
        c = cc.reshape(B, ny, nx)
        fy = _parabolic(c[r, (py - 1) % ny, px], c[r, py, px], c[r, (py + 1) % ny, px])
        fx = _parabolic(c[r, py, (px - 1) % nx], c[r, py, px], c[r, py, (px + 1) % nx])
        return s + np.stack([fy, fx], axis=1)
    del cc
    s = np.round(s * upsample) / upsample
    size = int(np.ceil(upsample * 1.5))
    off = size // 2
    m = (np.arange(size) - off) / upsample                       # (size,)
    fy = sfft.fftfreq(ny)
    fx = np.arange(nxh) / nx
    wx = np.full(nxh, 2.0)
    wx[0] = 1.0
    if nx % 2 == 0:
        wx[-1] = 1.0
    sy = s[:, 0, None] + m[None, :]                                 # (B, size)
    sx = s[:, 1, None] + m[None, :]
    Ky = np.exp(2j * np.pi * sy[:, :, None] * fy[None, None, :]).astype(np.complex64)          # (B, size, ny)
    Kx = (wx[None, :, None] * np.exp(2j * np.pi * fx[None, :, None] * sx[:, None, :])).astype(np.complex64)
    up = np.matmul(Ky, np.matmul(R.astype(np.complex64, copy=False), Kx)).real   # (B, size, size)
    j = np.argmax(up.reshape(B, -1), axis=1)
    jy, jx = np.unravel_index(j, (size, size))
    c0 = up[r, jy, jx]
    dy = np.where((jy > 0) & (jy < size - 1),
                  _parabolic(up[r, np.maximum(jy - 1, 0), jx], c0, up[r, np.minimum(jy + 1, size - 1), jx]), 0.0)
    dx = np.where((jx > 0) & (jx < size - 1),
                  _parabolic(up[r, jy, np.maximum(jx - 1, 0)], c0, up[r, jy, np.minimum(jx + 1, size - 1)]), 0.0)
    return np.stack([sy[r, jy] + dy / upsample, sx[r, jx] + dx / upsample], axis=1)


def _spectra(images: np.ndarray, threads: int) -> np.ndarray:
    """Half spectra (..., ny, nx // 2 + 1) complex64 of real images (..., ny, nx)."""
    return sfft.rfft2(np.asarray(images, np.float32), workers=threads)


def _fourier_shift(F: np.ndarray, shifts: np.ndarray, nx: int, threads: int) -> np.ndarray:
    """Real images (B, ny, nx) float32 whose half spectra F (B, ny, nx // 2 + 1) are shifted by
    (B, 2) (dy, dx) (periodic edges)."""
    B, ny, nxh = F.shape
    py = np.exp(-2j * np.pi * shifts[:, 0, None] * sfft.fftfreq(ny)[None, :]).astype(np.complex64)
    px = np.exp(-2j * np.pi * shifts[:, 1, None] * (np.arange(nxh) / nx)[None, :]).astype(np.complex64)
    return sfft.irfft2(F * py[:, :, None] * px[:, None, :], s=(ny, nx), workers=threads)


def _register(Fw: np.ndarray, Fr: np.ndarray, nx: int, upsample: int, normalization, threads: int):
    """Shifts (A, N, 2) bringing each frame (half spectra Fw (A, N, ny, nxh)) onto the reference of
    its angle (half spectra Fr (A, ny, nxh))."""
    A, N, ny, nxh = Fw.shape
    R = _cross_power(Fr[:, None], Fw, normalization).reshape(A * N, ny, nxh)
    return _upsampled_peak(R, nx, upsample, threads).reshape(A, N, 2)


def _apply_shifts(Fw: np.ndarray, shifts: np.ndarray, nx: int, threads: int) -> np.ndarray:
    A, N, ny, nxh = Fw.shape
    return _fourier_shift(Fw.reshape(A * N, ny, nxh), shifts.reshape(A * N, 2), nx, threads).reshape(A, N, ny, nx)


def _reference(Fw: np.ndarray, nx: int, reference, upsample: int, normalization, threads: int) -> np.ndarray:
    """Half spectrum of the reference image per angle (A, ny, nxh). "mean": the frames registered
    to frame 0 and averaged, moved to the mean position of the frames (a plain mean of drifting
    frames is blurred, and registering to it locks onto wrong lattice periods)."""
    if reference == "first":
        return Fw[:, 0]
    if reference == "mean":
        s0 = _register(Fw, Fw[:, 0], nx, upsample, normalization, threads)
        A, N, ny, nxh = Fw.shape
        # shifting every frame by s0 and averaging, then moving the average by -mean(s0), is one
        # phase ramp per frame: s0 - mean(s0)
        back = (s0 - s0.mean(axis=1, keepdims=True)).reshape(A * N, 2)
        py = np.exp(-2j * np.pi * back[:, 0, None] * sfft.fftfreq(ny)[None, :]).astype(np.complex64)
        px = np.exp(-2j * np.pi * back[:, 1, None] * (np.arange(nxh) / nx)[None, :]).astype(np.complex64)
        return (Fw.reshape(A * N, ny, nxh) * py[:, :, None] * px[:, None, :]).reshape(A, N, ny, nxh).mean(axis=1)
    return Fw[:, reference]


def _shear_matrix(v: np.ndarray, ny: int) -> np.ndarray:
    """Input-from-output matrix undoing a raster shear: rows displaced by ``v * (y - c) / ny``."""
    ay, ax = v[0] / ny, v[1] / ny
    return np.array([[1.0 / (1.0 - ay), 0.0], [ax / (1.0 - ay), 1.0]])


# ------------------------------------------------------------------------------------ registration
@dataclass
class FrameRegistration:
    """Result of :func:`register_frames`.

    Attributes
    ----------
    images : (n_angles, ny, nx) float32
        The average of the registered (and, with shear correction, un-sheared) frames.
    shifts : (n_angles, n_frames, 2) float64
        ``(dy, dx)`` in pixels applied to each frame to bring it onto the reference
        (``scipy.ndimage.shift`` convention); after shear correction, the shift of the frame's
        centre row ``ny // 2``.
    residual : (n_angles, n_frames) float64
        RMS difference of each registered frame to the average, divided by the RMS of the average.
    drift_velocity : (n_angles, n_frames, 2) float64
        Estimated drift of the image content during each frame, pixels per frame period
        (zeros without shear correction).
    reference : str or int
        The reference used for the first pass.
    shear : bool
        Whether the raster-scan shear was corrected.
    """

    images: np.ndarray
    shifts: np.ndarray
    residual: np.ndarray
    drift_velocity: np.ndarray
    reference: object
    shear: bool


def _as_frames(frames, name: str = "frames"):
    a = real_array(frames, name, (3, 4), "(n_angles, n_frames, ny, nx) or (n_frames, ny, nx)")
    single = a.ndim == 3
    if single:
        a = a[None]
    if a.shape[2] < 4 or a.shape[3] < 4:
        raise ValueError(f"{name}: expected images of at least 4 x 4 pixels, got {a.shape[2]} x {a.shape[3]}")
    _no_constant_images(a, name)
    return a, single


def register_frames(frames, *, reference="first", upsample: int = 20, shear: bool = True,
                    scan_duty: float = 1.0, normalization: Optional[str] = None,
                    threads=None) -> FrameRegistration:
    """Register the frames of every angle to a reference, correct the scan shear, and average.

    Algorithm:

    1. Each frame is registered to the reference (see `reference`) by (phase) correlation: coarse peak of the FFT cross-correlation, then the
       correlation is evaluated on a grid of 1/`upsample` pixel over 1.5 pixels around it by
       matrix-multiply DFTs (Guizar-Sicairos et al. 2008), for all frames at once.
    2. Shear (optional, needs >= 2 frames): with a raster scan, row ``y`` of a frame is acquired at
       ``t0 + (y / ny) * scan_duty * T`` (``T`` = frame period, ``scan_duty`` = fraction of it spent
       scanning; 1 = frames back to back), so with the image content drifting at velocity ``v``
       (pixels per frame period) row ``y`` is displaced by ``v * scan_duty * y / ny`` more than row
       0. ``v`` of each frame is estimated from consecutive frame shifts (``-numpy.gradient`` of
       the shifts over the frames: central differences, one-sided at the ends). Each frame is
       resampled (cubic spline, :func:`correct_scan_distortion`) to undo the per-row displacement
       relative to its centre row ``ny // 2``, and step 1 is repeated on the corrected frames.
    3. The frames are shifted (Fourier shift, periodic edges) and averaged; every frame is then
       registered once more to this average, and shifted and averaged again.

    Parameters
    ----------
    frames : (n_angles, n_frames, ny, nx) or (n_frames, ny, nx) array
        Frames per angle (a multi-page stack can be split with :func:`split_pages`).
    reference : "first", "mean" or int
        Reference of the first pass: frame 0; "mean": the frames registered to frame 0, averaged and
        moved to the mean position of the frames (so the shifts of an angle average to ~0); or that
        frame index. The shifts are relative to this reference.
    upsample : int
        Sub-pixel precision of the shifts is 1/upsample pixel.
    shear : bool
        Correct the linear in-frame drift of a raster scan (step 2).
    scan_duty : float
        Fraction of the frame period during which the frame is scanned, in (0, 1].
    normalization : None or "phase"
        Weighting of the cross-power spectrum before the peak search. None (default): plain
        cross-correlation; "phase": pure phase correlation (unit magnitude at every frequency).
        On simulated ADF-STEM frames at 1e3-1e4 e/Å² the pure phase correlation, which weights the
        noise-dominated high frequencies as much as the signal, was 4-9x less precise (shift RMS
        0.055-0.14 px against 0.012-0.015 px), hence the default.
    threads : int, optional
        FFT workers and resampling threads; None = every core the process may use.

    Returns
    -------
    FrameRegistration
        ``images`` is ``(n_angles, ny, nx)`` (``(1, ny, nx)`` for one angle's frames).
    """
    F, _ = _as_frames(frames, "frames")
    A, N, ny, nx = F.shape
    if isinstance(reference, str):
        one_of(reference, ("first", "mean"), "reference")
    elif isinstance(reference, Integral) and not isinstance(reference, bool):
        if not -N <= reference < N:
            raise ValueError(f"reference: expected a frame index in [0, {N}), got {reference}")
        reference = int(reference) % N
    else:
        raise TypeError(f"reference: expected 'first', 'mean' or a frame index, got {type(reference).__name__}")
    upsample = at_least(upsample, 1, "upsample", integer=True)
    if not isinstance(shear, (bool, np.bool_)):
        raise TypeError(f"shear: expected True or False, got {type(shear).__name__}")
    scan_duty = positive(scan_duty, "scan_duty")
    if scan_duty > 1:
        raise ValueError(f"scan_duty: expected a fraction in (0, 1], got {scan_duty}")
    if normalization is not None:
        one_of(normalization, ("phase",), "normalization")
    threads = resolve_threads(threads)

    work = F
    Fw = _spectra(work, threads)
    shifts = _register(Fw, _reference(Fw, nx, reference, upsample, normalization, threads), nx, upsample,
                       normalization, threads)
    velocity = np.zeros((A, N, 2))
    do_shear = bool(shear) and N >= 2
    if do_shear:
        velocity = -np.gradient(shifts, axis=1)          # content displacement per frame period
        mats = [_shear_matrix(velocity[a, f] * scan_duty, ny) for a in range(A) for f in range(N)]
        flat = work.reshape(A * N, ny, nx)
        out = thread_map(lambda i: _affine(flat[i], mats[i]), list(range(A * N)), threads)
        work = np.stack(out).reshape(A, N, ny, nx)
        Fw = _spectra(work, threads)
        shifts = _register(Fw, _reference(Fw, nx, reference, upsample, normalization, threads), nx, upsample,
                           normalization, threads)
    # average of the registered frames (one phase ramp per frame, summed in Fourier space)
    A_, N_, ny_, nxh = Fw.shape
    back = shifts.reshape(A * N, 2)
    py = np.exp(-2j * np.pi * back[:, 0, None] * sfft.fftfreq(ny)[None, :]).astype(np.complex64)
    px = np.exp(-2j * np.pi * back[:, 1, None] * (np.arange(nxh) / nx)[None, :]).astype(np.complex64)
    Favg = (Fw.reshape(A * N, ny, nxh) * py[:, :, None] * px[:, None, :]).reshape(A, N, ny, nxh).mean(axis=1)
    shifts = _register(Fw, Favg, nx, upsample, normalization, threads)
    back = shifts.reshape(A * N, 2)
    py = np.exp(-2j * np.pi * back[:, 0, None] * sfft.fftfreq(ny)[None, :]).astype(np.complex64)
    px = np.exp(-2j * np.pi * back[:, 1, None] * (np.arange(nxh) / nx)[None, :]).astype(np.complex64)
    Fa = (Fw.reshape(A * N, ny, nxh) * py[:, :, None] * px[:, None, :]).reshape(A, N, ny, nxh)
    Favg = Fa.mean(axis=1)
    avg = sfft.irfft2(Favg, s=(ny, nx), workers=threads)
    # residuals by Parseval on the half spectra (weight 2 on the columns with a mirror)
    wx = np.full(nxh, 2.0)
    wx[0] = 1.0
    if nx % 2 == 0:
        wx[-1] = 1.0
    d2 = (np.abs(Fa - Favg[:, None]) ** 2 @ wx).sum(axis=-1) / (ny * nx) ** 2     # mean square per frame
    rms_avg = np.sqrt(np.mean(avg.astype(np.float64) ** 2, axis=(1, 2)))
    residual = np.sqrt(d2) / rms_avg[:, None]
    return FrameRegistration(images=np.ascontiguousarray(avg, dtype=np.float32), shifts=shifts,
                             residual=residual, drift_velocity=velocity, reference=reference,
                             shear=do_shear)


# ------------------------------------------------------------------------------- scan distortion
def _affine(img: np.ndarray, M: np.ndarray, order: int = 3, mode: str = "nearest") -> np.ndarray:
    """out[Y] = img[c + M (Y - c)], c = (ny // 2, nx // 2), (y, x) order."""
    ny, nx = img.shape
    c = np.array([ny // 2, nx // 2], dtype=np.float64)
    yy, xx = np.meshgrid(np.arange(ny, dtype=np.float64) - c[0], np.arange(nx, dtype=np.float64) - c[1],
                         indexing="ij")
    coords = np.stack([M[0, 0] * yy + M[0, 1] * xx + c[0], M[1, 0] * yy + M[1, 1] * xx + c[1]])
    return ndimage.map_coordinates(img, coords, order=order, mode=mode)


def correct_scan_distortion(images, matrix=None, *, order: int = 3, mode: str = "nearest",
                            threads=None) -> np.ndarray:
    """Resample images to undo a scan distortion (``scipy.ndimage.map_coordinates``).

    Parameters
    ----------
    images : (ny, nx) or (n_images, ny, nx) array
    matrix : None, (2, 2) array or callable
        * None: no correction (a float32 copy is returned).
        * (2, 2) array ``D`` in ``(y, x)`` order: the affine distortion, mapping ideal positions
          (relative to the centre ``c = (ny // 2, nx // 2)``) to observed ones. Output pixel ``Y``
          takes the input value at ``c + D (Y - c)``; so the matrix returned by
          :func:`estimate_affine_from_lattice` can be passed as is.
        * callable ``f(y, x) -> (y_in, x_in)``: receives the output pixel coordinate arrays (float64,
          shape ``(ny, nx)``, absolute pixel indices) and returns the input coordinates to sample.
    order : int
        Spline order (0-5).
    mode : str
        Edge mode of ``map_coordinates`` (default "nearest").
    threads : int, optional

    Returns
    -------
    float32 array of the input's shape.
    """
    a, single = _images(images, "images")
    order = at_least(order, 0, "order", integer=True)
    if order > 5:
        raise ValueError(f"order: expected a spline order in [0, 5], got {order}")
    mode = one_of(mode, ("reflect", "grid-mirror", "constant", "grid-constant", "nearest", "mirror",
                          "grid-wrap", "wrap"), "mode")
    threads = resolve_threads(threads)
    n, ny, nx = a.shape
    if matrix is None:
        out = a.copy()
    elif callable(matrix):
        yy, xx = np.meshgrid(np.arange(ny, dtype=np.float64), np.arange(nx, dtype=np.float64), indexing="ij")
        res = matrix(yy, xx)
        try:
            yi, xi = (np.asarray(r, dtype=np.float64) for r in res)
        except (TypeError, ValueError):
            raise TypeError("matrix: the callable must return a pair (y_in, x_in) of coordinate arrays") from None
        if yi.shape != (ny, nx) or xi.shape != (ny, nx):
            raise ValueError(f"matrix: the callable must return two ({ny}, {nx}) arrays, got shapes "
                             f"{yi.shape} and {xi.shape}")
        finite_array(yi, "matrix")
        finite_array(xi, "matrix")
        coords = np.stack([yi, xi])
        out = np.stack(thread_map(lambda i: ndimage.map_coordinates(a[i].astype(np.float64), coords, order=order,
                                                                    mode=mode), range(n), threads))
    else:
        M = as_matrix(matrix, (2, 2), "matrix", "None, a (2, 2) array or a callable",
                      "affine matrix in (y, x) order")
        if abs(np.linalg.det(M)) < 1e-6:
            raise ValueError("matrix: expected an invertible (2, 2) matrix, got a singular one")
        out = np.stack(thread_map(lambda i: _affine(a[i].astype(np.float64), M, order, mode), range(n), threads))
    out = np.ascontiguousarray(out, dtype=np.float32)
    return out[0] if single else out


def _lattice_reciprocal(spacing: float, lattice: str, angle_deg: float) -> np.ndarray:
    """Ideal reciprocal basis (2, 2), rows b1, b2 in (y, x), cycles per pixel."""
    t = np.deg2rad(angle_deg)
    second = np.deg2rad(90.0 if lattice == "square" else 60.0)
    a1 = spacing * np.array([np.sin(t), np.cos(t)])
    a2 = spacing * np.array([np.sin(t + second), np.cos(t + second)])
    Areal = np.stack([a1, a2], axis=1)          # columns a1, a2
    return np.linalg.inv(Areal)                  # rows b_i with b_i . a_j = delta_ij


def _dft_at(img: np.ndarray, fy: np.ndarray, fx: np.ndarray) -> np.ndarray:
    """|DFT| of img (centred coordinates) on the grid fy x fx (cycles/pixel), by matrix products."""
    ny, nx = img.shape
    y = np.arange(ny) - ny // 2
    x = np.arange(nx) - nx // 2
    Ky = np.exp(-2j * np.pi * fy[:, None] * y[None, :])
    Kx = np.exp(-2j * np.pi * x[:, None] * fx[None, :])
    return np.abs(Ky @ img @ Kx)


def _peak_frequency(img: np.ndarray, g0: np.ndarray, radius: float, upsample: int) -> tuple:
    """Sub-pixel location (cycles/pixel) and magnitude of the strongest Fourier peak within
    `radius` (cycles/pixel) of g0: a coarse grid then two zooms."""
    ny, nx = img.shape
    step = 1.0 / max(ny, nx)
    centre = np.asarray(g0, dtype=np.float64)
    half = radius
    n = int(np.ceil(2 * half / step)) + 1
    for _ in range(3):
        fy = centre[0] + np.linspace(-half, half, n)
        fx = centre[1] + np.linspace(-half, half, n)
        mag = _dft_at(img, fy, fx)
        j, i = np.unravel_index(np.argmax(mag), mag.shape)
        centre = np.array([fy[j], fx[i]])
        peak = mag[j, i]
        half = 2.0 * (2 * half / (n - 1))
        n = 2 * upsample + 1
    return centre, peak


def estimate_affine_from_lattice(image, spacing_px: float, *, lattice: str = "square",
                                 angle: Optional[float] = 0.0, orders: int = 2,
                                 upsample: int = 20) -> np.ndarray:
    """Estimate the 2x2 affine scan distortion from an image of a reference lattice.

    Lattice assumption: the specimen is a perfect 2D lattice with one atom (or column) per cell,
    with real-space basis vectors of length `spacing_px` pixels, 90° apart (``"square"``) or 60°
    apart (``"hexagonal"``), the first at `angle` degrees from the +x axis towards +y. The image is
    this lattice distorted by ``D``: a feature at ideal position ``r`` (relative to the image centre)
    appears at ``D r``. Then every reciprocal-lattice peak ``g`` moves to ``D^-T g``.

    Method: the image is Hann-windowed; for every reciprocal-lattice vector ``h b1 + k b2`` with
    ``max(|h|, |k|) <= orders`` in one half plane (Friedel mates are redundant) and below Nyquist,
    the Fourier peak is located near its ideal position to about ``1/(upsample * n)`` cycles per
    pixel by DFT zooms (matrix-multiply DFTs), weak peaks are dropped, and ``D^-1`` is fitted by least squares to
    ``g_observed = D^-T g_ideal``.

    Parameters
    ----------
    image : (ny, nx) array
    spacing_px : float
        Ideal lattice spacing, pixels.
    lattice : "square" or "hexagonal"
    angle : float or None
        Ideal orientation of the first lattice vector, degrees. None: unknown; the orientation of
        the strongest first-order peak is used and the rotation is removed from the result (the
        symmetric factor of the polar decomposition is returned), since a rotation of the lattice
        and a rotation by the scan cannot be told apart.
    orders : int
        Highest Miller index used.
    upsample : int
        Zoom factor of the peak search.

    Returns
    -------
    (2, 2) float64 ``D`` in (y, x) order; pass it to :func:`correct_scan_distortion` to correct.
    """
    img = real_array(image, "image", (2,), "(ny, nx)").astype(np.float64)
    _no_constant_images(img[None], "image")
    spacing = positive(spacing_px, "spacing_px")
    lattice = one_of(lattice, ("square", "hexagonal"), "lattice")
    orders = at_least(orders, 1, "orders", integer=True)
    upsample = at_least(upsample, 2, "upsample", integer=True)
    ny, nx = img.shape
    if spacing < 2.0 or spacing > min(ny, nx) / 4:
        raise ValueError(f"spacing_px: expected a spacing between 2 and {min(ny, nx) / 4:g} pixels "
                         f"(at least 4 cells across the image), got {spacing}")
    win = np.outer(np.hanning(ny), np.hanning(nx))
    img = (img - img.mean()) * win
    g_len = 1.0 / spacing
    if angle is None:
        # orientation: strongest peak on the first-order ring of the (2x zero-padded) spectrum,
        # over a half plane of directions; for a hexagonal lattice b1 lies 30° below a1
        P = np.abs(sfft.fftshift(sfft.fft2(img, s=(2 * ny, 2 * nx))))
        th = np.linspace(0.0, np.pi, 720, endpoint=False)
        ring = ndimage.map_coordinates(P, [ny + 2 * ny * g_len * np.sin(th), nx + 2 * nx * g_len * np.cos(th)],
                                       order=1)
        ang = np.rad2deg(th[int(np.argmax(ring))]) + (30.0 if lattice == "hexagonal" else 0.0)
    else:
        if isinstance(angle, bool) or not isinstance(angle, Real) or not np.isfinite(angle):
            raise TypeError(f"angle: expected a finite number of degrees or None, got {angle!r}")
        ang = float(angle)
    B = _lattice_reciprocal(spacing, lattice, ang)
    ideal, observed, peaks = [], [], []
    for h in range(-orders, orders + 1):
        for k in range(-orders, orders + 1):
            if (h, k) == (0, 0) or h < 0 or (h == 0 and k < 0):
                continue
            g = h * B[0] + k * B[1]
            if np.abs(g).max() > 0.45:
                continue
            gobs, peak = _peak_frequency(img, g, 0.25 * g_len, upsample)
            ideal.append(g)
            observed.append(gobs)
            peaks.append(peak)
    if len(ideal) < 2:
        raise ValueError(f"spacing_px: too few lattice peaks below Nyquist for spacing {spacing} pixels")
    ideal, observed, peaks = np.array(ideal), np.array(observed), np.array(peaks)
    keep = peaks >= 0.05 * peaks.max()
    if keep.sum() < 2 or np.linalg.matrix_rank(ideal[keep]) < 2:
        raise ValueError("image: could not find two independent lattice peaks; check spacing_px and lattice")
    X, *_ = np.linalg.lstsq(ideal[keep], observed[keep], rcond=None)   # observed ≈ ideal @ X, X = D^-1
    D = np.linalg.inv(X)
    if angle is None:
        U, s, Vt = np.linalg.svd(D)
        D = Vt.T @ np.diag(s) @ Vt                   # symmetric factor: D = R P, keep P
    return D


# ------------------------------------------------------------------------------------------ denoise
def _noise_sigma(img: np.ndarray) -> float:
    """Gaussian noise standard deviation from the median absolute diagonal Haar detail
    (the wavelet-MAD estimate of ``skimage.restoration.estimate_sigma``, without PyWavelets)."""
    ny, nx = (img.shape[0] // 2) * 2, (img.shape[1] // 2) * 2
    a = img[:ny, :nx]
    hh = 0.5 * (a[0::2, 0::2] - a[0::2, 1::2] - a[1::2, 0::2] + a[1::2, 1::2])
    s = float(np.median(np.abs(hh)) / 0.6744897501960817)
    if not s > 1e-12 * (np.abs(img).max() + 1e-30):
        # the MAD is zero when most pixels are exactly equal (e.g. a noiseless zero background):
        # use the details of the pixels that vary
        v = hh[hh != 0]
        s = float(np.median(np.abs(v)) / 0.6744897501960817) if v.size else 0.0
    return s


def denoise(images, method: str = "nlm", strength: float = 1.0, *, sigma=None, threads=None,
            **kwargs) -> np.ndarray:
    """Denoise each image (scikit-image; BM3D from the optional ``bm3d`` package).

    The noise standard deviation ``sigma`` of each image is estimated
    (median absolute diagonal Haar wavelet detail / 0.6745, as
    ``skimage.restoration.estimate_sigma``) unless given, and `strength` scales it:

    * ``"nlm"``: ``denoise_nl_means(h=0.8 * strength * sigma, sigma=sigma, patch_size=5,
      patch_distance=6, fast_mode=True)``
    * ``"tv"``: ``denoise_tv_chambolle(weight=strength * sigma)``
    * ``"wavelet"``: ``denoise_wavelet(sigma=strength * sigma, method="BayesShrink", mode="soft")``;
      needs PyWavelets (``pip install PyWavelets``)
    * ``"bm3d"``: ``bm3d.bm3d(sigma_psd=strength * sigma)``; needs ``pip install bm3d``, which is
      optional and not installed with aetcore: the ``bm3d`` package (Tampere University,
      https://pypi.org/project/bm3d/) is licensed for non-commercial use only (see its LICENSE).

    Extra keyword arguments go to the scikit-image / bm3d function.

    Parameters
    ----------
    images : (ny, nx) or (n_images, ny, nx) array
    method : "nlm", "tv", "wavelet" or "bm3d"
    strength : float
        Multiple of the noise level (1 = default amount of smoothing).
    sigma : None, float or (n_images,) array
        Noise standard deviation per image, image units (None = estimate).
    threads : int, optional

    Returns
    -------
    float32 array of the input's shape.
    """
    a, single = _images(images, "images")
    method = one_of(method, ("nlm", "tv", "wavelet", "bm3d"), "method")
    strength = positive(strength, "strength")
    threads = resolve_threads(threads)
    n = a.shape[0]
    if sigma is None:
        sig = None
    else:
        try:
            sig = np.broadcast_to(np.asarray(sigma, dtype=np.float64), (n,)).copy()
        except (TypeError, ValueError):
            raise ValueError(f"sigma: expected None, a number or {n} numbers, got {sigma!r}") from None
        finite_array(sig, "sigma")
        if (sig < 0).any():
            raise ValueError("sigma: expected noise levels >= 0")
    if method == "wavelet":
        try:
            import pywt  # noqa: F401
        except ImportError:
            raise ImportError("denoise(method='wavelet') needs PyWavelets (scikit-image's optional "
                              "dependency): pip install PyWavelets") from None
    if method == "bm3d":
        try:
            import bm3d as _bm3d
        except ImportError:
            raise ImportError("denoise(method='bm3d') needs the optional 'bm3d' package, which aetcore does not "
                              "install: pip install bm3d (its licence allows non-commercial use only; see "
                              "https://pypi.org/project/bm3d/). The methods 'nlm', 'tv' and 'wavelet' need "
                              "nothing extra.") from None
    from skimage.restoration import denoise_nl_means, denoise_tv_chambolle, denoise_wavelet

    def one(i):
        img = a[i].astype(np.float64)
        s = _noise_sigma(img) if sig is None else float(sig[i])
        if s <= 0:
            return img
        if method == "nlm":
            kw = dict(h=0.8 * strength * s, sigma=s, patch_size=5, patch_distance=6, fast_mode=True)
            kw.update(kwargs)
            return denoise_nl_means(img, **kw)
        if method == "tv":
            kw = dict(weight=strength * s)
            kw.update(kwargs)
            return denoise_tv_chambolle(img, **kw)
        if method == "wavelet":
            kw = dict(sigma=strength * s, method="BayesShrink", mode="soft", rescale_sigma=True)
            kw.update(kwargs)
            return denoise_wavelet(img, **kw)
        return np.asarray(_bm3d.bm3d(img, sigma_psd=strength * s, **kwargs), dtype=np.float64)

    out = np.ascontiguousarray(np.stack(thread_map(one, list(range(n)), threads)), dtype=np.float32)
    return out[0] if single else out


# --------------------------------------------------------------------------------------- background
def _auto_background_mask(img: np.ndarray) -> np.ndarray:
    from skimage.filters import threshold_otsu
    ny, nx = img.shape
    s = max(2.0, min(ny, nx) / 32.0)
    sm = ndimage.gaussian_filter(img, s, mode="nearest")
    particle = sm > threshold_otsu(sm)
    particle = ndimage.binary_dilation(particle, iterations=int(np.ceil(2 * s)))
    bg = ~particle
    if bg.sum() < 0.05 * img.size:
        b = max(1, int(round(0.05 * min(ny, nx))))
        bg = np.zeros_like(bg)
        bg[:b] = bg[-b:] = True
        bg[:, :b] = bg[:, -b:] = True
    return bg


def subtract_background(images, *, model: str = "plane", mask=None):
    """Estimate a constant or planar background outside the particle and subtract it.

    Parameters
    ----------
    images : (ny, nx) or (n_images, ny, nx) array
    model : "constant" or "plane"
        ``"constant"``: the mean of the background pixels; ``"plane"``: least-squares
        ``b0 + gy * (y - ny//2) + gx * (x - nx//2)`` over the background pixels.
    mask : None or bool array (ny, nx) or (n_images, ny, nx)
        True marks the background pixels (outside the particle) used for the fit. None: automatic,
        per image: the image is smoothed (Gaussian, sigma = max(2, min(ny, nx)/32) pixels), the
        pixels above its Otsu threshold are the particle, grown by 2 sigma; the rest is background.
        If that leaves under 5 % of the pixels, the image border (5 % of the size) is used.

    Returns
    -------
    corrected : float32 array of the input's shape
    coefficients : (n_images, 3) float64 ``(b0, gy, gx)`` (``(3,)`` for one image); b0 is the
        background at the centre pixel, gy and gx per pixel (zero for "constant").
    """
    a, single = _images(images, "images")
    model = one_of(model, ("constant", "plane"), "model")
    n, ny, nx = a.shape
    if mask is not None:
        m = np.asarray(mask)
        if m.dtype != bool:
            raise TypeError(f"mask: expected a boolean array (True = background), got dtype {m.dtype}")
        if m.shape == (ny, nx):
            m = np.broadcast_to(m, (n, ny, nx))
        elif m.shape != (n, ny, nx):
            raise ValueError(f"mask: expected shape ({ny}, {nx}) or ({n}, {ny}, {nx}), got {m.shape}")
        need = 1 if model == "constant" else 3
        if (m.reshape(n, -1).sum(axis=1) < need).any():
            raise ValueError(f"mask: expected at least {need} background pixels (True) per image")
    yy, xx = np.meshgrid(np.arange(ny) - ny // 2, np.arange(nx) - nx // 2, indexing="ij")
    out = np.empty_like(a)
    coef = np.zeros((n, 3))
    for i in range(n):
        img = a[i].astype(np.float64)
        bg = _auto_background_mask(img) if mask is None else m[i]
        v = img[bg]
        if model == "constant":
            coef[i, 0] = v.mean()
        else:
            G = np.stack([np.ones(v.size), yy[bg], xx[bg]], axis=1).astype(np.float64)
            coef[i], *_ = np.linalg.lstsq(G, v, rcond=None)
        out[i] = img - (coef[i, 0] + coef[i, 1] * yy + coef[i, 2] * xx)
    return (out[0], coef[0]) if single else (out, coef)


def normalize(images):
    """Scale every image so all carry the same total intensity (the mean of the totals).

    Returns
    -------
    scaled : float32 array of the input's shape
    scales : (n_images,) float64 factors applied (a float for one image)
    """
    a, single = _images(images, "images")
    totals = a.astype(np.float64).sum(axis=(1, 2))
    if (totals <= 0).any():
        i = int(np.flatnonzero(totals <= 0)[0])
        raise ValueError(f"images: expected a positive total intensity in every image, image {i} has "
                         f"{totals[i]:g} (subtract the background first only if the particle stays positive)")
    scales = totals.mean() / totals
    out = np.ascontiguousarray(a * scales[:, None, None].astype(np.float64), dtype=np.float32)
    return (out[0], float(scales[0])) if single else (out, scales)


_normalize = normalize
_denoise = denoise


# ------------------------------------------------------------------------------------------ pipeline
@dataclass
class PreprocessResult:
    """Result of :func:`preprocess`.

    Attributes
    ----------
    tilts : (n_angles, ny, nx) float32
        The pre-processed tilt series.
    registration : FrameRegistration or None
        Frame registration (shifts, residuals, drift), if frames were registered.
    background : (n_angles, 3) float64 or None
        Subtracted background ``(b0, gy, gx)`` per image.
    scales : (n_angles,) float64 or None
        Normalisation factors applied (after background subtraction).
    steps : list of str
        Every step applied, in order, with its parameters.
    """

    tilts: np.ndarray
    registration: Optional[FrameRegistration] = None
    background: Optional[np.ndarray] = None
    scales: Optional[np.ndarray] = None
    steps: list = field(default_factory=list)


def preprocess(frames_or_tilts, *, frames: bool = True, register: bool = True, shear: bool = True,
               reference="first", upsample: int = 20, distortion=None, denoise=None,
               denoise_strength: float = 1.0, background: Optional[str] = "plane",
               normalize: bool = True, threads=None) -> PreprocessResult:
    """Frames (or a tilt series) to a pre-processed tilt series, recording every step.

    Order: frame registration and averaging (:func:`register_frames`, or a plain mean of the frames
    with ``register=False``), scan-distortion correction (:func:`correct_scan_distortion`),
    denoising (:func:`denoise`), background subtraction (:func:`subtract_background`),
    normalisation (:func:`normalize`).

    Parameters
    ----------
    frames_or_tilts : array
        ``(n_angles, n_frames, ny, nx)`` with ``frames=True`` (split a multi-page stack with
        :func:`split_pages`), or a tilt series ``(n_angles, ny, nx)`` with ``frames=False``.
    frames : bool
        Whether the input holds several frames per angle.
    register, shear, reference, upsample
        Frame registration options (:func:`register_frames`).
    distortion : None, (2, 2) array or callable
        Scan-distortion correction (:func:`correct_scan_distortion`).
    denoise : None or "nlm", "tv", "wavelet", "bm3d"
    denoise_strength : float
    background : None, "constant" or "plane"
    normalize : bool
    threads : int, optional

    Returns
    -------
    PreprocessResult
    """
    for name, v in (("frames", frames), ("register", register), ("shear", shear), ("normalize", normalize)):
        if not isinstance(v, (bool, np.bool_)):
            raise TypeError(f"{name}: expected True or False, got {type(v).__name__}")
    if denoise is not None:
        one_of(denoise, ("nlm", "tv", "wavelet", "bm3d"), "denoise")
    denoise_strength = positive(denoise_strength, "denoise_strength")  # checked even when unused
    if background is not None:
        one_of(background, ("constant", "plane"), "background")
    threads = resolve_threads(threads)
    steps = []
    reg = None
    if frames:
        a = real_array(frames_or_tilts, "frames_or_tilts", (4,),
                        "(n_angles, n_frames, ny, nx) with frames=True (use split_pages for a page stack, "
                        "frames=False for a tilt series)")
        _no_constant_images(a, "frames_or_tilts")
        if register:
            reg = register_frames(a, reference=reference, upsample=upsample, shear=shear, threads=threads)
            tilts = reg.images
            steps.append(f"register_frames(reference={reference!r}, upsample={upsample}, shear={reg.shear}): "
                         f"median residual {float(np.median(reg.residual)):.4g}")
        else:
            tilts = np.ascontiguousarray(a.mean(axis=1, dtype=np.float64), dtype=np.float32)
            steps.append(f"mean of {a.shape[1]} frames (no registration)")
    else:
        tilts = real_array(frames_or_tilts, "frames_or_tilts", (3,),
                            "(n_angles, ny, nx) with frames=False")
        _no_constant_images(tilts, "frames_or_tilts")
    if distortion is not None:
        tilts = correct_scan_distortion(tilts, distortion, threads=threads)
        steps.append("correct_scan_distortion(" + ("callable" if callable(distortion) else
                                                  f"matrix={np.asarray(distortion).tolist()}") + ")")
    if denoise is not None:
        tilts = _denoise(tilts, denoise, denoise_strength, threads=threads)
        steps.append(f"denoise(method={denoise!r}, strength={denoise_strength})")
    coef = None
    if background is not None:
        tilts, coef = subtract_background(tilts, model=background)
        steps.append(f"subtract_background(model={background!r}, mask=automatic)")
    scales = None
    if normalize:
        tilts, scales = _normalize(tilts)
        steps.append("normalize: equal total intensity (mean of the totals)")
    return PreprocessResult(tilts=np.ascontiguousarray(tilts, dtype=np.float32), registration=reg,
                            background=coef, scales=scales, steps=steps)
