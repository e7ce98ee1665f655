"""The two cases made outside this project (../shared/data): the layout mapping onto CONVENTIONS.md
is pinned by reprojecting their ground truth, then aetcore's reconstructions are scored against it.

Reference errors of the `genfire` package 1.1.11 (oversampling 3, 100 iterations, the same support),
measured on this machine with /tmp-free code equivalent to bench/reconstruction.py's peer runner:
vesicle 0.0461, RESIRE sample (full-box support) 0.2033.
"""
import numpy as np
import pytest

from aetcore.model.projection import project_volume
from aetcore.steps.reconstruct import genfire, sirt, wbp

from conftest import relative_error, shared_case

GENFIRE_PACKAGE_ERROR = {"genfire_vesicle": 0.0461, "resire_sample": 0.2033}


@pytest.mark.parametrize("name", ["genfire_vesicle", "resire_sample"])
def test_layout_mapping_reproduces_the_given_projections(name):
    vol, tilts, angles, _ = shared_case(name)
    assert relative_error(project_volume(vol, angles), tilts) < 0.03
    # The mapping discriminates: the opposite tilt sense, or the tilt axis on the other image
    # axis, reproduces nothing.
    assert relative_error(project_volume(vol, -angles), tilts) > 0.2
    swapped = np.ascontiguousarray(np.transpose(vol, (0, 2, 1)))
    assert relative_error(project_volume(swapped, angles), tilts) > 0.2


def test_resire_sample_is_an_exact_sum_at_theta_zero():
    vol, tilts, angles, _ = shared_case("resire_sample")
    k = int(np.argmin(np.abs(angles[:, 1])))
    assert angles[k, 1] == 0
    np.testing.assert_allclose(vol.sum(axis=0), tilts[k], rtol=1e-3, atol=1e-3 * tilts[k].max())


@pytest.mark.parametrize("name", ["genfire_vesicle", "resire_sample"])
def test_genfire_is_no_worse_than_the_genfire_package(name):
    vol, tilts, angles, support = shared_case(name)
    rec = genfire(tilts, angles, oversampling=3, iterations=100,
                  support=support if support is not None else "box", seed=0, progress=False)
    err = relative_error(rec.volume, vol)
    assert err <= GENFIRE_PACKAGE_ERROR[name], f"aetcore {err:.4f} vs genfire {GENFIRE_PACKAGE_ERROR[name]}"


def test_genfire_beats_wbp_and_sirt_on_the_resire_sample():
    vol, tilts, angles, _ = shared_case("resire_sample")
    e_gf = relative_error(genfire(tilts, angles, support="box", seed=0, progress=False).volume, vol)
    e_wbp = relative_error(wbp(tilts, angles).volume, vol)
    e_sirt = relative_error(sirt(tilts, angles, iterations=30, progress=False).volume, vol)
    assert e_gf < e_sirt < 1.0 and e_gf < e_wbp < 1.0


def test_live_comparison_with_the_genfire_package():
    """Runs only where the peer is installed (`pip install .[bench]`)."""
    import matplotlib
    # genfire.reconstruct calls matplotlib.use("Qt5Agg") at import; in a pytest process where another
    # test already drew with a headless backend that raises, and the reconstruction never plots
    use = matplotlib.use
    matplotlib.use = lambda *args, **kwargs: None
    try:
        gf = pytest.importorskip("genfire.reconstruct")
    finally:
        matplotlib.use = use
    import os
    import tempfile

    vol, tilts, angles, support = shared_case("genfire_vesicle")
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "support.npy")
        np.save(path, np.transpose(support, (2, 1, 0)))
        out = gf.GenfireReconstructor(
            projections=np.transpose(tilts, (2, 1, 0)).astype(float), eulerAngles=angles.reshape(-1, 3),
            support=path, useDefaultSupport=False, numIterations=100, oversamplingRatio=3,
            calculateRfree=False, verbose=False).reconstruct()
    theirs = relative_error(np.transpose(out["reconstruction"], (2, 1, 0)), vol)
    ours = relative_error(genfire(tilts, angles, support=support, seed=0, progress=False).volume, vol)
    assert ours <= theirs * 1.001
