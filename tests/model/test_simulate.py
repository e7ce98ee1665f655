"""Tests of aetcore.simulate against ground truth and independent computations."""
import numpy as np
import pytest
from scipy import ndimage
from scipy.spatial import cKDTree
from scipy.spatial.transform import Rotation

from aetcore.model import simulate
from aetcore.model.projection import atom_model, project_atoms

A = 3.89
NN = A / np.sqrt(2)


def nn_dist(pos):
    d, _ = cKDTree(pos).query(pos, k=2)
    return d[:, 1]


def interior(pos, radius, margin):
    return np.linalg.norm(pos, axis=1) < radius - margin


# ------------------------------------------------------------------------------------------- fcc
@pytest.mark.parametrize("radius", [20.0, 25.0])
def test_fcc_lattice_geometry(radius):
    pos = simulate.fcc_particle(A, radius)
    assert pos.shape[1] == 3 and pos.dtype == np.float64
    np.testing.assert_allclose(pos.mean(axis=0), 0.0, atol=1e-9)
    assert np.linalg.norm(pos, axis=1).max() <= radius + 1e-9
    inner = interior(pos, radius, A)
    assert inner.sum() > 50
    np.testing.assert_allclose(nn_dist(pos)[inner], NN, rtol=1e-9)
    tree = cKDTree(pos)
    coord = np.array([len(n) - 1 for n in tree.query_ball_point(pos[inner], 1.1 * NN)])
    assert np.all(coord == 12)
    # second shell at a: 6 neighbours
    second = np.array([len(n) for n in tree.query_ball_point(pos[inner], 1.05 * A)]) - 1 - 12
    assert np.all(second == 6)
    expected = 4 * (4 / 3 * np.pi * radius ** 3) / A ** 3
    assert abs(pos.shape[0] / expected - 1) < 0.03  # surface fluctuations are ~1-2 % at these radii


@pytest.mark.parametrize("m", [1, 2, 3, 4])
def test_cuboctahedron_magic_numbers(m):
    # a closed-shell cuboctahedron of m shells has 10m^3/3 + 5m^2 + 11m/3 + 1 atoms
    pos = simulate.fcc_particle(A, m * NN, shape="cuboctahedron")
    assert pos.shape[0] == (10 * m ** 3 + 15 * m ** 2 + 11 * m + 3) // 3
    assert np.linalg.norm(pos, axis=1).max() == pytest.approx(m * NN)


def test_fcc_orientation_and_thermal():
    base = simulate.fcc_particle(A, 10.0)
    R = Rotation.from_euler("ZYZ", [20, 30, 40], degrees=True).as_matrix()
    np.testing.assert_allclose(simulate.fcc_particle(A, 10.0, orientation=R), base @ R.T, atol=1e-12)
    rnd = simulate.fcc_particle(A, 10.0, orientation="random", seed=3)
    # a rotation keeps every distance from the centre and the lattice
    np.testing.assert_allclose(np.sort(np.linalg.norm(rnd, axis=1)), np.sort(np.linalg.norm(base, axis=1)),
                               atol=1e-9)
    assert not np.allclose(rnd, base)
    np.testing.assert_array_equal(rnd, simulate.fcc_particle(A, 10.0, orientation="random", seed=3))
    hot = simulate.fcc_particle(A, 20.0, thermal=0.1, seed=1)
    d = hot - simulate.fcc_particle(A, 20.0)
    n = d.size
    assert abs(np.sqrt(np.mean(d ** 2)) / 0.1 - 1) < 4 / np.sqrt(2 * n)
    assert abs(d.mean()) < 4 * 0.1 / np.sqrt(n)


def test_pt_particle():
    pos, sp = simulate.pt_particle(10.0)
    assert set(sp) == {"Pt"} and sp.shape == (pos.shape[0],)
    np.testing.assert_allclose(nn_dist(pos)[interior(pos, 10.0, 4)], simulate.PT_LATTICE_CONSTANT / np.sqrt(2))


