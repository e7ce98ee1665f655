"""Tests of aetcore.metrics against analytic values and independent computations."""
import numpy as np
import pytest
from scipy.optimize import minimize_scalar

from aetcore.quality import metrics
from aetcore.model import simulate
from aetcore.model.projection import backproject_volume


def rand(shape, seed):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def fsc_reference(a, b, pixel_size, n_shells):
    """Straightforward FSC over the full complex FFT (independent of the rfft weighting)."""
    F1 = np.fft.fftn(a.astype(np.float64))
    F2 = np.fft.fftn(b.astype(np.float64))
    k = np.sqrt(sum(f ** 2 for f in np.meshgrid(*[np.fft.fftfreq(n, pixel_size) for n in a.shape],
                                                indexing="ij")))
    dk = 1 / (2 * pixel_size * (n_shells - 1))
    idx = np.rint(k / dk).astype(int)
    corr, counts = [], []
    for i in range(n_shells):
        m = idx == i
        num = np.sum(F1[m] * np.conj(F2[m])).real
        den = np.sqrt(np.sum(np.abs(F1[m]) ** 2) * np.sum(np.abs(F2[m]) ** 2))
        corr.append(num / den)
        counts.append(m.sum())
    return np.arange(n_shells) * dk, np.array(corr), np.array(counts)


# ----------------------------------------------------------------------------------- relative error
def test_relative_error_values():
    y = rand((8, 9, 10), 0)
    assert metrics.relative_error(y, y) == pytest.approx(0, abs=1e-7)
    assert metrics.relative_error(-3.5 * y, y) == pytest.approx(0, abs=1e-7)
    x = y + 0.3 * rand((8, 9, 10), 1)
    e = metrics.relative_error(x, y)
    for c in (1e-3, 2.0, 1e4, -7.0):
        assert metrics.relative_error(c * x, y) == pytest.approx(e, rel=1e-5)
    # independent: minimise ||a x - y|| / ||y|| over a numerically
    xd, yd = x.astype(np.float64), y.astype(np.float64)
    res = minimize_scalar(lambda a: np.linalg.norm(a * xd - yd), bracket=(0, 2), tol=1e-12)
    assert e == pytest.approx(res.fun / np.linalg.norm(yd), rel=1e-6)
    # orthogonal to the truth, or zero: relative error 1
    z = np.zeros_like(y)
    assert metrics.relative_error(z, y) == 1.0
    u = np.zeros((4, 4, 4), np.float32)
    v = np.zeros((4, 4, 4), np.float32)
    u[0, 0, 0], v[1, 1, 1] = 1, 1
    assert metrics.relative_error(u, v) == pytest.approx(1.0)


# -------------------------------------------------------------------------------------------- FSC
@pytest.mark.parametrize("shape, pixel_size, n_shells", [((24, 24, 24), 1.0, None), ((16, 20, 17), 0.4, 6),
                                                          ((15, 15, 15), 2.0, None)])
def test_fsc_matches_reference(shape, pixel_size, n_shells):
    a = rand(shape, 2)
    b = 0.7 * a + rand(shape, 3)
    freq, corr = metrics.fsc(a, b, pixel_size=pixel_size, n_shells=n_shells)
    ns = n_shells or min(shape) // 2 + 1
    rf, rc, _ = fsc_reference(a, b, pixel_size, ns)
    assert freq.shape == corr.shape == (ns,)
    np.testing.assert_allclose(freq, rf)
    assert freq[-1] == pytest.approx(1 / (2 * pixel_size))
    np.testing.assert_allclose(corr, rc, atol=1e-9)


def test_fsc_self_and_noise():
    a = rand((32, 32, 32), 4)
    freq, corr = metrics.fsc(a, a, pixel_size=0.5)
    np.testing.assert_allclose(corr, 1.0, atol=1e-12)
    np.testing.assert_allclose(np.diff(freq), 1 / (32 * 0.5))
    b = rand((32, 32, 32), 5)
    _, corr = metrics.fsc(a, b)
    _, _, counts = fsc_reference(a, b, 1.0, corr.size)
    # independent noise: correlation ~ N(0, 1/count) per shell (shell 0 is the single DC term)
    assert np.all(np.abs(corr[1:]) < 4 / np.sqrt(counts[1:]))
    assert np.abs(corr[1:] * np.sqrt(counts[1:])).mean() < 1.2  # E|z| = 0.8 for a standard normal


def test_fsc_signal_to_noise():
    # white signal plus independent white noise of variance s2 in each copy: FSC = 1 / (1 + s2)
    s = rand((32, 32, 32), 6)
    s2 = 1.5
    a = s + np.sqrt(s2) * rand((32, 32, 32), 7)
    b = s + np.sqrt(s2) * rand((32, 32, 32), 8)
    _, corr = metrics.fsc(a, b)
    assert corr[4:].mean() == pytest.approx(1 / (1 + s2), abs=0.02)


