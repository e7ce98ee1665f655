"""Neighbour lists, RDF, coordination and the lattice fit (aetcore.analysis) against perfect and
randomly oriented simulated particles."""
import numpy as np
import pytest
from scipy.spatial.distance import pdist
from scipy.spatial.transform import Rotation

from aetcore.analysis import (coordination, fit_lattice, nearest_neighbour_distance, neighbour_list,
                              partial_coordination, radial_distribution)
from aetcore.analysis.lattice import LATTICES, Lattice, cubic_rotations
from aetcore.model.simulate import FEPT_LATTICE_CONSTANT as A, fcc_particle, fept_particle

D_NN = A / np.sqrt(2)


@pytest.fixture(scope="module")
def perfect():
    return fcc_particle(A, 12.0)


def test_neighbour_list_matches_brute_force(perfect):
    x = perfect
    i, j, d, v = neighbour_list(x, 1.2 * D_NN)
    full = np.linalg.norm(x[:, None] - x[None], axis=2)
    bi, bj = np.nonzero((full < 1.2 * D_NN) & (full > 0))
    assert np.array_equal(i, bi) and np.array_equal(j, bj)
    np.testing.assert_allclose(d, full[bi, bj])
    np.testing.assert_allclose(v, x[bj] - x[bi])
    np.testing.assert_allclose(d, D_NN, rtol=1e-12)  # a perfect fcc has one first-shell distance


def test_coordination_interior_is_12_and_partial_counts_add_up():
    p = fept_particle(12.0, domains=("L10z",), seed=0)
    x = p.positions
    assert nearest_neighbour_distance(x) == pytest.approx(D_NN, rel=1e-12)
    cn = coordination(x)
    interior = np.linalg.norm(x, axis=1) < 12.0 - A
    assert (cn[interior] == 12).all() and cn.max() == 12 and cn.min() >= 3
    counts, names = partial_coordination(x, p.species)
    assert list(names) == ["Fe", "Pt"]
    assert np.array_equal(counts.sum(axis=1), cn)
    # L1_0: every interior atom has 4 like neighbours (in its (001) plane) and 8 unlike ones
    like = np.where(p.species == "Fe", counts[:, 0], counts[:, 1])
    assert (like[interior] == 4).all()


def test_rdf_counts_and_first_shell_integral(perfect):
    x = perfect
    rdf = radial_distribution(x, 8.0, dr=0.05)
    hist = np.histogram(pdist(x), bins=rdf.edges)[0] * 2  # ordered pairs
    assert np.array_equal(rdf.counts, hist)
    # peaks at the fcc shells d, sqrt(2) d, sqrt(3) d
    for shell in (1.0, np.sqrt(2), np.sqrt(3)):
        k = np.argmin(np.abs(rdf.r - shell * D_NN))
        assert rdf.counts[k] > 0
    # first-shell integral 4 pi rho int r^2 g dr = mean coordination
    first = rdf.r < 1.2 * D_NN
    integral = np.sum(4 * np.pi * rdf.density * rdf.r[first] ** 2 * rdf.g[first] * 0.05)
    # exact up to the midpoint-rule error of r^2 inside the bin holding d_nn (< 1e-3 relative)
    assert integral == pytest.approx(coordination(x).mean(), rel=1e-3)


def test_partial_rdf_of_l10_first_shell():
    p = fept_particle(12.0, domains=("L10z",), seed=0)
    fe_pt = radial_distribution(p.positions, 3.0, species=p.species, pair=("Fe", "Pt"), density=1.0)
    fe_fe = radial_distribution(p.positions, 3.0, species=p.species, pair=("Fe", "Fe"), density=1.0)
    counts, names = partial_coordination(p.positions, p.species)
    fe = p.species == "Fe"
    assert fe_pt.counts.sum() == counts[fe, 1].sum()
    assert fe_fe.counts.sum() == counts[fe, 0].sum()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fit_randomly_oriented_particle(seed):
    R = Rotation.random(random_state=100 + seed).as_matrix()
    x = fcc_particle(A, 14.0, orientation=R, thermal=0.05, seed=seed) + np.array([3.1, -2.2, 0.7])
    fit = fit_lattice(x)
    # the fitted orientation equals the true one up to a symmetry of the cube
    M = fit.rotation.T @ R
    dev = np.min(np.linalg.norm(cubic_rotations() - M, axis=(1, 2)))
    assert dev < 2e-3  # radians: ~0.1 degree for 5 pm thermal noise
    assert fit.lattice_constant == pytest.approx(A, rel=1e-3)
    assert not fit.duplicate.any()
    # thermal noise is the only displacement: rms sqrt(3) * 0.05 Å
    assert fit.rmsd == pytest.approx(np.sqrt(3) * 0.05, rel=0.1)
    # sites are distinct and the ideal sites are a perfect lattice: integer coordinates in a/2
    h = fit.fcc_indices()
    assert len(np.unique(h, axis=0)) == len(h) and (h.sum(axis=1) % 2 == 0).all()
    back = fit.origin + 0.5 * fit.lattice_constant * h @ fit.rotation.T
    np.testing.assert_allclose(back, fit.ideal, atol=1e-9)


