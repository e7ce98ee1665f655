"""aetcore.align against simulated tilt series with known misalignment.

Ground truth: simulate.tilt_series applies ``series.shifts`` as misalignment, so the correct
alignment shift is ``-series.shifts``. A 3D translation of the object (dy = t_y,
dx = t_x cos(theta) - t_z sin(theta)) cannot be told from misalignment; align fixes it by putting
the object's intensity-weighted centre of mass on the rotation centre. For an FePt particle with
chemical domains that centre is off the origin (by ~0.6 px here), so FePt shifts are compared after
removing the least-squares translation mode; for a pure Pt particle (centrosymmetric, centre of
mass exactly at the origin) they are compared directly.
"""
import numpy as np
import pytest
from scipy import ndimage

from aetcore import align as A
from aetcore import reconstruct, simulate

from conftest import relative_error

SHAPE = (64, 64)
PS = 0.4
ANGLES = simulate.angles_range(-70, 70, 41)


def _gauge_free_rms(found, truth, angles):
    th = np.radians(angles)
    d = found - truth
    ay = np.ones((len(th), 1))
    ax = np.stack([np.cos(th), -np.sin(th)], axis=1)
    ry = d[:, 0] - ay @ np.linalg.lstsq(ay, d[:, 0], rcond=None)[0]
    rx = d[:, 1] - ax @ np.linalg.lstsq(ax, d[:, 1], rcond=None)[0]
    return float(np.sqrt((ry ** 2 + rx ** 2).mean()))


def _rms(d):
    return float(np.sqrt((np.asarray(d) ** 2).sum(axis=-1).mean()))


@pytest.fixture(scope="module")
def fept():
    pos, sp, _ = simulate.fept_particle(8.0, seed=1)
    return simulate.tilt_series(pos, sp, ANGLES, SHAPE, PS, shifts="random", max_shift=3, dose=5e4, seed=2)


@pytest.fixture(scope="module")
def pt():
    pos, sp = simulate.pt_particle(8.0)
    mis = simulate.tilt_series(pos, sp, ANGLES, SHAPE, PS, shifts="random", max_shift=3, dose=5e4, seed=4)
    ok = simulate.tilt_series(pos, sp, ANGLES, SHAPE, PS, shifts=None, dose=5e4, seed=4)
    return pos, sp, mis, ok


def test_com_and_common_line_recover_random_shifts(fept):
    truth = -fept.shifts
    dx = A.center_of_mass(fept.tilts)
    dy = A.common_line(fept.tilts)
    found = np.stack([dy, dx], axis=1)
    assert _rms(truth) > 1.5
    assert _gauge_free_rms(found, truth, ANGLES) < 0.1


def test_align_pt_shifts_without_gauge_and_reconstruction(pt):
    pos, sp, mis, ok = pt
    # rotation=False: for a near-spherical particle the y-profiles hardly depend on an in-plane
    # rotation, so the common-line rotation estimate is poorly determined (about 2 deg off here)
    res = A.align(mis.tilts, ANGLES, rotation=False, recon_iterations=20, iterations=3)
    assert res.tilts.shape == mis.tilts.shape and res.tilts.dtype == np.float32
    assert res.shifts.shape == (len(ANGLES), 2) and res.rotation == 0.0
    # Pt particle: centre of mass on the origin, so the shifts are determined absolutely
    assert _rms(res.shifts + mis.shifts) < 0.1
    assert res.residuals.shape == (len(ANGLES),) and np.all(res.residuals < 0.5)
    truth = simulate.ground_truth_volume(pos, sp, (64, 64, 64), PS)
    err = {}
    for name, t in (("aligned", res.tilts), ("perfect", ok.tilts), ("raw", mis.tilts)):
        v = reconstruct.sirt(t, ANGLES, iterations=20, progress=False).volume
        err[name] = relative_error(v, truth)
    print("Pt shift rms", _rms(res.shifts + mis.shifts), "recon errors", err)
    assert err["aligned"] < err["perfect"] * 1.05
    assert err["raw"] > err["perfect"] * 1.3


def test_tilt_axis_rotation_recovered(fept):
    pos, sp, _ = simulate.fept_particle(8.0, seed=1)
    clean = simulate.tilt_series(pos, sp, ANGLES, SHAPE, PS, shifts="random", max_shift=3, seed=2)
    rotated = np.stack([ndimage.rotate(im, 1.5, reshape=False, order=3) for im in clean.tilts])
    rng = np.random.default_rng(3)
    scale = 5e4 * PS * PS / clean.clean.mean()
    noisy = (rng.poisson(np.clip(rotated, 0, None) * scale) / scale).astype(np.float32)
    rot, out = A.tilt_axis_rotation(noisy, ANGLES)
    assert abs(rot - (-1.5)) < 0.2
    assert out.shape == noisy.shape
    res = A.align(noisy, ANGLES, matching=False)
    assert abs(res.rotation + 1.5) < 0.2
    assert _gauge_free_rms(res.shifts, -clean.shifts, ANGLES) < 0.1


def test_projection_matching_improves_a_perturbed_start(fept):
    truth = -fept.shifts
    start = np.stack([A.common_line(fept.tilts), A.center_of_mass(fept.tilts)], axis=1)
    start += np.random.default_rng(5).uniform(-1, 1, start.shape)
    e0 = _gauge_free_rms(start, truth, ANGLES)
    res = A.projection_matching(fept.tilts, ANGLES, shifts=start, iterations=10, recon_iterations=10, tol=0.01)
    e1 = _gauge_free_rms(res.shifts, truth, ANGLES)
    assert e0 > 0.5
    assert e1 < 0.1
    assert len(res.history) >= 1 and res.residuals.shape == (len(ANGLES),)


def test_apply_alignment_matches_scipy_shift(fept):
    sh = np.random.default_rng(0).uniform(-2, 2, (len(ANGLES), 2))
    out = A.apply_alignment(fept.tilts, sh)
    k = 7
    np.testing.assert_allclose(out[k], ndimage.shift(fept.tilts[k], sh[k], order=3, mode="nearest"),
                               rtol=1e-5, atol=1e-5)


def test_bad_input_is_refused(fept):
    t = fept.tilts
    zero = t.copy()
    zero[3] = 0
    with pytest.raises(ValueError, match="tilts"):
        A.center_of_mass(zero)
    with pytest.raises(ValueError, match="tilts"):
        A.align(zero, ANGLES)
    nan = t.copy()
    nan[0, 5, 5] = np.nan
    with pytest.raises(ValueError, match="tilts"):
        A.common_line(nan)
    with pytest.raises(ValueError, match="tilts"):
        A.align(t[0], ANGLES)
    with pytest.raises(TypeError, match="tilts"):
        A.center_of_mass("images")
    with pytest.raises(ValueError, match="angles"):
        A.align(t, ANGLES[:-1])
    with pytest.raises(ValueError, match="angles"):
        A.projection_matching(t, ANGLES[:5])
    with pytest.raises(ValueError, match="angles"):
        A.tilt_axis_rotation(t, ANGLES[:5])
    with pytest.raises(ValueError, match="reconstruct"):
        A.align(t, ANGLES, reconstruct="fbp")
    with pytest.raises(TypeError, match="upsample"):
        A.common_line(t, upsample=2.5)
    with pytest.raises(ValueError, match="mask"):
        A.center_of_mass(t, mask=np.ones((3, 3)))
    with pytest.raises(ValueError, match="shifts"):
        A.projection_matching(t, ANGLES, shifts=np.zeros((2, 2)))
