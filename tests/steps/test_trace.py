"""Atom tracing against ground truth: atoms rendered at known sub-voxel positions, hand-made volumes for
plateaus, saddles and drifted fits, the minimum-distance rule, thread independence and bad input."""
import numpy as np
import pytest
from scipy.ndimage import maximum_filter
from scipy.spatial import cKDTree

from aetcore.model.projection import render_atoms
from aetcore.steps.trace import STATUS, TracedAtoms, local_maxima, trace_atoms

PIXEL = 0.3  # Å per voxel
SHAPE = (48, 48, 48)


def random_atoms(rng, n, half_width, min_sep):
    """n positions (Å) uniform in a cube of the given half width, pairwise >= min_sep apart."""
    pts = []
    while len(pts) < n:
        q = rng.uniform(-half_width, half_width, 3)
        if all(np.linalg.norm(q - p) >= min_sep for p in pts):
            pts.append(q)
    return np.array(pts)


@pytest.fixture(scope="module")
def atoms_volume():
    rng = np.random.default_rng(2024)
    pos = random_atoms(rng, 40, 0.35 * SHAPE[0] * PIXEL, 2.5)
    vol = render_atoms(pos, ["Pt"] * len(pos), SHAPE, PIXEL)
    return pos, vol


def match_errors(truth, found, pixel):
    """One-to-one match of found atoms to the truth; errors in voxels."""
    d, j = cKDTree(found).query(truth)
    assert len(set(j.tolist())) == len(truth), "two true atoms matched the same traced atom"
    return d / pixel


@pytest.mark.parametrize("fit, tol", [("polynomial", 0.05), ("gaussian", 0.02)])
def test_finds_every_atom_at_its_position(atoms_volume, fit, tol):
    pos, vol = atoms_volume
    r = trace_atoms(vol, PIXEL, fit=fit)
    assert isinstance(r, TracedAtoms)
    assert len(r) == len(pos)  # all found, none extra
    assert np.all(r.status == 0)
    err = match_errors(pos, r.positions, PIXEL)
    print(f"{fit}: max error {err.max():.4f} voxel, mean {err.mean():.4f} voxel")
    assert err.max() < tol
    # Brightest first; voxel maxima within half a voxel (per axis) of the fitted positions.
    assert np.all(np.diff(r.intensity) <= 0)
    assert np.abs(r.positions_voxels - r.voxel).max() <= 0.5 + 1e-9
    assert r.positions.shape == (len(pos), 3) and r.voxel.dtype == np.int64 and r.status.dtype == np.int8


