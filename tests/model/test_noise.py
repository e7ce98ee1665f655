"""The noise model from the data: detector offset, gain and read noise of a raw series, and the
variance-mean line of a series against its model."""
import numpy as np
import pytest

from aetcore.model import projection as project, simulate
from aetcore.model.noise import DetectorNoise, VarianceModel, estimate_detector_noise, fit_variance


@pytest.fixture(scope="module")
def clean():
    pos, sp = simulate.fept_particle(radius=9.0, orientation="random", seed=2)[:2]
    return project.project_atoms(pos, sp, np.linspace(-60, 60, 9), (64, 64), 0.4, threads=1)


@pytest.mark.parametrize("offset, gain, read", [(20.0, 1.0, 2.0), (5.0, 3.0, 1.0), (100.0, 0.5, 4.0)])
def test_detector_noise_is_recovered_from_a_raw_series(clean, offset, gain, read):
    rng = np.random.default_rng(1)
    mean_counts = 40.0 * clean / clean.max() * 8        # up to 320 electrons per pixel
    raw = gain * rng.poisson(mean_counts) + rng.normal(0, read, clean.shape) + offset
    est = estimate_detector_noise(raw.astype(np.float32))
    assert est.offset == pytest.approx(offset, abs=0.1 * read + 0.02 * offset)
    assert est.gain == pytest.approx(gain, rel=0.1)
    assert est.read_noise == pytest.approx(read, rel=0.2)


def test_series_units_follow_the_normalisation():
    d = DetectorNoise(offset=20.0, gain=2.0, read_noise=3.0)
    v = d.in_series_units(0.5)
    counts = np.array([20.0, 120.0])
    # var of (raw - offset) * s = s^2 var(raw)
    np.testing.assert_allclose(v.variance((counts - 20.0) * 0.5), 0.25 * d.variance(counts), rtol=1e-6)


def test_fit_variance_recovers_alpha_and_beta():
    rng = np.random.default_rng(4)
    m = rng.uniform(0, 50, 200_000)
    r = rng.normal(0, np.sqrt(0.7 * m + 2.5))
    v = fit_variance(m, r)
    assert v.alpha == pytest.approx(0.7, rel=0.05) and v.beta == pytest.approx(2.5, rel=0.1)
    assert isinstance(v, VarianceModel)


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="residual"):
        fit_variance(np.zeros(200), np.zeros(100))
    with pytest.raises(ValueError, match="tilts"):
        estimate_detector_noise(np.zeros((2, 4, 4), np.float32))