# ------------------------------------------------------------------------------------------ FePt
@pytest.mark.parametrize("axis", ["x", "y", "z"])
def test_l10_neighbours(axis):
    pos, sp, phase = simulate.fept_particle(15.0, domains=("L10",), l10_axis=axis, seed=0)
    assert set(phase) == {"L10"}
    ax = "xyz".index(axis)
    inner = np.flatnonzero(interior(pos, 15.0, 4.0))
    nb = cKDTree(pos).query_ball_point(pos[inner], 1.1 * simulate.FEPT_LATTICE_CONSTANT / np.sqrt(2))
    for i, lst in zip(inner, nb):
        lst = [j for j in lst if j != i]
        same = [j for j in lst if sp[j] == sp[i]]
        assert len(lst) == 12 and len(same) == 4
        # like neighbours lie in the same (001) plane normal to the variant axis
        np.testing.assert_allclose(pos[same, ax], pos[i, ax], atol=1e-9)
    assert abs(np.mean(sp == "Pt") - 0.5) < 0.05


def test_domains_voronoi_structure():
    p = simulate.fept_particle(20.0, seed=7)
    pos, sp, phase = p
    assert set(phase) == {"L10", "L12", "A1"}
    counts = {d: np.sum(phase == d) for d in ("L10", "L12", "A1")}
    assert min(counts.values()) > 0.1 * pos.shape[0]
    tree = cKDTree(pos)
    nb = tree.query_ball_point(pos, 1.1 * simulate.FEPT_LATTICE_CONSTANT / np.sqrt(2))
    deep = np.array([len(n) == 13 and np.all(phase[n] == phase[i]) for i, n in enumerate(nb)])
    # L1_0 deep inside its domain: Fe has 4 Fe + 8 Pt neighbours
    fe_l10 = np.flatnonzero(deep & (phase == "L10") & (sp == "Fe"))
    assert fe_l10.size > 20
    for i in fe_l10:
        assert np.sum(sp[nb[i]] == "Fe") - 1 == 4
    # L1_2 FePt3: every Fe surrounded by 12 Pt; composition about 25/75
    fe_l12 = np.flatnonzero(deep & (phase == "L12") & (sp == "Fe"))
    assert fe_l12.size > 10
    assert all(np.sum(sp[nb[i]] == "Pt") == 12 for i in fe_l12)
    assert abs(np.mean(sp[phase == "L12"] == "Pt") - 0.75) < 0.03


def test_l12_variant_and_slabs():
    pos, sp, phase = simulate.fept_particle(15.0, domains=("L12", "A1"), partition="slabs", l12="Fe3Pt")
    np.testing.assert_array_equal(phase == "L12", pos[:, 0] < 0)
    assert abs(np.mean(sp[phase == "L12"] == "Fe") - 0.75) < 0.03


@pytest.mark.parametrize("frac", [0.2, 0.5, 0.8])
def test_a1_composition(frac):
    pos, sp, phase = simulate.fept_particle(20.0, domains=("A1",), pt_fraction=frac, seed=11)
    n = sp.size
    assert abs(np.mean(sp == "Pt") - frac) < 4 * np.sqrt(frac * (1 - frac) / n)


def test_antisite_fraction():
    ref = simulate.fept_particle(15.0, seed=5)
    for f in (0.02, 0.1):
        d = simulate.fept_particle(15.0, antisite=f, seed=5)
        np.testing.assert_array_equal(d.positions, ref.positions)
        np.testing.assert_array_equal(d.phase, ref.phase)
        n = ref.species.size
        changed = np.sum(d.species != ref.species)
        assert changed == 2 * round(f * n / 2)
        assert np.sum(d.species == "Pt") == np.sum(ref.species == "Pt")


def test_fept_seeds_orientation_thermal():
    a = simulate.fept_particle(12.0, orientation="random", thermal=0.05, seed=1)
    b = simulate.fept_particle(12.0, orientation="random", thermal=0.05, seed=np.random.default_rng(1))
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    c = simulate.fept_particle(12.0, orientation="random", thermal=0.05, seed=2)
    assert not np.allclose(a.positions, c.positions)
    assert np.any(a.species != c.species) or np.any(a.phase != c.phase)
    # random rotation + displacement of the unrotated particle: same distances from the centre
    flat = simulate.fept_particle(12.0, seed=1)
    np.testing.assert_allclose(np.sort(np.linalg.norm(a.positions, axis=1)),
                               np.sort(np.linalg.norm(flat.positions, axis=1)), atol=0.5)
    np.testing.assert_array_equal(np.sort(a.species), np.sort(flat.species))


# ------------------------------------------------------------------------------------ tilt series
@pytest.fixture(scope="module")
def particle():
    return simulate.fept_particle(8.0, seed=0)[:2]


SHAPE = (48, 48)
PIX = 0.6