def test_object_frame_convention():
    # One atom at a known object-frame position in a non-cubic volume: x, y, z in Å about index n // 2.
    p = 0.4
    truth = np.array([[1.13, -0.71, 0.37]])
    vol = render_atoms(truth, ["Pt"], (21, 24, 27), p)
    r = trace_atoms(vol, p, fit="gaussian")
    assert len(r) == 1
    np.testing.assert_allclose(r.positions, truth, atol=0.02 * p)
    z, y, x = r.voxel[0]
    np.testing.assert_allclose([(x - 27 // 2) * p, (y - 24 // 2) * p, (z - 21 // 2) * p], truth[0], atol=0.5 * p)


def test_minimum_distance_keeps_the_brighter():
    bright, dim = np.array([0.0, 0.0, 0.0]), np.array([1.5, 0.2, -0.1])  # 1.52 Å apart
    vol = render_atoms(np.array([dim, bright]), ["Fe", "Pt"], SHAPE, PIXEL, heights={"Fe": 0.6, "Pt": 1.0})
    both = trace_atoms(vol, PIXEL, min_distance=1.0)
    assert len(both) == 2  # two resolved maxima
    one = trace_atoms(vol, PIXEL, min_distance=2.0)
    assert len(one) == 1
    # The brighter atom's position (its dimmer neighbour's tail pulls the fit by ~0.1 voxel).
    np.testing.assert_allclose(one.positions[0], bright, atol=0.3 * PIXEL)
    assert one.intensity[0] == both.intensity.max()


def test_max_atoms_keeps_the_brightest(atoms_volume):
    pos, vol = atoms_volume
    all_ = trace_atoms(vol, PIXEL)
    top = trace_atoms(vol, PIXEL, max_atoms=5)
    assert len(top) == 5
    np.testing.assert_array_equal(top.voxel, all_.voxel[:5])


def grid(n=15):
    c = n // 2
    return c, np.meshgrid(*[np.arange(n) - c] * 3, indexing="ij")


def test_plateau_is_one_peak_and_not_a_maximum():
    c, _ = grid()
    vol = np.zeros((15, 15, 15), np.float32)
    vol[c - 3:c + 4, c - 3:c + 4, c - 3:c + 4] = 1.0  # flat 7^3 block
    vox, val = local_maxima(vol, 0.5)
    np.testing.assert_array_equal(vox, [[c, c, c]])  # one peak, at the plateau centre
    r = trace_atoms(vol, 1.0, min_distance=0)
    assert len(r) == 1 and r.status[0] == 1 and STATUS[1] == "not a maximum"
    np.testing.assert_array_equal(r.positions_voxels[0], [c, c, c])  # failed fits keep the voxel maximum


def test_ridge_is_not_a_maximum():
    c, (z, y, x) = grid()
    vol = (np.exp(-(y ** 2 + z ** 2) / 2.0) * np.ones_like(x)).astype(np.float32)  # flat along x
    r = trace_atoms(vol, 1.0, min_distance=0)
    assert len(r) == 1 and r.status[0] == 1
    np.testing.assert_array_equal(r.voxel[0], [c, c, c])


def test_two_voxel_plateau_fits_between_them():
    c, (z, y, x) = grid()
    vol = np.exp(-((x - 0.5) ** 2 + y ** 2 + z ** 2) / 3.0).astype(np.float32)
    assert vol[c, c, c] == vol[c, c, c + 1]
    r = trace_atoms(vol, 1.0)
    assert len(r) == 1 and r.status[0] == 0
    np.testing.assert_allclose(r.positions_voxels[0], [c, c, c + 0.5], atol=0.06)


def test_fit_far_from_the_voxel_maximum_is_drifted():
    # A hot voxel at the centre on the flank of a broad peak centred 0.7 voxel away along each axis:
    # the voxel maximum is the hot voxel, the fitted maximum lies ~1.3 voxels from it.
    c, (z, y, x) = grid()
    vol = np.exp(-((x - 0.7) ** 2 + (y - 0.7) ** 2 + (z - 0.7) ** 2) / (2 * 1.5 ** 2)).astype(np.float32)
    vol[c, c, c] = vol.max() + 1e-3
    r = trace_atoms(vol, 1.0, min_distance=0, max_drift=1.0)
    assert len(r) == 1 and r.status[0] == 2
    np.testing.assert_array_equal(r.positions_voxels[0], [c, c, c])
    loose = trace_atoms(vol, 1.0, min_distance=0, max_drift=2.0)
    assert loose.status[0] == 0
    assert 1.0 < np.linalg.norm(loose.positions_voxels[0] - c) < 2.0
    # The Gaussian fit applies the same rule.
    assert trace_atoms(vol, 1.0, min_distance=0, fit="gaussian", max_drift=1.0).status[0] == 2


def test_local_maxima_match_a_maximum_filter(rng):
    vol = rng.random((20, 23, 26), dtype=np.float32)
    vox, val = local_maxima(vol, 0.3)
    ref = (vol == maximum_filter(vol, size=3, mode="constant", cval=-np.inf)) & (vol > 0.3)
    assert len(vox) == ref.sum()
    assert ref[tuple(vox.T)].all()
    assert np.all(np.diff(val) <= 0)


def test_same_result_for_any_thread_count(atoms_volume, rng):
    _, vol = atoms_volume
    noisy = vol + 0.05 * rng.standard_normal(vol.shape).astype(np.float32)
    for fit in ("polynomial", "gaussian"):
        a = trace_atoms(noisy, PIXEL, fit=fit, threads=1)
        b = trace_atoms(noisy, PIXEL, fit=fit, threads=2)
        assert len(a) > 40  # noise maxima too
        for f in ("positions", "voxel", "intensity", "status"):
            np.testing.assert_array_equal(getattr(a, f), getattr(b, f))
    np.testing.assert_array_equal(local_maxima(noisy, 0.1, threads=1)[0], local_maxima(noisy, 0.1, threads=2)[0])


def test_bad_input_is_refused(atoms_volume):
    _, vol = atoms_volume
    cases = [
        (dict(volume=vol[0]), ValueError, "volume"),
        (dict(volume="vol"), TypeError, "volume"),
        (dict(volume=np.full((5, 5, 5), np.nan)), ValueError, "volume"),
        (dict(volume=np.zeros((2, 5, 5))), ValueError, "volume"),
        (dict(pixel_size=-0.3), ValueError, "pixel_size"),
        (dict(pixel_size="0.3"), TypeError, "pixel_size"),
        (dict(threshold="high"), TypeError, "threshold"),
        (dict(threshold=np.inf), ValueError, "threshold"),
        (dict(max_atoms=0), ValueError, "max_atoms"),
        (dict(max_atoms=2.5), TypeError, "max_atoms"),
        (dict(min_distance=-1.0), ValueError, "min_distance"),
        (dict(fit="cubic"), ValueError, "fit"),
        (dict(max_drift=0), ValueError, "max_drift"),
        (dict(fit_radius=1), ValueError, "fit_radius"),
        (dict(threads=0), ValueError, "threads"),
    ]
    for kw, exc, name in cases:
        args = dict(volume=vol, pixel_size=PIXEL)
        args.update(kw)
        with pytest.raises(exc, match=name):
            trace_atoms(args.pop("volume"), args.pop("pixel_size"), **args)


def test_auto_support_drops_peaks_outside_the_particle():
    from aetcore.model.projection import render_atoms

    rng = np.random.default_rng(11)
    g = np.arange(-2, 3) * 2.8
    pos = np.stack(np.meshgrid(g, g, g, indexing="ij"), -1).reshape(-1, 3)  # a compact cluster
    vol = render_atoms(pos, ["Pt"] * len(pos), (48, 48, 48), 0.4)
    vol[3, 4, 5] = 0.5 * vol.max()  # a hot voxel far from the particle
    vol += rng.normal(0, 1e-3, vol.shape).astype(np.float32)
    everything = trace_atoms(vol, 0.4)
    inside = trace_atoms(vol, 0.4, support="auto")
    assert len(everything) == len(pos) + 1
    assert len(inside) == len(pos)
    assert not np.any(np.all(inside.voxel == [3, 4, 5], axis=1))
    with pytest.raises(ValueError, match="support"):
        trace_atoms(vol, 0.4, support="sphere")


@pytest.mark.parametrize("fit", ["polynomial", "gaussian"])
def test_fit_out_of_iterations_did_not_converge(fit):
    # An off-centre Gaussian peak: one iteration cannot reach the fitted maximum (status 3, the voxel
    # maximum is kept); the default limit converges to the true centre.
    c, (z, y, x) = grid()
    true = np.array([c + 0.17, c - 0.31, c + 0.23])  # (z, y, x)
    vol = np.exp(-((x - 0.23) ** 2 + (y + 0.31) ** 2 + (z - 0.17) ** 2) / (2 * 1.2 ** 2)).astype(np.float32)
    r = trace_atoms(vol, 1.0, min_distance=0, fit=fit, max_iterations=1)
    assert len(r) == 1 and r.status[0] == 3 and STATUS[3] == "did not converge"
    np.testing.assert_array_equal(r.positions_voxels[0], [c, c, c])
    ok = trace_atoms(vol, 1.0, min_distance=0, fit=fit)
    assert ok.status[0] == 0
    np.testing.assert_allclose(ok.positions_voxels[0], true, atol=0.05 if fit == "polynomial" else 1e-3)
    with pytest.raises(ValueError, match="max_iterations"):
        trace_atoms(vol, 1.0, max_iterations=0)


def test_default_drift_limit_keeps_noisy_light_atoms_fitted():
    # Noisy FePt (2 % Gaussian noise): with max_drift = 1 voxel ~8 % of the atoms (faint Fe whose voxel
    # maximum is a noise voxel) keep their voxel position; the default 1.5 fits them.
    from aetcore.quality.scoring import match_atoms
    from aetcore.model.simulate import fept_particle, ground_truth_volume
    p = fept_particle(10, orientation="random", seed=4)
    vol = ground_truth_volume(p.positions, p.species, (64,) * 3, 0.4, threads=1)
    vol = vol + np.random.default_rng(1).normal(0, 0.02 * vol.max(), vol.shape).astype(np.float32)
    res = {}
    for fit, md in (("polynomial", 1.0), ("polynomial", None), ("gaussian", None)):
        kw = {} if md is None else {"max_drift": md}
        tr = trace_atoms(vol, 0.4, fit=fit, threads=1, **kw)
        m = match_atoms(p.positions, p.species, tr.positions, p.species[:0].tolist() + ["Pt"] * len(tr))
        res[fit, md] = (m.recall, m.rmsd_pm, float(np.mean(tr.status == 2)))
    print(res)
    assert res["polynomial", 1.0][2] > 0.05 and res["polynomial", None][2] < 0.01
    assert all(r[0] == 1.0 for r in res.values())
    assert res["polynomial", None][1] < 10.0 < res["polynomial", 1.0][1]
    assert res["gaussian", None][1] < 5.0


def test_fit_beyond_the_border_keeps_its_voxel_and_classify_accepts_it():
    # An atom centred 0.9 voxel outside the volume (x = -0.9): its voxel maximum is x = 0 and the
    # Gaussian fit, within max_drift, lands beyond the border (the raw core returns x = -0.9). Trace keeps the voxel (status 4), so the set it hands
    # to classify lies inside the volume; `aet run` died on such atoms in 2 of 4 raw series before.
    from aetcore.steps.classify import classify

    shape = (16, 16, 16)
    z, y, x = np.meshgrid(*[np.arange(n, dtype=np.float64) for n in shape], indexing="ij")
    centres = [(8.0, 8.0, -0.9), (8.0, 4.0, 8.0), (4.0, 11.0, 11.0), (11.0, 11.0, 4.0)]
    vol = sum(np.exp(-((z - cz) ** 2 + (y - cy) ** 2 + (x - cx) ** 2) / (2 * 1.2 ** 2)) for cz, cy, cx in centres)
    vol = vol.astype(np.float32)
    raw = trace_atoms(vol, 0.5, min_distance=1.0, max_drift=3.0, fit="gaussian")
    assert len(raw) == 4
    edge = np.argmin(raw.positions_voxels[:, 2])
    assert raw.status[edge] == 4 and STATUS[4] == "left the volume"
    np.testing.assert_array_equal(raw.positions_voxels[edge], raw.voxel[edge])
    assert raw.voxel[edge][2] == 0
    inner = np.delete(np.arange(4), edge)
    assert np.all(raw.status[inner] == 0)
    assert np.all((raw.positions_voxels > -0.5) & (raw.positions_voxels < np.array(shape) - 0.5))
    cls = classify(vol, raw.positions, ["Pt"], pixel_size=0.5)
    assert cls.labels.shape == (4,)
