"""Quality measures of reconstructions: relative error against ground truth, Fourier shell
correlation (FSC), resolution from an FSC curve and half-set FSC of a tilt series.

Spatial frequencies are in 1/Å, resolutions in Å (CONVENTIONS.md units).
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import scipy.fft

from .._util.validate import as_angles, as_tilts, as_volume, at_least, finite_array, positive, resolve_threads

__all__ = ["relative_error", "fsc", "resolution_from_fsc", "half_set_fsc"]


def _pair(vol1, vol2, name1: str, name2: str):
    a = as_volume(vol1, name1)
    b = as_volume(vol2, name2)
    if a.shape != b.shape:
        raise ValueError(f"{name2}: expected the shape of {name1} {a.shape}, got {b.shape}")
    return a, b


def relative_error(volume, truth) -> float:
    """Relative error after the best scale: ``||a x - y|| / ||y||`` with ``a = <x, y> / <x, x>``.

    Invariant to any nonzero scale of `volume` (reconstructions are in arbitrary units); 0 when
    `volume` is a multiple of `truth`, 1 when it is orthogonal to it (or zero).

    Parameters
    ----------
    volume : (nz, ny, nx) array
        The reconstruction ``x``.
    truth : (nz, ny, nx) array
        The ground truth ``y`` (not all zero).

    Returns
    -------
    float
        Computed with float64 sums.
    """
    x, y = _pair(volume, truth, "volume", "truth")
    x = x.astype(np.float64).ravel()
    y = y.astype(np.float64).ravel()
    yy = float(y @ y)
    if yy == 0:
        raise ValueError("truth: expected a volume that is not all zero")
    xx = float(x @ x)
    xy = float(x @ y)
    # ||a x - y||^2 = yy - xy^2 / xx at the optimum; computed directly to avoid cancellation
    a = xy / xx if xx > 0 else 0.0
    r = a * x - y
    return float(np.sqrt(r @ r / yy))


def _shell_index(shape, pixel_size: float, n_shells: int) -> tuple[np.ndarray, np.ndarray, float]:
    """Shell of every rfftn coefficient, the weight of each coefficient (2 for a coefficient that
    stands for itself and its conjugate twin) and the shell spacing in 1/Å."""
    nyq = 1.0 / (2.0 * pixel_size)
    dk = nyq / (n_shells - 1)
    nz, ny, nx = shape
    kz = np.fft.fftfreq(nz, d=pixel_size)[:, None, None]
    ky = np.fft.fftfreq(ny, d=pixel_size)[None, :, None]
    kx = np.fft.rfftfreq(nx, d=pixel_size)[None, None, :]
    k = np.sqrt(kz ** 2 + ky ** 2 + kx ** 2)
    idx = np.rint(k / dk).astype(np.int64)
    w = np.full(kx.shape[-1], 2.0)
    w[0] = 1.0
    if nx % 2 == 0:
        w[-1] = 1.0
    return idx.ravel(), np.broadcast_to(w, k.shape).ravel(), dk


def fsc(vol1, vol2, *, pixel_size: float = 1.0, n_shells: int | None = None, threads=None):
    """Fourier shell correlation of two volumes.

    ``FSC(k) = Re sum F1 F2* / sqrt(sum |F1|^2 sum |F2|^2)`` over the Fourier coefficients whose
    spatial frequency rounds to shell ``k``. Shells are centred at ``i * dk`` for
    ``i = 0 .. n_shells - 1`` with ``dk = 1 / (2 pixel_size (n_shells - 1))``, so the first shell
    is the DC term and the last sits at Nyquist; corner frequencies beyond Nyquist are left out.
    A shell with no power in either volume has correlation 0.

    Parameters
    ----------
    vol1, vol2 : (nz, ny, nx) arrays
        Same shape, finite.
    pixel_size : float
        Å per voxel.
    n_shells : int, optional
        Number of shells (>= 2); default ``min(shape) // 2 + 1``, i.e. ``dk = 1 / (n pixel_size)``
        for a cube of even side n (one Fourier sample per shell).
    threads : int, optional
        FFT workers; None uses every core the process may use.

    Returns
    -------
    freq : (n_shells,) float64
        Spatial frequency of each shell, 1/Å.
    corr : (n_shells,) float64
        Correlation in [-1, 1].
    """
    a, b = _pair(vol1, vol2, "vol1", "vol2")
    ps = positive(pixel_size, "pixel_size")
    if n_shells is None:
        n_shells = max(2, min(a.shape) // 2 + 1)
    n_shells = at_least(n_shells, 2, "n_shells", integer=True)
    workers = resolve_threads(threads)
    F1 = scipy.fft.rfftn(a.astype(np.float64), workers=workers).ravel()
    F2 = scipy.fft.rfftn(b.astype(np.float64), workers=workers).ravel()
    idx, w, dk = _shell_index(a.shape, ps, n_shells)
    keep = idx < n_shells
    idx, w, F1, F2 = idx[keep], w[keep], F1[keep], F2[keep]
    num = np.bincount(idx, weights=w * (F1.real * F2.real + F1.imag * F2.imag), minlength=n_shells)
    p1 = np.bincount(idx, weights=w * (F1.real ** 2 + F1.imag ** 2), minlength=n_shells)
    p2 = np.bincount(idx, weights=w * (F2.real ** 2 + F2.imag ** 2), minlength=n_shells)
    den = np.sqrt(p1 * p2)
    corr = np.zeros(n_shells)
    ok = den > 0
    corr[ok] = np.clip(num[ok] / den[ok], -1.0, 1.0)
    return np.arange(n_shells) * dk, corr


def _curve(x, name: str) -> np.ndarray:
    if isinstance(x, (list, tuple)):
        x = np.asarray(x)
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{name}: expected a 1-D array, got {type(x).__name__}")
    if not (np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer)):
        raise TypeError(f"{name}: expected real numbers, got dtype {x.dtype}")
    if x.ndim != 1 or x.shape[0] < 2:
        raise ValueError(f"{name}: expected a 1-D array of at least 2 values, got shape {x.shape}")
    x = x.astype(np.float64)
    finite_array(x, name)
    return x


def resolution_from_fsc(freq, corr, threshold: float = 0.143) -> float:
    """Resolution (Å) where an FSC curve first falls below `threshold`.

    The crossing frequency is interpolated linearly between the last shell at or above the
    threshold and the first below it; the resolution is its inverse.

    Parameters
    ----------
    freq : (n,) array
        Increasing spatial frequencies, 1/Å (>= 0).
    corr : (n,) array
        Correlation per shell.
    threshold : float
        In (0, 1); 0.143 is the usual criterion for half-set (gold-standard) FSC.

    Returns
    -------
    float
        ``1 / f_cross`` in Å; ``inf`` if ``corr[0]`` is already below the threshold, and
        ``1 / freq[-1]`` if the curve never falls below it (the resolution is at least that).
    """
    f = _curve(freq, "freq")
    c = _curve(corr, "corr")
    if c.shape != f.shape:
        raise ValueError(f"corr: expected one value per frequency ({f.shape[0]}), got {c.shape[0]}")
    if f[0] < 0 or np.any(np.diff(f) <= 0):
        raise ValueError("freq: expected non-negative, strictly increasing frequencies in 1/Å")
    t = positive(threshold, "threshold")
    if t >= 1:
        raise ValueError(f"threshold: expected a value in (0, 1), got {threshold}")
    below = np.flatnonzero(c < t)
    if below.size == 0:
        return float(1.0 / f[-1]) if f[-1] > 0 else float("inf")
    i = int(below[0])
    if i == 0:
        return float("inf")
    fc = f[i - 1] + (t - c[i - 1]) * (f[i] - f[i - 1]) / (c[i] - c[i - 1])
    return float(1.0 / fc) if fc > 0 else float("inf")


def half_set_fsc(tilts, angles, reconstruct: Callable, *, pixel_size: float = 1.0, n_shells: int | None = None,
                 threshold: float = 0.143, **kwargs):
    """Half-set FSC: reconstruct the even- and odd-index images separately and correlate.

    Parameters
    ----------
    tilts : (n_angles, ny, nx) array
        At least 2 images.
    angles : (n_angles,) or (n_angles, 3) array
        Degrees; the halves get ``angles[0::2]`` and ``angles[1::2]`` in the form given.
    reconstruct : callable
        ``reconstruct(tilts, angles, **kwargs)`` returning an object with ``.volume`` (e.g. a
        :class:`aetcore.steps.reconstruct.Reconstruction`) or a volume array.
    pixel_size : float
        Å per voxel (for the frequencies; not passed to `reconstruct` — put it in `kwargs` under
        another name if your callable needs it).
    n_shells : int, optional
        As in :func:`fsc`.
    threshold : float
        FSC threshold for the resolution (0.143 for half maps).
    **kwargs
        Passed to `reconstruct`; ``threads`` (if given) is also used for the FFTs.

    Returns
    -------
    freq : (n_shells,) float64, 1/Å
    corr : (n_shells,) float64
    resolution : float
        :func:`resolution_from_fsc` at `threshold`, Å.
    """
    t = as_tilts(tilts)
    as_angles(angles, t.shape[0])
    if t.shape[0] < 2:
        raise ValueError(f"tilts: expected at least 2 images to split in halves, got {t.shape[0]}")
    if not callable(reconstruct):
        raise TypeError(f"reconstruct: expected a callable, got {type(reconstruct).__name__}")
    positive(pixel_size, "pixel_size")
    if n_shells is not None:
        at_least(n_shells, 2, "n_shells", integer=True)
    thr = positive(threshold, "threshold")
    if thr >= 1:
        raise ValueError(f"threshold: expected a value in (0, 1), got {threshold}")
    ang = np.asarray(angles, dtype=np.float64)

    def run(sl):
        out = reconstruct(np.ascontiguousarray(t[sl]), np.ascontiguousarray(ang[sl]), **kwargs)
        return getattr(out, "volume", out)

    v1 = run(slice(0, None, 2))
    v2 = run(slice(1, None, 2))
    freq, corr = fsc(v1, v2, pixel_size=pixel_size, n_shells=n_shells, threads=kwargs.get("threads"))
    return freq, corr, resolution_from_fsc(freq, corr, thr)