def com(img):
    y, x = np.indices(img.shape[-2:])
    w = img.astype(np.float64)
    s = w.sum(axis=(-2, -1))
    return np.stack([(w * y).sum(axis=(-2, -1)) / s, (w * x).sum(axis=(-2, -1)) / s], axis=-1)


def test_noiseless_equals_projector(particle):
    pos, sp = particle
    ang = simulate.angles_range(-60, 60, 7)
    s = simulate.tilt_series(pos, sp, ang, SHAPE, PIX, threads=1)
    ref = project_atoms(pos, sp, ang, SHAPE, PIX, threads=1)
    np.testing.assert_array_equal(s.tilts, ref)
    np.testing.assert_array_equal(s.clean, ref)
    assert s.tilts.dtype == np.float32 and s.tilts.flags.c_contiguous
    assert s.angles.shape == (7, 3) and np.all(s.shifts == 0) and s.count_scale is None
    tot = s.clean.sum(axis=(1, 2), dtype=np.float64)
    np.testing.assert_allclose(tot, tot.mean(), rtol=1e-3)
    # ground truth volume is consistent with the theta = 0 projection
    vol = simulate.ground_truth_volume(pos, sp, (48,) + SHAPE, PIX)
    assert vol.shape == (48, 48, 48) and vol.dtype == np.float32
    np.testing.assert_allclose(vol.sum(axis=0), s.clean[3], atol=1e-4 * s.clean.max())


def test_dose_statistics(particle):
    pos, sp = particle
    ang = np.array([-40.0, 0.0, 25.0, 60.0])
    dose = 2.0e4
    s = simulate.tilt_series(pos, sp, ang, SHAPE, PIX, dose=dose, seed=4)
    c = s.clean.astype(np.float64)
    scale = dose * PIX ** 2 / c.mean()
    assert s.count_scale == pytest.approx(scale)
    counts = s.tilts.astype(np.float64) * scale
    # whole electron counts, up to float32 rounding of the stored image
    np.testing.assert_allclose(counts, np.rint(counts), rtol=0, atol=4e-7 * counts.max() + 1e-3)
    assert counts.mean() == pytest.approx(dose * PIX ** 2, rel=0.01)
    r = s.tilts - c
    n = r.size
    # mean: unbiased, standard error sqrt(sum(c) / scale) / n
    assert abs(r.mean()) < 5 * np.sqrt(c.sum() / scale) / n
    # variance: Poisson, Var = c / scale per pixel; sum r^2 has std ~ sqrt(2 sum c^2) / scale
    ratio = (r ** 2).sum() / (c.sum() / scale)
    assert abs(ratio - 1) < 5 * np.sqrt(2 * (c ** 2).sum()) / c.sum()
    # four times the dose, a quarter of the variance
    s4 = simulate.tilt_series(pos, sp, ang, SHAPE, PIX, dose=4 * dose, seed=5)
    ratio4 = ((s4.tilts - c) ** 2).sum() / ((r ** 2).sum())
    assert ratio4 == pytest.approx(0.25, rel=0.1)


def test_read_noise_and_background(particle):
    pos, sp = particle
    s = simulate.tilt_series(pos, sp, [0.0, 30.0], SHAPE, PIX, read_noise=0.05, background=0.3, seed=1)
    r = (s.tilts - s.clean).astype(np.float64)
    n = r.size
    assert abs(r.mean() - 0.3) < 5 * 0.05 / np.sqrt(n)
    assert abs(r.std() / 0.05 - 1) < 5 / np.sqrt(2 * n)


def test_shifts_move_centre_of_mass(particle):
    pos, sp = particle
    ang = np.array([-50.0, 0.0, 35.0])
    sh = np.array([[1.5, -2.25], [0.0, 3.7], [-2.6, 0.4]])
    s = simulate.tilt_series(pos, sp, ang, SHAPE, PIX, shifts=sh)
    np.testing.assert_array_equal(s.shifts, sh)
    np.testing.assert_allclose(com(s.tilts) - com(s.clean), sh, atol=1e-4)
    # same sign convention as scipy.ndimage.shift
    for k in range(3):
        ref = ndimage.shift(s.clean[k].astype(np.float64), sh[k], order=3)
        assert np.abs(ref - s.tilts[k]).max() < 0.05 * s.clean[k].max()
        # the alignment shift that undoes it is the negative
        back = ndimage.shift(s.tilts[k].astype(np.float64), -sh[k], order=3)
        assert np.abs(back - s.clean[k]).max() < 0.05 * s.clean[k].max()
    r = simulate.tilt_series(pos, sp, ang, SHAPE, PIX, shifts="random", max_shift=2.0, seed=9)
    assert np.all(np.abs(r.shifts) <= 2.0) and np.any(r.shifts != 0)
    np.testing.assert_allclose(com(r.tilts) - com(r.clean), r.shifts, atol=1e-4)


