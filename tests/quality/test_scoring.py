"""Tests of aetcore.scoring against constructed ground truth and hand computations."""
import time

import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment

from aetcore.quality import scoring
from aetcore.quality.scoring import literature_protocol, match_atoms

SPACING = 2.5  # Å, simple cubic test lattice: every atom 2.5 Å from its neighbours


def lattice(n, spacing=SPACING):
    """n points of a simple cubic lattice (Å), centred on the origin, with alternating Fe/Pt."""
    k = int(np.ceil(n ** (1 / 3)))
    g = np.arange(k) * spacing
    p = np.stack(np.meshgrid(g, g, g, indexing="ij"), -1).reshape(-1, 3)[:n]
    p = p - p.mean(axis=0)
    ijk = np.rint((p - p.min(axis=0)) / spacing).astype(int)
    species = np.where(ijk.sum(axis=1) % 2 == 0, "Fe", "Pt")
    return p, species


# ------------------------------------------------------------------------------------ basic cases
def test_identical_sets():
    p, s = lattice(500)
    for register in (True, False):
        r = match_atoms(p, s, p, s, register=register)
        assert r.recall == 1.0 and r.precision == 1.0
        assert r.rmsd_pm == pytest.approx(0.0, abs=1e-9)
        np.testing.assert_allclose(r.rmsd_axes_pm, 0.0, atol=1e-9)
        np.testing.assert_allclose(r.translation, 0.0, atol=1e-12)
        np.testing.assert_array_equal(r.pairs, np.stack([np.arange(500)] * 2, axis=1))
        assert r.species_accuracy == 1.0
        assert r.n_truth == r.n_traced == r.n_matched == 500


def test_gaussian_displacement_rmsd(rng):
    """Per-axis N(0, sigma^2) displacements: |d|^2 = sigma^2 chi^2_3, so E[MSD] = 3 sigma^2 and
    Var[MSD] = 6 sigma^4 / n; the RMSD = 100 sqrt(MSD) pm has relative sd ~ sqrt(6/n) / 3 / 2
    (~0.9 % for n = 2000). Per axis: E = sigma^2, relative sd of the RMSD ~ 1/sqrt(2n) (~1.6 %).
    Tolerances are 4 sd. With registration the mean displacement is removed, so
    E[MSD] = 3 sigma^2 (n - 1) / n."""
    n, sigma = 2000, 0.1
    p, s = lattice(n)
    d = rng.normal(0.0, sigma, p.shape)
    q = p + d
    expected = 100.0 * np.sqrt(3) * sigma  # 17.32 pm
    rel_sd = np.sqrt(6.0 / n) / 3.0 / 2.0
    rel_sd_axis = 1.0 / np.sqrt(2.0 * n)

    r = match_atoms(p, s, q, s, register=False)
    assert r.recall == 1.0 and r.precision == 1.0
    # exact against the displacements that were drawn
    assert r.rmsd_pm == pytest.approx(100.0 * np.sqrt((d ** 2).sum(axis=1).mean()), rel=1e-12)
    np.testing.assert_allclose(r.rmsd_axes_pm, 100.0 * np.sqrt((d ** 2).mean(axis=0)), rtol=1e-12)
    assert r.rmsd_pm ** 2 == pytest.approx((r.rmsd_axes_pm ** 2).sum(), rel=1e-12)
    # and against the analytic expectation
    assert r.rmsd_pm == pytest.approx(expected, rel=4 * rel_sd)
    np.testing.assert_allclose(r.rmsd_axes_pm, 100.0 * sigma, rtol=4 * rel_sd_axis)

    rr = match_atoms(p, s, q, s, register=True)
    assert rr.recall == 1.0
    np.testing.assert_allclose(rr.translation, -d.mean(axis=0), atol=1e-12)
    dc = d - d.mean(axis=0)
    assert rr.rmsd_pm == pytest.approx(100.0 * np.sqrt((dc ** 2).sum(axis=1).mean()), rel=1e-10)
    assert rr.rmsd_pm == pytest.approx(expected * np.sqrt((n - 1) / n), rel=4 * rel_sd)


