"""The detector noise of a tilt series, estimated from the series itself.

ADF-STEM counts are Poisson (scaled by a gain when the detector does not count single electrons)
plus Gaussian read noise, on top of a constant detector offset. The variance of a pixel is then
linear in its mean above the offset:

``var = gain * (I - offset) + read_noise**2``  (raw counts).

Two estimates, both from the data alone:

* :func:`estimate_detector_noise` works on the raw series (counts, before pre-processing). The atom
  images are band-limited (an atom is a Gaussian of sigma >= ~1 px), so the highest spatial
  frequencies hold almost only noise: the separable second difference ``[1, -2, 1]`` along y and x
  (sum of squared weights 36) passes less than 1 % of the signal power of a Gaussian of sigma 1 px
  and all of white noise. Its square / 36 is an unbiased local variance; binned against the local
  mean (the image smoothed over 5 x 5 px) it gives a straight line whose slope is the gain and
  whose intercept at the offset is the read noise. The offset is the mean of the background pixels
  (outside the particle: the lowest quarter of the smoothed image).
* :func:`fit_variance` works on any series with a model of it (e.g. the projections of a refined
  atomic model of the aligned, normalised series): ``var = alpha * max(M, 0) + beta`` fitted to the
  squared residuals binned by the model value ``M``. It includes what the pre-processing did to the
  noise (normalisation, the interpolation of the alignment shifts) and is what the evidence step
  (:mod:`aetcore.steps.evidence`) uses.

For a series normalised as ``(raw - offset) * scale`` (the pre-processing's ``background`` and
``scales``), ``alpha = scale * gain`` and ``beta = scale**2 * read_noise**2`` before interpolation:
:meth:`DetectorNoise.in_series_units` converts.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from .._util.validate import as_tilts, at_least

__all__ = ["DetectorNoise", "VarianceModel", "estimate_detector_noise", "fit_variance"]


@dataclass(frozen=True)
class DetectorNoise:
    """Noise of the raw detector counts.

    Attributes
    ----------
    offset : float
        Detector offset (mean of an empty pixel), counts.
    gain : float
        Variance per count above the offset (1 for a counting detector), counts.
    read_noise : float
        Standard deviation of the read noise, counts.
    """

    offset: float
    gain: float
    read_noise: float

    def variance(self, counts) -> np.ndarray:
        """Variance (counts^2) of pixels whose mean is `counts` (raw counts, offset included)."""
        return self.gain * np.maximum(np.asarray(counts, np.float64) - self.offset, 0.0) + self.read_noise ** 2

    def in_series_units(self, scale: float) -> "VarianceModel":
        """The variance model of the series ``(raw - offset) * scale``."""
        s = float(scale)
        return VarianceModel(alpha=s * self.gain, beta=s * s * self.read_noise ** 2)


@dataclass(frozen=True)
class VarianceModel:
    """``var = alpha * max(I, 0) + beta`` in the units of a (pre-processed) series.

    Attributes
    ----------
    alpha : float
        Variance per unit of intensity (series units).
    beta : float
        Variance of an empty pixel (series units squared), > 0.
    """

    alpha: float
    beta: float

    def variance(self, intensity) -> np.ndarray:
        """Variance of pixels of mean `intensity` (series units), float32 like a tilt series."""
        i = np.asarray(intensity, np.float32)
        return np.float32(self.alpha) * np.maximum(i, np.float32(0)) + np.float32(self.beta)


def _binned_line(x: np.ndarray, y: np.ndarray, bins: int, min_count: int):
    """Weighted least-squares line ``y = a x + b`` through the means of y in quantile bins of x.

    Small series get fewer, fuller bins (at least `min_count` pixels each where the series allows,
    else a quarter of the pixels each), so that a small but valid series is never refused."""
    if x.size < 2 * min_count:
        min_count = max(2, x.size // 4)
    bins = int(max(2, min(bins, x.size // min_count)))
    q = np.unique(np.quantile(x, np.linspace(0.0, 1.0, bins + 1)))
    if q.size < 3:
        raise ValueError("tilts: the series has too few distinct intensities to fit a noise model")
    idx = np.clip(np.searchsorted(q, x, side="right") - 1, 0, q.size - 2)
    nb = q.size - 1
    cnt = np.bincount(idx, minlength=nb).astype(np.float64)
    ok = cnt >= min_count
    if ok.sum() < 2:
        raise ValueError("tilts: too few pixels to fit a noise model")
    mx = np.bincount(idx, x, nb)[ok] / cnt[ok]
    my = np.bincount(idx, y, nb)[ok] / cnt[ok]
    sw = np.sqrt(cnt[ok])
    A = np.stack([mx, np.ones_like(mx)], 1) * sw[:, None]
    (a, b), *_ = np.linalg.lstsq(A, my * sw, rcond=None)
    return float(a), float(b)


def estimate_detector_noise(tilts, *, bins: int = 32) -> DetectorNoise:
    """Offset, gain and read noise of a raw tilt series (see the module documentation).

    Parameters
    ----------
    tilts : (n_angles, ny, nx) array
        Raw counts (before background subtraction and normalisation); images at least 8 x 8 px.
    bins : int
        Number of intensity bins of the variance-mean line.

    Returns
    -------
    DetectorNoise
    """
    t = as_tilts(tilts).astype(np.float64)
    bins = at_least(bins, 2, "bins", integer=True)
    if min(t.shape[1:]) < 8:
        raise ValueError(f"tilts: expected images of at least 8 x 8 px to estimate the noise, got {t.shape[1:]}")
    d2 = np.array([1.0, -2.0, 1.0])
    hp = ndimage.correlate1d(ndimage.correlate1d(t, d2, axis=1, mode="reflect"), d2, axis=2, mode="reflect")
    local_var = (hp[:, 2:-2, 2:-2] ** 2) / 36.0
    local_mean = ndimage.uniform_filter(t, size=(1, 5, 5), mode="reflect")[:, 2:-2, 2:-2]
    x, y = local_mean.ravel(), local_var.ravel()
    # background: the lowest quarter of the smoothed image, per image (the particle is brighter)
    smooth = ndimage.uniform_filter(t, size=(1, 9, 9), mode="reflect")
    thr = np.quantile(smooth.reshape(t.shape[0], -1), 0.25, axis=1)
    bg = (smooth <= thr[:, None, None])[:, 2:-2, 2:-2]
    offset = float(np.mean(t[:, 2:-2, 2:-2][bg]))
    gain, intercept = _binned_line(x, y, bins, min_count=100)
    gain = max(gain, 0.0)
    read_var = intercept + gain * offset      # the line at I = offset
    if not read_var > 0:                      # read noise below what the bins can resolve
        read_var = float(np.mean(y[bg.ravel()]))
    return DetectorNoise(offset=offset, gain=float(gain), read_noise=float(np.sqrt(max(read_var, 0.0))))


def fit_variance(model, residual, *, bins: int = 64) -> VarianceModel:
    """Fit ``var = alpha * max(M, 0) + beta`` to the squared residuals of a series against its model.

    Parameters
    ----------
    model : array
        The model of every pixel ``M`` (e.g. the projections of the atomic model), series units.
    residual : array
        ``measured - M``, same shape.
    bins : int
        Quantile bins of ``M``.

    Returns
    -------
    VarianceModel
        ``alpha >= 0``; ``beta`` at least 1e-6 of the largest binned variance (so every weight is
        finite).
    """
    m = np.asarray(model)
    r = np.asarray(residual)
    if m.shape != r.shape:
        raise ValueError(f"residual: expected the shape of model {m.shape}, got {r.shape}")
    if m.size < 2 * 50:
        raise ValueError(f"model: expected at least 100 pixels to fit a variance model, got {m.size}")
    x = np.maximum(m.ravel().astype(np.float64), 0.0)
    y = r.ravel().astype(np.float64) ** 2
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        raise ValueError("model/residual: expected finite values")
    bins = at_least(bins, 2, "bins", integer=True)
    alpha, beta = _binned_line(x, y, bins, min_count=50)
    alpha = max(alpha, 0.0)
    floor = 1e-6 * max(float(y.mean()), 1e-30)
    return VarianceModel(alpha=alpha, beta=max(beta, floor))
