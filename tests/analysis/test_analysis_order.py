"""Chemical order of simulated FePt particles (aetcore.analysis.order, grains): local L1_0/L1_2
order parameters, phases and grains, Warren-Cowley SRO, anti-sites, swaps, anti-phase boundaries."""
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from aetcore.analysis import (chemical_order, classify_phases, find_grains, fit_lattice, local_order,
                              partial_coordination, site_neighbours, site_pairs, warren_cowley)
from aetcore.analysis.order import (SIGNATURES, VARIANTS, antiphase_boundaries, fcc_shell_offsets,
                                    translation_variants)
from aetcore.model.simulate import FEPT_LATTICE_CONSTANT as A, fept_particle


def sites_of(positions, **kw):
    return fit_lattice(positions, **kw).fcc_indices()


def interior(positions, radius, depth=A):
    return np.linalg.norm(positions - positions.mean(axis=0), axis=1) < radius - depth


@pytest.mark.parametrize("variant", ["L10x", "L10y", "L10z", "L12"])
def test_perfect_phase_gives_order_one_and_its_variant(variant):
    p = fept_particle(12.0, domains=(variant,), seed=0)
    h = sites_of(p.positions)
    eta = local_order(h, p.species)
    k = VARIANTS.index(variant)
    inner = interior(p.positions, 12.0)
    np.testing.assert_allclose(eta[inner, k], 1.0, atol=1e-12)
    # every atom, surface included: only present sites count and they are all right
    np.testing.assert_allclose(eta[:, k], 1.0, atol=1e-12)
    # the other three parameters of the interior are the phase's signature (module docstring)
    np.testing.assert_allclose(np.delete(eta[inner], k, axis=1).max(axis=0),
                               np.delete(SIGNATURES[k] if k < 3 else [0.8, 0.8, 0.8, 1], k), atol=1e-12)
    if k == 3:  # L1_2: 0.2, 0.5 or 0.8 by sublattice, 1/2 on average
        np.testing.assert_allclose(eta[inner, :3].mean(), 0.5, atol=0.02)
    phase, _ = classify_phases(eta, h)
    assert (phase == variant).all()


def test_randomly_oriented_l10_variant_axis_is_found():
    R = Rotation.random(random_state=11).as_matrix()
    p = fept_particle(12.0, domains=("L10z",), orientation=R, thermal=0.05, seed=1)
    fit = fit_lattice(p.positions)
    co = chemical_order(fit.fcc_indices(), p.species)
    names, counts = np.unique(co.phase, return_counts=True)
    assert names.tolist() != ["A1"] and counts.max() == len(p.species)  # one variant everywhere
    axis = "xyz".index(names[np.argmax(counts)][-1])
    # the fitted crystal axis of that variant is the true c axis R e_z (up to sign)
    assert abs(fit.rotation[:, axis] @ R[:, 2]) > 1 - 1e-4
    assert np.isclose(co.order[:, VARIANTS.index(names[0])], 1.0).all()


def test_random_alloy_averages_zero():
    # Over 30 seeds the per-particle mean of each eta (1205 atoms, radius 16 Å, 50 % Pt) has mean
    # -0.003..0.001 and standard deviation 0.017..0.020 (measured): eta is unbiased. 3 seeds pooled:
    # sigma ~ 0.011 per column, so |mean| < 0.05 is a > 4 sigma bound.
    means = []
    for seed in range(3):
        p = fept_particle(16.0, domains=("A1",), pt_fraction=0.5, seed=seed)
        means.append(np.nanmean(local_order(sites_of(p.positions, lattice_constant=A), p.species), axis=0))
    m = np.mean(means, axis=0)
    assert np.all(np.abs(m) < 0.05), m
    co = chemical_order(sites_of(p.positions, lattice_constant=A), p.species)
    assert np.mean(co.phase == "A1") > 0.95  # measured 0.975..0.99 with one smoothing round
    assert np.all(np.abs(co.warren_cowley) < 0.06)


def test_exchanging_species_leaves_order_unchanged():
    p = fept_particle(12.0, domains=("L10z", "L12", "A1"), seed=3)
    h = sites_of(p.positions)
    swapped = np.where(p.species == "Fe", "Pt", "Fe")
    np.testing.assert_allclose(local_order(h, p.species), local_order(h, swapped), atol=1e-12)


def test_multidomain_phases_and_grains_match_the_simulation():
    # measured over seeds 0..2: atom agreement 0.945..0.957 (0.925..0.939 when taking the largest
    # eta instead of the nearest signature); atoms more than two shells from a domain boundary
    # 0.997..1.000
    p = fept_particle(20.0, domains=("L10x", "L10z", "L12", "A1"), thermal=0.05, seed=0)
    h = sites_of(p.positions)
    co = chemical_order(h, p.species)
    agree = co.phase == p.phase
    assert agree.mean() > 0.93
    nb = site_neighbours(h, np.concatenate([fcc_shell_offsets(1), fcc_shell_offsets(2)]))
    deep = ((nb < 0) | (p.phase[np.clip(nb, 0, None)] == p.phase[:, None])).all(axis=1)
    assert deep.sum() > 1000 and agree[deep].mean() > 0.98
    # no anti-sites were simulated: the few found sit where domains meet (measured 6..8 of 2315)
    assert co.antisite.sum() <= 12 and not co.antisite[deep].any()
    g = find_grains(co.phase, site_pairs(site_neighbours(h, fcc_shell_offsets(1))), min_size=20,
                    positions=p.positions, atomic_volume=A ** 3 / 4)
    assert sorted(g.phase.tolist()) == ["A1", "L10x", "L10z", "L12"]  # one grain per domain
    for k, name in enumerate(g.phase):
        found, true = g.label == k, p.phase == name
        assert (found & true).sum() / (found | true).sum() > 0.75
    assert g.size.sum() <= len(p.species) and np.all(np.diff(g.size) <= 0)
    np.testing.assert_allclose(g.volume, g.size * A ** 3 / 4)