def test_frames_and_drift(particle):
    pos, sp = particle
    ang = np.array([-30.0, 20.0])
    drift = np.array([0.5, -0.75])
    s = simulate.tilt_series(pos, sp, ang, SHAPE, PIX, n_frames=4, drift=drift, shifts=[[1.0, 0.0], [0.0, -1.0]])
    assert s.tilts.shape == (2, 4) + SHAPE
    expected = s.shifts[:, None, :] + np.arange(4)[None, :, None] * drift
    np.testing.assert_allclose(s.frame_shifts, expected)
    np.testing.assert_allclose(com(s.tilts) - com(s.clean)[:, None, :], expected, atol=1e-4)
    # a drift speed: every angle drifts by that many pixels per frame, in its own direction
    v = simulate.tilt_series(pos, sp, ang, SHAPE, PIX, n_frames=3, drift=0.8, seed=2)
    step = np.diff(com(v.tilts), axis=1)
    np.testing.assert_allclose(np.linalg.norm(step, axis=-1), 0.8, atol=1e-4)
    # the dose is split across frames: each frame has n_frames times the Poisson variance
    d = simulate.tilt_series(pos, sp, ang, SHAPE, PIX, n_frames=4, dose=1e4, seed=3)
    d1 = simulate.tilt_series(pos, sp, ang, SHAPE, PIX, dose=1e4, seed=3)
    assert d.count_scale == pytest.approx(d1.count_scale / 4)
    var4 = ((d.tilts - d.clean[:, None]) ** 2).mean()
    var1 = ((d1.tilts - d1.clean) ** 2).mean()
    assert var4 / var1 == pytest.approx(4, rel=0.1)
    # independent noise per frame
    assert not np.array_equal(d.tilts[:, 0], d.tilts[:, 1])


def test_series_seeded(particle):
    pos, sp = particle
    kw = dict(dose=1e3, read_noise=0.01, shifts="random", n_frames=2, drift=0.3)
    a = simulate.tilt_series(pos, sp, [0.0, 10.0], SHAPE, PIX, seed=8, **kw)
    b = simulate.tilt_series(pos, sp, [0.0, 10.0], SHAPE, PIX, seed=8, **kw)
    c = simulate.tilt_series(pos, sp, [0.0, 10.0], SHAPE, PIX, seed=9, **kw)
    np.testing.assert_array_equal(a.tilts, b.tilts)
    np.testing.assert_array_equal(a.shifts, b.shifts)
    assert not np.array_equal(a.tilts, c.tilts)


def test_model_is_used(particle):
    pos, sp = particle
    m = atom_model(("Fe", "Pt"), heights={"Fe": 1.0, "Pt": 2.0})
    s = simulate.tilt_series(pos, sp, [0.0], SHAPE, PIX, model=m)
    np.testing.assert_array_equal(s.clean, project_atoms(pos, sp, [0.0], SHAPE, PIX, model=m))
    vol = simulate.ground_truth_volume(pos, sp, (48,) + SHAPE, PIX, model=m)
    np.testing.assert_allclose(vol.sum(axis=0), s.clean[0], atol=1e-4 * s.clean.max())
    default = simulate.ground_truth_volume(pos, sp, (48,) + SHAPE, PIX)
    assert vol.sum() > 1.5 * default.sum()  # heights Fe 1, Pt 2 instead of the defaults 0.15, 1


# -------------------------------------------------------------------------------------- angles
def test_angles_range():
    np.testing.assert_allclose(simulate.angles_range(), np.linspace(-70, 70, 51))
    u = simulate.angles_range(-60, 60, 41, uneven=0.5, seed=3)
    step = 3.0
    assert u[0] == -60 and u[-1] == 60
    d = np.diff(u)
    assert np.all(d >= 0.5 * step - 1e-12) and np.all(d <= 1.5 * step + 1e-12)
    assert d.std() > 0.1
    np.testing.assert_array_equal(u, simulate.angles_range(-60, 60, 41, uneven=0.5, seed=3))
    assert simulate.angles_range(5, 5, 1).tolist() == [5.0]