def test_translation_recovered():
    p, s = lattice(2000)
    shift = np.array([0.7, -0.4, 0.3])
    # exact positions, shifted, with 20 true atoms missing and 20 spurious ones (cube centres)
    keep = np.ones(2000, bool)
    keep[np.arange(0, 2000, 100)] = False
    extra = p[:20] + SPACING / 2
    q = np.vstack([p[keep], extra]) + shift
    r = match_atoms(p, s, q, register=True)
    np.testing.assert_allclose(r.translation, -shift, atol=1e-3)
    np.testing.assert_allclose(r.translation, -shift, atol=1e-9)  # exact data: exact answer
    assert r.recall == 1980 / 2000 and r.precision == 1980 / 2000
    assert r.rmsd_pm == pytest.approx(0.0, abs=1e-7)
    # without registration the same atoms pair (|shift| = 0.86 Å < 1 Å) but the RMSD is the shift
    r0 = match_atoms(p, s, q, register=False)
    assert r0.recall == r.recall
    assert r0.rmsd_pm == pytest.approx(100 * np.linalg.norm(shift), rel=1e-9)
    np.testing.assert_array_equal(r0.translation, 0.0)


def test_translation_beyond_max_distance(rng):
    """A shift larger than max_distance (no pair at all without registration) is still found."""
    p, s = lattice(1000)
    shift = np.array([1.1, -0.9, 0.6])  # 1.54 Å
    r0 = match_atoms(p, s, p + shift, register=False)
    assert r0.recall == 0.0 and r0.pairs.shape == (0, 2) and np.isnan(r0.rmsd_pm)
    r = match_atoms(p, s, p + shift)
    np.testing.assert_allclose(r.translation, -shift, atol=1e-9)
    assert r.recall == 1.0
    # with noise: the translation is the mean of n noisy differences, sd sigma / sqrt(n) per axis
    sigma = 0.1
    d = rng.normal(0, sigma, p.shape)
    r = match_atoms(p, s, p + shift + d)
    np.testing.assert_allclose(r.translation, -shift, atol=4 * sigma / np.sqrt(1000))
    assert r.recall == 1.0


def test_missing_and_extra_atoms(rng):
    p, s = lattice(2000)
    missing = rng.choice(2000, 37, replace=False)
    keep = np.setdiff1d(np.arange(2000), missing)
    extra = p[rng.choice(2000, 23, replace=False)] + SPACING / 2  # 2.17 Å from every true atom
    q = np.vstack([p[keep] + rng.normal(0, 0.05, (keep.size, 3)), extra])
    perm = rng.permutation(q.shape[0])
    r = match_atoms(p, s, q[perm])
    assert r.n_matched == 1963
    assert r.recall == 1963 / 2000
    assert r.precision == 1963 / (1963 + 23)
    # the pairs are the constructed ones
    truth_of_traced = np.concatenate([keep, np.full(23, -1)])[perm]
    np.testing.assert_array_equal(truth_of_traced[r.pairs[:, 1]], r.pairs[:, 0])
    assert np.all(np.diff(r.pairs[:, 0]) > 0)
    fe = s == "Fe"
    assert r.recall_by_species["Fe"] == pytest.approx(np.isin(np.nonzero(fe)[0], keep).mean())
    assert r.recall_by_species["Pt"] == pytest.approx(np.isin(np.nonzero(~fe)[0], keep).mean())


def test_empty_trace():
    p, s = lattice(10)
    r = match_atoms(p, s, np.empty((0, 3)), [])
    assert r.recall == 0.0 and np.isnan(r.precision) and np.isnan(r.rmsd_pm)
    assert r.pairs.shape == (0, 2) and r.n_traced == 0
    assert "recall" in r.summary()