@pytest.mark.parametrize("phase", ["L10z", "L12"])
def test_antisites_found_against_the_truth(phase):
    # measured (seeds 0..2, 2315 atoms, 46 true anti-sites): 46/46 found with none wrong for both
    # (with the atom's own phase instead of its neighbourhood's: L1_0 43..46, L1_2 39..44)
    kw = dict(domains=(phase,), seed=2)
    clean = fept_particle(20.0, **kw)
    p = fept_particle(20.0, antisite=0.02, orientation="random", thermal=0.05, **kw)
    truth = clean.species != p.species
    co = chemical_order(sites_of(p.positions), p.species)
    assert truth.sum() == 46
    assert np.count_nonzero(co.antisite & ~truth) == 0
    assert np.count_nonzero(co.antisite & truth) >= 45
    # swap defects: neighbouring anti-sites of opposite species, counted on the truth independently
    nb = site_neighbours(sites_of(p.positions), fcc_shell_offsets(1))
    i = np.repeat(np.arange(len(truth)), 12)
    j = nb.ravel()
    ok = (j > i) & truth[i] & truth[np.clip(j, 0, None)] & (p.species[i] != p.species[np.clip(j, 0, None)])
    expected = {tuple(v) for v in np.stack([i[ok], j[ok]], 1).tolist()}
    found = {tuple(v) for v in co.swaps.tolist()}
    assert found <= expected and len(expected - found) <= 2


def test_warren_cowley_of_l10_matches_a_distance_count():
    p = fept_particle(14.0, domains=("L10z",), seed=0)
    h = sites_of(p.positions)
    wc = warren_cowley(h, p.species, (1, 2))
    # infinite L1_0: -1/3 (8 of 12 unlike) and +1 (6 of 6 like); the finite particle's counts differ
    # slightly at the surface, so compare with an independent count from distances
    counts1, _ = partial_coordination(p.positions, p.species, cutoff=1.2 * A / np.sqrt(2))
    fe = p.species == "Fe"
    c_pt = np.mean(p.species == "Pt")
    expected1 = 1 - counts1[fe, 1].sum() / counts1[fe].sum() / c_pt
    assert wc[0] == pytest.approx(expected1, abs=1e-12)
    assert wc[0] == pytest.approx(-1 / 3, abs=0.02) and wc[1] == pytest.approx(1.0, abs=0.02)


def test_antiphase_boundary_located():
    # an L1_0 particle whose species are exchanged for x > 0: an anti-phase boundary on the x = 0
    # plane (atoms at x = 0 keep their species)
    ref = fept_particle(16.0, domains=("L10z",), seed=0)
    p = fept_particle(16.0, domains=("L10z",), seed=0, orientation="random", thermal=0.05)
    species = ref.species.copy()
    right = ref.positions[:, 0] > 0.1
    species[right] = np.where(species[right] == "Fe", "Pt", "Fe")
    h = sites_of(p.positions)
    co = chemical_order(h, species)
    x = ref.positions[:, 0]
    flagged = co.antiphase_boundary
    # the boundary lies between the planes x = 0 and x = a/2; atoms with an atom of the other
    # anti-phase variant within three shells (measured: 83..96 % of the two planes on either side,
    # 6 atoms of the third plane on one side and none further)
    mid = A / 4
    near = np.abs(x - mid) < A
    assert flagged[near].mean() > 0.8
    assert np.abs(x[flagged] - mid).max() < 2.5 * A / 2 + 0.01
    # two anti-phase domains of the one L1_0 variant, one on each side
    label = np.char.add(co.phase, co.translation.astype(str))
    ad = find_grains(label, site_pairs(site_neighbours(h, fcc_shell_offsets(1))), min_size=50, ignore=("A1-1",))
    assert len(ad.size) == 2 and len(set(p[:4] for p in ad.phase)) == 1
    left = np.sort([np.mean(x[ad.label == k]) for k in range(2)])
    assert left[0] < -4 and left[1] > 4
    # and a particle without a boundary has none (anti-sites do not make one)
    q = fept_particle(16.0, domains=("L10z",), seed=0, antisite=0.02)
    hq = sites_of(q.positions)
    assert not antiphase_boundaries(hq, chemical_order(hq, q.species).phase, translation_variants(hq, q.species)).any()


def test_bad_input():
    h = np.array([[0, 0, 0], [1, 1, 0], [1, 0, 1]])
    with pytest.raises(ValueError, match="sites"):
        local_order(np.array([[0, 0, 1]]), ["Fe"])
    with pytest.raises(ValueError, match="species"):
        local_order(h, ["Fe", "Pt"])
    with pytest.raises(ValueError, match="binary"):
        local_order(h, ["Fe", "Pt", "Co"])
    with pytest.raises(ValueError, match="order"):
        classify_phases(np.zeros((2, 4)), h)
    with pytest.raises(ValueError, match="pairs"):
        find_grains(np.zeros(3), (np.array([0]), np.array([5])))
