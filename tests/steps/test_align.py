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

from aetcore.steps import align as A
from aetcore.steps import reconstruct
from aetcore.model import simulate

from conftest import gauge_free_rms, relative_error

SHAPE = (64, 64)
PS = 0.4
ANGLES = simulate.angles_range(-70, 70, 41)


_gauge_free_rms = gauge_free_rms


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
    # defaults: rotation search on (the Pt sphere has no axis rotation: it must find ~0), centre of
    # mass + common line, no projection matching
    res = A.align(mis.tilts, ANGLES)
    assert res.tilts.shape == mis.tilts.shape and res.tilts.dtype == np.float32
    assert res.shifts.shape == (len(ANGLES), 2)
    assert abs(res.rotation) < 0.05
    # Pt particle: centre of mass on the origin, so the shifts are determined absolutely
    assert _rms(res.shifts + mis.shifts) < 0.1
    assert "matching" not in res.steps and set(res.steps) == {"com", "common_line"}
    # per-image consistency residuals: small when aligned; the one image moved 2 px in y stands out
    assert res.residuals.shape == (len(ANGLES),) and res.residuals.max() < 0.01
    off = res.tilts.copy()
    off[9] = ndimage.shift(off[9], (2.0, 0.0), order=3, mode="nearest")
    r = A.consistency_residuals(off, ANGLES)
    assert int(np.argmax(r)) == 9 and r[9] > 10 * np.median(r)
    raw = A.consistency_residuals(mis.tilts, ANGLES)
    assert np.median(raw) > 5 * np.median(res.residuals)
    truth = simulate.ground_truth_volume(pos, sp, (64, 64, 64), PS)
    err = {}
    for name, t in (("aligned", res.tilts), ("perfect", ok.tilts), ("raw", mis.tilts)):
        v = reconstruct.sirt(t, ANGLES, iterations=20, progress=False).volume
        err[name] = relative_error(v, truth)
    print("Pt shift rms", _rms(res.shifts + mis.shifts), "recon errors", err)
    assert err["aligned"] < err["perfect"] * 1.05
    assert err["raw"] > err["perfect"] * 1.3


def _rotated_noisy(pos, sp, rotation, seed):
    """Noisy series (5e4 e/Å^2) of frames rotated in-plane by `rotation` deg about the image centre
    (before the noise, so the noise is not interpolated), with random shifts up to +-3 px."""
    clean = simulate.tilt_series(pos, sp, ANGLES, SHAPE, PS, shifts="random", max_shift=3, seed=seed)
    rotated = np.stack([ndimage.rotate(im, rotation, reshape=False, order=3) for im in clean.tilts])
    rng = np.random.default_rng(seed + 1)
    scale = 5e4 * PS * PS / clean.clean.mean()
    return (rng.poisson(np.clip(rotated, 0, None) * scale) / scale).astype(np.float32), clean


def _particle(kind):
    if kind == "fept":
        pos, sp, _ = simulate.fept_particle(8.0, seed=1)
    elif kind == "pt sphere":          # centrosymmetric: the row sums hardly change with a rotation
        pos, sp = simulate.pt_particle(8.0)
    else:                              # elongated: a 9 x 4.5 x 4.5 Å ellipsoid cut from a Pt lattice
        pos, sp = simulate.pt_particle(10.0)
        keep = (pos[:, 0] / 9.0) ** 2 + (pos[:, 1] / 4.5) ** 2 + (pos[:, 2] / 4.5) ** 2 <= 1
        pos, sp = pos[keep], sp[keep]
    return pos, sp


@pytest.mark.parametrize("kind", ["fept", "pt sphere", "elongated"])
def test_tilt_axis_rotation_recovered(kind):
    pos, sp = _particle(kind)
    noisy, clean = _rotated_noisy(pos, sp, 1.5, seed=2)
    rot, out = A.tilt_axis_rotation(noisy, ANGLES)
    assert abs(rot - (-1.5)) < 0.2, rot
    assert out.shape == noisy.shape
    res = A.align(noisy, ANGLES)
    assert abs(res.rotation + 1.5) < 0.2
    assert _gauge_free_rms(res.shifts, -clean.shifts, ANGLES) < 0.1


def test_tilt_axis_rotation_other_angles():
    pos, sp = _particle("pt sphere")
    for rotation in (-0.7, 3.2):
        noisy, _ = _rotated_noisy(pos, sp, rotation, seed=5)
        assert abs(A.tilt_axis_rotation(noisy, ANGLES, apply=False) + rotation) < 0.2