# -------------------------------------------------------------------------------------- species
def test_species_accuracy_and_confusion(rng):
    n = 2000
    p, s = lattice(n)
    swapped = rng.choice(n, n // 20, replace=False)  # exactly 5 %
    t = s.copy()
    t[swapped] = np.where(s[swapped] == "Fe", "Pt", "Fe")
    perm = rng.permutation(n)
    q = p + rng.normal(0, 0.05, p.shape)
    r = match_atoms(p, list(s), q[perm], list(t[perm]))
    assert r.species_accuracy == 0.95
    assert r.species_labels == ("Fe", "Pt")
    expected = np.zeros((2, 2), int)
    for a, b in zip(s, t):  # hand count, rows truth, columns traced
        expected[int(a == "Pt"), int(b == "Pt")] += 1
    np.testing.assert_array_equal(r.confusion, expected)
    assert r.confusion.sum() == n and np.trace(r.confusion) == n - n // 20
    r2 = match_atoms(p, s, q[perm], t[perm], species_order=["Pt", "Fe"])
    assert r2.species_labels == ("Pt", "Fe")
    np.testing.assert_array_equal(r2.confusion, expected[::-1, ::-1])
    # a species only in the trace gets its own column
    t3 = t[perm].copy()
    t3[:3] = "Au"
    r3 = match_atoms(p, s, q[perm], t3)
    assert r3.species_labels == ("Au", "Fe", "Pt")
    assert r3.confusion[:, 0].sum() == 3 and r3.confusion[0].sum() == 0
    assert "species accuracy 0.9500" in r.summary()
    # without traced species there is no species score
    r4 = match_atoms(p, s, q)
    assert r4.species_accuracy is None and r4.confusion is None


# ------------------------------------------------------------------------------ one-to-one rules
def test_closer_traced_atom_wins():
    truth = np.array([[0.0, 0, 0], [10.0, 0, 0]])
    traced = np.array([[0.0, -0.6, 0], [0.3, 0, 0], [10.0, 0.2, 0]])
    r = match_atoms(truth, ["Pt", "Pt"], traced, ["Pt", "Fe", "Pt"], register=False)
    np.testing.assert_array_equal(r.pairs, [[0, 1], [1, 2]])
    assert r.recall == 1.0 and r.precision == 2 / 3
    assert r.rmsd_pm == pytest.approx(100 * np.sqrt((0.3 ** 2 + 0.2 ** 2) / 2))
    assert r.species_accuracy == 0.5


def test_more_pairs_beat_shorter_pairs():
    """Traced A sits between two true atoms, traced B next to the first: both get a partner."""
    truth = np.array([[0.0, 0, 0], [1.6, 0, 0]])
    traced = np.array([[0.75, 0, 0], [0.1, 0, 0]])
    r = match_atoms(truth, None, traced, register=False)
    np.testing.assert_array_equal(r.pairs, [[0, 1], [1, 0]])
    assert r.recall == 1.0


def brute_force(truth, traced, max_distance):
    """Dense reference: most pairs within max_distance, then least sum of squared distances."""
    d2 = ((truth[:, None, :] - traced[None, :, :]) ** 2).sum(-1)
    ok = d2 <= max_distance ** 2
    big = 10.0 * max_distance ** 2 * (min(d2.shape) + 1)
    cost = np.where(ok, d2, big)
    i, j = linear_sum_assignment(cost)
    keep = ok[i, j]
    return int(keep.sum()), float(d2[i[keep], j[keep]].sum())


def test_assignment_matches_dense_reference(rng):
    """Crowded random sets (many competing candidates) against a dense assignment."""
    for trial in range(20):
        truth = rng.uniform(0, 6, (60, 3))
        traced = np.vstack([truth[rng.choice(60, 45, replace=False)] + rng.normal(0, 0.4, (45, 3)),
                            rng.uniform(0, 6, (15, 3))])
        r = match_atoms(truth, None, traced, register=False, max_distance=1.0)
        m, ssd = brute_force(truth, traced, 1.0)
        assert r.n_matched == m
        d2 = ((truth[r.pairs[:, 0]] - traced[r.pairs[:, 1]]) ** 2).sum()
        assert d2 == pytest.approx(ssd, rel=1e-9, abs=1e-12)
        assert np.unique(r.pairs[:, 0]).size == m and np.unique(r.pairs[:, 1]).size == m


# -------------------------------------------------------------------------- literature protocol
def test_literature_protocol_by_hand():
    truth = np.array([[0.0, 0, 0], [5.0, 0, 0], [0, 5.0, 0], [0, 0, 5.0]])
    traced = np.array([
        [0.2, 0.1, 0.0],    # -> truth 0, d = ( 0.2,  0.1,  0.0)
        [-0.3, 0.0, 0.4],   # -> truth 0 again (not one to one), d = (-0.3, 0.0, 0.4)
        [5.1, -0.2, 0.1],   # -> truth 1, d = ( 0.1, -0.2,  0.1)
        [0.0, 6.5, 0.0],    # exactly 1.5 Å from truth 2: counts (<= 1.5 Å), d = (0, 1.5, 0)
        [0.0, 0.0, 6.6],    # 1.6 Å from truth 3: not found
    ])
    diffs = np.array([[0.2, 0.1, 0.0], [-0.3, 0.0, 0.4], [0.1, -0.2, 0.1], [0.0, 1.5, 0.0]])
    mean = diffs.sum(axis=0) / 4
    var = ((diffs - mean) ** 2).sum(axis=0) / 3  # N - 1
    fraction, rmsd = literature_protocol(truth, traced)
    assert fraction == 4 / 5
    assert rmsd == pytest.approx(100 * np.sqrt(var.sum()), rel=1e-12)
    # a global shift does not change the RMSD (per-axis means are removed)
    res = literature_protocol(truth + 0.05, traced)
    assert res.fraction == 4 / 5 and res.rmsd_pm == pytest.approx(rmsd, rel=1e-9)
    # a smaller radius drops the 1.5 Å atom
    f, r = literature_protocol(truth, traced, max_distance=1.0)
    assert f == 3 / 5
    assert r == pytest.approx(100 * np.sqrt(diffs[:3].var(axis=0, ddof=1).sum()), rel=1e-12)
    # fewer than two found atoms: no RMSD
    f, r = literature_protocol(truth, traced[:1])
    assert f == 1.0 and np.isnan(r)


def test_literature_protocol_gaussian(rng):
    """E[s_axis^2] = sigma^2, so rmsd ~ 100 sqrt(3) sigma (same tolerance as the match test)."""
    p, _ = lattice(2000)
    sigma = 0.1
    f, r = literature_protocol(p, p + 0.3 + rng.normal(0, sigma, p.shape))
    assert f == 1.0
    assert r == pytest.approx(100 * np.sqrt(3) * sigma, rel=4 * np.sqrt(6 / 2000) / 6)


# ------------------------------------------------------------------------------------ scale
def test_twenty_thousand_atoms_fast(rng):
    n = 20000
    p, s = lattice(n)
    keep = np.sort(rng.choice(n, n - 200, replace=False))
    q = np.vstack([p[keep] + rng.normal(0, 0.1, (keep.size, 3)),
                   p[rng.choice(n, 150, replace=False)] + SPACING / 2]) + np.array([0.7, -0.4, 0.3])
    t0 = time.perf_counter()
    r = match_atoms(p, s, q, np.concatenate([s[keep], np.full(150, "Pt")]))
    elapsed = time.perf_counter() - t0
    print(f"20 000-atom match_atoms: {elapsed:.3f} s")
    assert elapsed < 5.0
    assert r.n_matched == n - 200
    assert r.recall == (n - 200) / n and r.precision == (n - 200) / (n - 50)
    np.testing.assert_allclose(r.translation, [-0.7, 0.4, -0.3], atol=4 * 0.1 / np.sqrt(n - 200))
    assert r.species_accuracy == 1.0
    assert r.rmsd_pm == pytest.approx(100 * np.sqrt(3) * 0.1, rel=0.02)


# ------------------------------------------------------------------------------------ bad input
@pytest.mark.parametrize("kwargs, exc, name", [
    (dict(truth_positions=np.zeros((5, 2))), ValueError, "truth_positions"),
    (dict(truth_positions="abc"), TypeError, "truth_positions"),
    (dict(truth_positions=np.empty((0, 3)), truth_species=[]), ValueError, "truth_positions"),
    (dict(traced_positions=np.full((5, 3), np.nan)), ValueError, "traced_positions"),
    (dict(traced_positions=np.zeros(3)), ValueError, "traced_positions"),
    (dict(truth_species=["Fe"] * 4), ValueError, "truth_species"),
    (dict(truth_species="FeFeFeFeFe"), TypeError, "truth_species"),
    (dict(truth_species=np.zeros(5)), TypeError, "truth_species"),
    (dict(traced_species=["Fe"] * 6), ValueError, "traced_species"),
    (dict(traced_species=np.full((5, 1), "Fe")), ValueError, "traced_species"),
    (dict(truth_species=None), ValueError, "truth_species"),
    (dict(max_distance=0.0), ValueError, "max_distance"),
    (dict(max_distance=-1.0), ValueError, "max_distance"),
    (dict(max_distance="1"), TypeError, "max_distance"),
    (dict(register="yes"), TypeError, "register"),
    (dict(species_order=["Fe"]), ValueError, "species_order"),
    (dict(species_order=["Fe", "Pt", "Fe"]), ValueError, "species_order"),
    (dict(species_order="FePt"), TypeError, "species_order"),
])
def test_bad_input_refused(kwargs, exc, name):
    p, s = lattice(5)
    args = dict(truth_positions=p, truth_species=s, traced_positions=p, traced_species=s)
    args.update(kwargs)
    with pytest.raises(exc, match=name):
        match_atoms(args.pop("truth_positions"), args.pop("truth_species"), args.pop("traced_positions"),
                    args.pop("traced_species"), **args)


def test_literature_protocol_bad_input():
    p, _ = lattice(5)
    with pytest.raises(ValueError, match="traced_positions"):
        literature_protocol(p, np.empty((0, 3)))
    with pytest.raises(ValueError, match="truth_positions"):
        literature_protocol(p[:, :2], p)
    with pytest.raises(ValueError, match="max_distance"):
        literature_protocol(p, p, max_distance=0)
    with pytest.raises(TypeError):
        literature_protocol(p, p, 1.5)  # max_distance is keyword-only


def test_public_names():
    assert set(scoring.__all__) == {"MatchResult", "LiteratureScore", "match_atoms", "literature_protocol",
                                   "alignment_error"}


def test_alignment_error_removes_the_object_translation_only():
    from conftest import gauge_free_rms
    from aetcore.quality.scoring import alignment_error
    rng = np.random.default_rng(3)
    th = np.linspace(-70, 70, 31)
    mis = rng.uniform(-3, 3, (31, 2))
    # a perfect alignment up to a translation (X, Y, Z) of the object: zero error
    X, Y, Z = 0.7, -1.2, 2.0
    gauge = np.stack([-Y * np.ones(31), -(X * np.cos(np.radians(th)) - Z * np.sin(np.radians(th)))], axis=1)
    assert alignment_error(-mis + gauge, mis, th) < 1e-12
    # with errors: the independent helper of the tests agrees
    found = -mis + gauge + rng.normal(0, 0.1, (31, 2))
    assert alignment_error(found, mis, th) == pytest.approx(gauge_free_rms(found, -mis, th), rel=1e-9)
    assert 0.1 < alignment_error(found, mis, th) < 0.18  # 0.1 px per axis: sqrt(2) x 0.1 px
    with pytest.raises(ValueError, match="shifts"):
        alignment_error(found[:5], mis, th)