def test_resolution_from_fsc_analytic():
    f = np.linspace(0, 0.5, 26)
    c = 1 - 2 * f  # linear: crossing at f = (1 - t) / 2 exactly, whatever the sampling
    assert metrics.resolution_from_fsc(f, c) == pytest.approx(2 / (1 - 0.143), rel=1e-12)
    assert metrics.resolution_from_fsc(f, c, threshold=0.5) == pytest.approx(4.0, rel=1e-12)
    f = np.linspace(0, 1.0, 2001)
    c = np.exp(-(f / 0.2) ** 2)
    fc = 0.2 * np.sqrt(-np.log(0.143))
    assert metrics.resolution_from_fsc(f, c) == pytest.approx(1 / fc, rel=1e-5)
    # a dip after the first crossing does not matter: the first crossing counts
    c2 = c.copy()
    c2[f > 0.6] = 0.9
    assert metrics.resolution_from_fsc(f, c2) == pytest.approx(1 / fc, rel=1e-5)
    # never below the threshold: limited by the last shell; below from the start: infinite
    assert metrics.resolution_from_fsc(f, np.ones_like(f)) == pytest.approx(1.0)
    assert metrics.resolution_from_fsc(f, np.zeros_like(f)) == np.inf


# ------------------------------------------------------------------------------------- half sets
def test_half_set_fsc():
    pos, sp = simulate.pt_particle(6.0)
    ang = simulate.angles_range(-70, 70, 24)
    n = 24
    s = simulate.tilt_series(pos, sp, ang, (n, n), 1.0, dose=100.0, read_noise=1.0, seed=1, threads=1)
    calls = []

    class Result:
        def __init__(self, volume):
            self.volume = volume

    def bp(tilts, angles, *, scale=1.0, threads=None):
        calls.append((tilts.shape[0], np.array(angles)))
        return Result(scale * backproject_volume(tilts, angles, (n, n, n), threads=threads))

    freq, corr, res = metrics.half_set_fsc(s.tilts, ang, bp, pixel_size=1.0, scale=2.0, threads=1)
    assert [c[0] for c in calls] == [12, 12]
    np.testing.assert_array_equal(calls[0][1], ang[0::2])
    np.testing.assert_array_equal(calls[1][1], ang[1::2])
    # independent recomputation
    v1 = backproject_volume(s.tilts[0::2], ang[0::2], (n, n, n))
    v2 = backproject_volume(s.tilts[1::2], ang[1::2], (n, n, n))
    rf, rc, _ = fsc_reference(v1, v2, 1.0, n // 2 + 1)
    np.testing.assert_allclose(freq, rf)
    np.testing.assert_allclose(corr, rc, atol=1e-6)
    assert res == pytest.approx(metrics.resolution_from_fsc(rf, rc))
    assert corr[1] > 0.9 and 2.0 < res < 12.0  # noise-limited: crosses before Nyquist (2 Å)
    # a callable returning a bare array works the same
    f2, c2, r2 = metrics.half_set_fsc(s.tilts, ang, lambda t, a: backproject_volume(t, a, (n, n, n)))
    np.testing.assert_allclose(c2, corr, atol=1e-6)
    assert r2 == pytest.approx(res)


# ------------------------------------------------------------------------------------- bad input
def test_bad_input():
    a = rand((8, 8, 8), 0)
    nan = a.copy()
    nan[1, 2, 3] = np.nan
    cases = [
        (lambda: metrics.relative_error(a[0], a), ValueError, "volume"),
        (lambda: metrics.relative_error(a, a[:4]), ValueError, "truth"),
        (lambda: metrics.relative_error(a, np.zeros_like(a)), ValueError, "truth"),
        (lambda: metrics.relative_error(nan, a), ValueError, "volume"),
        (lambda: metrics.relative_error(a.astype(complex), a), TypeError, "volume"),
        (lambda: metrics.relative_error("vol", a), TypeError, "volume"),
        (lambda: metrics.fsc(a, a[:, :4]), ValueError, "vol2"),
        (lambda: metrics.fsc(a[None], a[None]), ValueError, "vol1"),
        (lambda: metrics.fsc(a, nan), ValueError, "vol2"),
        (lambda: metrics.fsc(a, a, pixel_size=0.0), ValueError, "pixel_size"),
        (lambda: metrics.fsc(a, a, pixel_size=-2.0), ValueError, "pixel_size"),
        (lambda: metrics.fsc(a, a, n_shells=1), ValueError, "n_shells"),
        (lambda: metrics.fsc(a, a, n_shells=3.5), TypeError, "n_shells"),
        (lambda: metrics.resolution_from_fsc([0.0, 0.1], [1.0]), ValueError, "corr"),
        (lambda: metrics.resolution_from_fsc([0.2, 0.1], [1.0, 0.0]), ValueError, "freq"),
        (lambda: metrics.resolution_from_fsc([0.0, np.nan], [1.0, 0.0]), ValueError, "freq"),
        (lambda: metrics.resolution_from_fsc(np.zeros((2, 2)), [1.0, 0.0]), ValueError, "freq"),
        (lambda: metrics.resolution_from_fsc([0.0, 0.1], [1.0, 0.0], threshold=1.5), ValueError, "threshold"),
        (lambda: metrics.half_set_fsc(a, np.zeros(7), lambda t, x: t), ValueError, "angles"),
        (lambda: metrics.half_set_fsc(a[:1], np.zeros(1), lambda t, x: t), ValueError, "tilts"),
        (lambda: metrics.half_set_fsc(a[0], np.zeros(8), lambda t, x: t), ValueError, "tilts"),
        (lambda: metrics.half_set_fsc(a, np.zeros(8), "sirt"), TypeError, "reconstruct"),
        (lambda: metrics.half_set_fsc(a, np.zeros(8), lambda t, x: t, pixel_size=0), ValueError, "pixel_size"),
    ]
    for f, exc, name in cases:
        with pytest.raises(exc, match=name):
            f()