def test_fit_unrotated_is_canonical_and_exact():
    x = fcc_particle(A, 12.0) + np.array([0.3, -0.7, 1.1])
    fit = fit_lattice(x, lattice_constant=A)
    np.testing.assert_allclose(fit.rotation, np.eye(3), atol=1e-9)
    assert fit.rmsd < 1e-9
    assert np.allclose((fit.origin - [0.3, -0.7, 1.1]) / (A / 2), np.rint((fit.origin - [0.3, -0.7, 1.1]) / (A / 2)))


def test_fit_bcc_and_custom_lattice():
    R = Rotation.random(random_state=7).as_matrix()
    r = np.arange(-5, 6)
    n = np.stack(np.meshgrid(r, r, r, indexing="ij"), -1).reshape(-1, 3)
    a = 2.87
    x = np.concatenate([n, n + 0.5]) * a
    x = x[np.linalg.norm(x, axis=1) < 12.0] @ R.T
    fit = fit_lattice(x, "bcc")
    assert fit.lattice_constant == pytest.approx(a, rel=1e-9) and fit.rmsd < 1e-9
    # the same crystal as a custom cell (simple cubic with a 2-site basis) gives the same fit
    lat = Lattice("bcc-as-custom", np.eye(3), np.array([[0, 0, 0], [0.5, 0.5, 0.5]]), cubic=True)
    fit2 = fit_lattice(x, lat)
    np.testing.assert_allclose(fit2.ideal, fit.ideal, atol=1e-9)


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="lattice"):
        fit_lattice(np.zeros((10, 3)) + np.arange(10)[:, None], "fcx")
    with pytest.raises(ValueError, match="positions"):
        fit_lattice(np.zeros((5, 2)))
    with pytest.raises(ValueError, match="cutoff"):
        neighbour_list(np.zeros((3, 3)), -1.0)
    with pytest.raises(ValueError, match="pair"):
        radial_distribution(np.random.default_rng(0).normal(size=(10, 3)), 2.0, species=["Fe"] * 10, pair=("Fe", "Pt"))


def test_fit_survives_missing_and_spurious_atoms():
    # a traced model: 5 % of the atoms lost, 2 % spurious atoms anywhere inside, 8 pm noise
    rng = np.random.default_rng(5)
    R = Rotation.random(random_state=5).as_matrix()
    x = fcc_particle(A, 14.0, orientation=R, thermal=0.08, seed=5)
    x = x[rng.random(len(x)) > 0.05]
    spurious = rng.uniform(-12, 12, size=(int(0.02 * len(x)), 3))
    fit = fit_lattice(np.concatenate([x, spurious]))
    dev = np.min(np.linalg.norm(cubic_rotations() - fit.rotation.T @ R, axis=(1, 2)))
    assert dev < 2e-3 and fit.lattice_constant == pytest.approx(A, rel=2e-3)
    real = np.arange(len(x))
    # the real atoms sit on distinct sites close to them; spurious ones are the outliers
    assert not fit.outlier[real].any() and not fit.duplicate[real].any()
    assert np.linalg.norm(fit.displacement[real], axis=1).max() < 0.5
    # a spurious atom is an outlier unless it lands within 0.35 d_nn of an empty site (measured:
    # 13 of 14 here, 8 of them on a site already taken); it never displaces a real atom
    assert fit.outlier[len(x):].sum() >= len(spurious) - 3


def test_fit_hcp_lattice_with_a_basis():
    lat = LATTICES["hcp"]
    r = np.arange(-6, 7)
    n = np.stack(np.meshgrid(r, r, r, indexing="ij"), -1).reshape(-1, 3)
    a = 2.95
    x = np.concatenate([lat.positions(n, np.zeros(len(n), int)), lat.positions(n, np.ones(len(n), int))]) * a
    x = x[np.linalg.norm(x, axis=1) < 12.0]
    R = Rotation.random(random_state=3).as_matrix()
    x = x @ R.T + np.random.default_rng(0).normal(0, 0.03, x.shape)
    fit = fit_lattice(x, "hcp")
    assert fit.lattice_constant == pytest.approx(a, rel=1e-3)
    assert fit.rmsd == pytest.approx(np.sqrt(3) * 0.03, rel=0.15) and not fit.outlier.any()
    assert abs(fit.rotation[:, 2] @ R[:, 2]) > 1 - 1e-5  # the c axis
    # the wrong lattice does not fit: most atoms are far from an fcc site (measured rmsd 1.35 Å)
    wrong = fit_lattice(x, "fcc")
    assert wrong.rmsd > 10 * fit.rmsd and wrong.outlier.mean() > 0.5
