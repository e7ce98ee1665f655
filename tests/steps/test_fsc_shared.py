"""The half-set FSC of the reconstruct step on a series made outside aetcore: the Fe-rich low-dose
wedge of ../shared/data/fept_dev (31 images over ±60°, 60 counts per Pt atom), the case whose FSC
curve runs close to 0.5 over many shells, so that halves reconstructed too cheaply cross 0.5 several
shells early (15 iterations on the full grid: 6.7 shells; bench/fsc_cost.py).

The halves made as the reconstruct step makes them for an object inside the field of view
(``GenfireOptions.half_set_oversampling`` and ``half_set_iterations``) must give both crossings
within one Fourier shell of two halves reconstructed like the full volume (oversampling 3, 100
iterations), each from scratch, at well under half their CPU time. About 80 s on 2 cores."""
import time

import numpy as np
import pytest

from conftest import SHARED, fept_dev_series

CASE = SHARED / "fept_dev" / "fept_lowdose_wedge_seed7003"


@pytest.fixture(scope="module")
def wedge():
    tilts, angles, pixel_size, _, _ = fept_dev_series(CASE.name)
    return tilts, angles, pixel_size


def test_the_cheap_halves_cross_where_full_cost_halves_do_on_the_low_dose_wedge(wedge):
    from aetcore import _core
    from aetcore.quality.metrics import half_set_fsc, resolution_from_fsc
    from aetcore.steps.reconstruct import genfire
    tilts, angles, ps = wedge
    g = _core.GenfireOptions()
    kw = dict(pixel_size=ps, seed=0, threads=2, progress=False)

    def fsc(**opts):
        c0 = time.process_time()
        freq, corr, _ = half_set_fsc(tilts, angles, lambda t, a, **_: genfire(t, a, **kw, **opts),
                                     pixel_size=ps, threads=2)
        return freq, corr, time.process_time() - c0
    freq, c_full, cpu_full = fsc()
    _, c_cheap, cpu_cheap = fsc(oversampling=g.half_set_oversampling, iterations=g.half_set_iterations)
    dk = freq[1] - freq[0]
    for thr in (0.143, 0.5):
        assert np.any(c_full < thr) and np.any(c_cheap < thr)       # a crossing before Nyquist
        a, b = resolution_from_fsc(freq, c_full, thr), resolution_from_fsc(freq, c_cheap, thr)
        assert abs(1 / a - 1 / b) <= dk, (thr, a, b, abs(1 / a - 1 / b) / dk)
    assert cpu_cheap < 0.4 * cpu_full, (cpu_cheap, cpu_full)         # measured about 0.2