def test_projection_matching_improves_a_perturbed_start(fept):
    truth = -fept.shifts
    start = np.stack([A.common_line(fept.tilts), A.center_of_mass(fept.tilts)], axis=1)
    start += np.random.default_rng(5).uniform(-1, 1, start.shape)
    e0 = _gauge_free_rms(start, truth, ANGLES)
    # 2x binned (32^3 volume), SIRT 40 iterations per round, registration low-passed by 3 px (the
    # default): 0.82 -> 0.019 px (without the low-pass the rounds settle about 0.1 px from the truth,
    # the bias of the limited-angle re-projections' fine detail)
    res = A.projection_matching(fept.tilts, ANGLES, shifts=start, iterations=10, recon_iterations=40, tol=0.01,
                                bin=2)
    e1 = _gauge_free_rms(res.shifts, truth, ANGLES)
    print("matching from a perturbed start: RMS", e0, "->", e1, "history", np.round(res.history, 3))
    assert e0 > 0.5
    assert e1 < 0.05
    assert res.history[-1] < 0.2 * res.history[0]
    unsmoothed = A.projection_matching(fept.tilts, ANGLES, shifts=start, iterations=6, recon_iterations=40,
                                       tol=0.01, bin=2, smooth=0)
    assert e1 < 0.5 * _gauge_free_rms(unsmoothed.shifts, truth, ANGLES)
    assert len(res.history) >= 1 and res.residuals.shape == (len(ANGLES),)
    assert res.volume.shape == (32, 32, 32)


def test_projection_matching_genfire_and_binning(fept):
    # GENFIRE inside the rounds (2x binned to keep the test short)
    truth = -fept.shifts
    start = np.stack([A.common_line(fept.tilts), A.center_of_mass(fept.tilts)], axis=1)
    start += np.random.default_rng(6).uniform(-1, 1, start.shape)
    e0 = _gauge_free_rms(start, truth, ANGLES)
    res = A.projection_matching(fept.tilts, ANGLES, shifts=start, iterations=3, reconstruct="genfire",
                                recon_iterations=20, pixel_size=PS, tol=0.01, bin=2)
    e1 = _gauge_free_rms(res.shifts, truth, ANGLES)
    print("genfire matching: RMS", e0, "->", e1, np.round(res.history, 3))
    assert e1 < 0.1 < 0.5 * e0          # measured 0.82 -> 0.023 px
    assert res.volume.shape[1:] == (32, 32)
    # SIRT at 2x binning: the volume is 32^3 and the shifts still improve
    res2 = A.projection_matching(fept.tilts, ANGLES, shifts=start, iterations=3, recon_iterations=10, bin=2,
                                 tol=0.01)
    assert res2.volume.shape == (32, 32, 32)
    assert _gauge_free_rms(res2.shifts, truth, ANGLES) < 0.5 * e0


def test_refine_angles_keeps_the_shifts_and_the_mean_angle():
    # the angle refinement does not recover small angle errors on a particle this small (measured:
    # +-1.5 deg uniform errors, 0.88 deg RMS, became 1.21 deg RMS); what is pinned: it runs inside the
    # matching rounds, keeps the mean and the scale of the tilt angles, and the shifts stay on the truth
    pos, sp, _ = simulate.fept_particle(8.0, seed=1)
    err = np.random.default_rng(7).uniform(-0.5, 0.5, ANGLES.size)
    s = simulate.tilt_series(pos, sp, ANGLES + err, SHAPE, PS, shifts="random", max_shift=3, dose=5e4, seed=2)
    start = np.stack([A.common_line(s.tilts), A.center_of_mass(s.tilts)], axis=1)
    res = A.projection_matching(s.tilts, ANGLES, shifts=start, iterations=2, recon_iterations=10,
                                refine_angles=True, angle_range=1.0, bin=2)
    assert res.angles_refined and res.angles.shape == (len(ANGLES), 3)
    change = res.angles[:, 1] - ANGLES
    G = np.stack([np.ones_like(ANGLES), ANGLES], axis=1)
    np.testing.assert_allclose(np.linalg.lstsq(G, change, rcond=None)[0], 0, atol=1e-9)   # offset, scale kept
    assert np.any(change != 0) and np.abs(change).max() < 3.0
    assert _gauge_free_rms(res.shifts, -s.shifts, ANGLES) < 0.1


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
    with pytest.raises(ValueError, match="bin"):
        A.projection_matching(t, ANGLES, bin=16)
    with pytest.raises(ValueError, match="bin"):
        A.projection_matching(t, ANGLES, bin=0)
    with pytest.raises(ValueError, match="search"):
        A.tilt_axis_rotation(t, ANGLES, search=0)
    with pytest.raises(TypeError, match="matching"):
        A.align(t, ANGLES, matching="yes")