# ------------------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("kwargs, exc, name", [
    (dict(a=-1.0), ValueError, "a"),
    (dict(radius=0.0), ValueError, "radius"),
    (dict(radius="big"), TypeError, "radius"),
    (dict(shape="cube"), ValueError, "shape"),
    (dict(orientation="sideways"), ValueError, "orientation"),
    (dict(orientation=np.eye(2)), ValueError, "orientation"),
    (dict(orientation=2 * np.eye(3)), ValueError, "orientation"),
    (dict(orientation=np.diag([1.0, 1.0, -1.0])), ValueError, "orientation"),
    (dict(thermal=-0.1), ValueError, "thermal"),
    (dict(seed="x"), TypeError, "seed"),
])
def test_fcc_bad_input(kwargs, exc, name):
    with pytest.raises(exc, match=name):
        simulate.fcc_particle(**kwargs)


@pytest.mark.parametrize("kwargs, exc, name", [
    (dict(domains=("L10", "B2")), ValueError, "domains"),
    (dict(domains=()), ValueError, "domains"),
    (dict(domains="L10"), TypeError, "domains"),
    (dict(partition="cells"), ValueError, "partition"),
    (dict(l10_axis="w"), ValueError, "l10_axis"),
    (dict(l12="FePt"), ValueError, "l12"),
    (dict(pt_fraction=1.5), ValueError, "pt_fraction"),
    (dict(antisite=-0.1), ValueError, "antisite"),
    (dict(antisite=0.99, domains=("L12",)), ValueError, "antisite"),
    (dict(radius=float("nan")), ValueError, "radius"),
])
def test_fept_bad_input(kwargs, exc, name):
    with pytest.raises(exc, match=name):
        simulate.fept_particle(**{"radius": 8.0, **kwargs})


def test_tilt_series_bad_input(particle):
    pos, sp = particle
    ok = dict(positions=pos, species=sp, angles=[0.0, 10.0], shape=(16, 16), pixel_size=1.0)

    def call(**kw):
        args = {**ok, **kw}
        return simulate.tilt_series(args.pop("positions"), args.pop("species"), args.pop("angles"),
                                    args.pop("shape"), args.pop("pixel_size"), **args)

    bad_pos = pos.copy()
    bad_pos[0, 0] = np.nan
    cases = [
        (dict(positions=pos[:, :2]), ValueError, "positions"),
        (dict(positions=bad_pos), ValueError, "positions"),
        (dict(positions="atoms"), TypeError, "positions"),
        (dict(species=sp[:-1]), ValueError, "species"),
        (dict(angles=np.array(["a"])), TypeError, "angles"),
        (dict(angles=[np.nan]), ValueError, "angles"),
        (dict(shape=(16,)), ValueError, "shape"),
        (dict(shape=(16, 0)), ValueError, "shape"),
        (dict(pixel_size=0.0), ValueError, "pixel_size"),
        (dict(pixel_size=-1.0), ValueError, "pixel_size"),
        (dict(dose=-5.0), ValueError, "dose"),
        (dict(read_noise=-1.0), ValueError, "read_noise"),
        (dict(background="x"), TypeError, "background"),
        (dict(shifts="sometimes"), ValueError, "shifts"),
        (dict(shifts=np.zeros((3, 2))), ValueError, "shifts"),
        (dict(shifts=[[0.0, np.nan], [0.0, 0.0]]), ValueError, "shifts"),
        (dict(max_shift=-1.0), ValueError, "max_shift"),
        (dict(n_frames=0), ValueError, "n_frames"),
        (dict(n_frames=2.5), TypeError, "n_frames"),
        (dict(drift=-1.0), ValueError, "drift"),
        (dict(drift=np.zeros(3)), ValueError, "drift"),
        (dict(model="Pt"), TypeError, "model"),
        (dict(threads=0), ValueError, "threads"),
        (dict(seed=1.5), TypeError, "seed"),
    ]
    for kw, exc, name in cases:
        with pytest.raises(exc, match=name):
            call(**kw)


@pytest.mark.parametrize("kwargs, exc, name", [
    (dict(n=0), ValueError, "n"),
    (dict(uneven=1.0), ValueError, "uneven"),
    (dict(start=float("nan")), ValueError, "start"),
    (dict(stop=720.0), ValueError, "stop"),
])
def test_angles_range_bad_input(kwargs, exc, name):
    with pytest.raises(exc, match=name):
        simulate.angles_range(**kwargs)
