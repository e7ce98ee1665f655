"""Bond-orientational order against known lattice values (Steinhardt 1983, Mickel et al. 2013) and
against the Legendre addition theorem, an independent route that needs no spherical harmonics:
q_l(i)^2 = 1/N^2 Σ_jk P_l(u_j · u_k) over the unit bond vectors u of atom i."""
import numpy as np
import pytest
from scipy.spatial import cKDTree
from scipy.spatial.transform import Rotation
from scipy.special import eval_legendre

from aetcore.analysis.bond_order import (bond_order, global_steinhardt, neighbour_bonds, normalized_order,
                                         steinhardt)
from aetcore.model.simulate import fcc_particle

# literature values, typed in here independently of the module's REFERENCE table
FCC = (0.190941, 0.574524)
HCP = (0.097222, 0.484762)
BCC14 = (0.036370, 0.510688)
BCC8 = (0.509175, 0.628539)


def random_packing(radius, d=2.75, density=0.0675, seed=0, steps=60, *, wall=True, x=None, fixed=None):
    """Dense amorphous sphere: uniform random points at the number density of fcc (a = 3.89 Å),
    relaxed by soft-sphere repulsion of diameter `d` (a jammed, glass-like packing), inside a hard
    spherical wall of `radius` or, with ``wall=False``, with a free surface. Given `x`, relax those
    positions instead, keeping the atoms flagged in `fixed` in place."""
    if x is None:
        rng = np.random.default_rng(seed)
        n = int(density * 4 / 3 * np.pi * radius ** 3)
        x = rng.uniform(-1, 1, (4 * n, 3))
        x = x[np.linalg.norm(x, axis=1) <= 1][:n] * radius
    for _ in range(steps):
        p = cKDTree(x).query_pairs(d, output_type="ndarray")
        v = x[p[:, 0]] - x[p[:, 1]]
        r = np.linalg.norm(v, axis=1)
        f = (0.5 * (d - r) / np.maximum(r, 1e-9))[:, None] * v
        dx = np.zeros_like(x)
        np.add.at(dx, p[:, 0], f)
        np.add.at(dx, p[:, 1], -f)
        if fixed is not None:
            dx[fixed] = 0
        x = x + dx
        if wall:
            x *= np.minimum(1, radius / np.linalg.norm(x, axis=1))[:, None]
    return x


def _central(x):
    return int(np.argmin(np.linalg.norm(x - x.mean(axis=0), axis=1)))


def test_fcc_particle_matches_the_known_values():
    x = fcc_particle(3.89, 12.0, orientation="random", seed=1)
    b = bond_order(x)
    bulk = b.coordination == 12
    assert bulk.sum() > 150
    np.testing.assert_allclose(b.q4[bulk], FCC[0], atol=2e-6)
    np.testing.assert_allclose(b.q6[bulk], FCC[1], atol=2e-6)
    # the cut is centrosymmetric with cubic symmetry, so every bond direction is equally represented
    np.testing.assert_allclose([b.Q4, b.Q6], FCC, atol=2e-6)
    # atoms whose neighbours are all bulk average identical q_lm: q̄ = q and the order is exactly 1
    i, j, _ = neighbour_bonds(x)
    deep = bulk & (np.bincount(i, weights=~bulk[j], minlength=len(x)) == 0)
    assert deep.sum() > 50
    np.testing.assert_allclose(b.order[deep], 1.0, atol=1e-5)
    np.testing.assert_allclose(b.cutoff, 3.89 / np.sqrt(2) * (1 + np.sqrt(2)) / 2, rtol=1e-9)
    # a fixed count of 12 neighbours gives the same bulk values
    q = steinhardt(x, n_neighbours=12)
    np.testing.assert_allclose(q[bulk], np.tile(FCC, (bulk.sum(), 1)), atol=2e-6)


def test_hcp_and_bcc_reference_values():
    a = 2.75
    c = a * np.sqrt(8 / 3)
    g = np.mgrid[-4:5, -4:5, -3:4].reshape(3, -1).T
    base = g @ np.array([[a, 0, 0], [a / 2, a * np.sqrt(3) / 2, 0], [0, 0, c]])
    hcp = np.concatenate([base, base + [a / 2, a / (2 * np.sqrt(3)), c / 2]])
    np.testing.assert_allclose(steinhardt(hcp)[_central(hcp)], HCP, atol=2e-6)
    bcc = np.mgrid[-3:4, -3:4, -3:4].reshape(3, -1).T * 3.0
    bcc = np.concatenate([bcc, bcc + 1.5])
    c0 = _central(bcc)
    np.testing.assert_allclose(steinhardt(bcc)[c0], BCC14, atol=2e-6)          # 8 + 6 neighbours
    np.testing.assert_allclose(steinhardt(bcc, cutoff=2.8)[c0], BCC8, atol=2e-6)  # 8 only


def test_addition_theorem_on_an_amorphous_model():
    x = random_packing(9.0, seed=3)
    i, j, cut = neighbour_bonds(x)
    u = x[j] - x[i]
    u /= np.linalg.norm(u, axis=1)[:, None]
    starts = np.searchsorted(i, np.arange(len(x) + 1))
    q = steinhardt(x, (4, 6))
    qa = steinhardt(x, (4, 6), average=True)

    def pl_sum(l, ua, ub):
        return eval_legendre(l, ua @ ub.T).sum()

    for a in range(0, len(x), 17):
        ua = u[starts[a]:starts[a + 1]]
        nb = np.arange(starts[a], starts[a + 1])
        for k, l in enumerate((4, 6)):
            np.testing.assert_allclose(q[a, k], np.sqrt(pl_sum(l, ua, ua)) / len(ua), rtol=1e-10)
            # q̄: the mean over {a} ∪ N(a) of q_lm(k) = Σ_bonds of k Y_lm / N_k
            group = np.concatenate([[a], j[nb]])
            w = np.concatenate([np.full(starts[g + 1] - starts[g], 1.0 / (starts[g + 1] - starts[g]))
                                for g in group])
            ug = np.concatenate([u[starts[g]:starts[g + 1]] for g in group])
            s = (w[:, None] * w[None, :] * eval_legendre(l, ug @ ug.T)).sum()
            np.testing.assert_allclose(qa[a, k], np.sqrt(s) / len(group), rtol=1e-10)
    Q = global_steinhardt(x, (4, 6), cutoff=cut)
    for k, l in enumerate((4, 6)):
        np.testing.assert_allclose(Q[k], np.sqrt(pl_sum(l, u, u)) / len(u), rtol=1e-9)


def test_rotation_and_translation_invariance():
    x = random_packing(8.0, seed=4)
    R = Rotation.from_euler("zyz", [30, 50, -70], degrees=True).as_matrix()
    y = x @ R.T + [10.0, -3.0, 7.0]
    np.testing.assert_allclose(steinhardt(y, (2, 4, 6, 8), average=True),
                               steinhardt(x, (2, 4, 6, 8), average=True), atol=1e-10)


def test_amorphous_is_low_and_crystal_is_high():
    x = random_packing(16.0, seed=0)
    b = bond_order(x)
    inner = np.linalg.norm(x, axis=1) < 10
    assert 0.28 < np.median(b.order[inner]) < 0.45       # measured 0.36
    assert np.percentile(b.order[inner], 95) < 0.5        # measured 0.48
    assert b.Q6 < 0.06 and b.Q4 < 0.03                   # measured 0.034, 0.008: no global orientation
    xt = fcc_particle(3.89, 14.0, thermal=0.1, seed=2)     # a warm crystal stays clearly ordered
    bt = bond_order(xt)
    assert bt.order[np.linalg.norm(xt, axis=1) < 9].min() > 0.85   # measured 0.91


def test_normalized_order_definition():
    np.testing.assert_allclose(normalized_order(*FCC), 1.0, atol=1e-6)
    assert normalized_order(0.0, 0.0) == 0.0
    np.testing.assert_allclose(normalized_order(*HCP), 1 - np.hypot(FCC[0] - HCP[0], FCC[1] - HCP[1]) / np.hypot(*FCC))
    np.testing.assert_allclose(normalized_order(*HCP, reference=HCP), 1.0)


def test_isolated_atom_has_zero_order_and_bad_input_is_refused():
    x = np.array([[0, 0, 0], [2.7, 0, 0], [0, 2.7, 0], [30, 30, 30]], float)
    q = steinhardt(x, 6, cutoff=3.0)
    assert q[3, 0] == 0.0
    with pytest.raises(ValueError, match="cutoff"):
        steinhardt(x, cutoff=-1.0)
    with pytest.raises(ValueError, match="cutoff, n_neighbours"):
        steinhardt(x, cutoff=3.0, n_neighbours=2)
    with pytest.raises(ValueError, match="n_neighbours"):
        steinhardt(x, n_neighbours=4)
    with pytest.raises(ValueError, match="l: expected"):
        steinhardt(x, l=(4, -6))
    with pytest.raises(ValueError, match="positions"):
        bond_order(np.zeros((5, 2)))
    with pytest.raises(ValueError, match="reference"):
        normalized_order(0.1, 0.2, reference=(0, 0))


def test_threads_do_not_change_the_result():
    x = random_packing(8.0, seed=5)
    a, b = bond_order(x, threads=1), bond_order(x, threads=2)
    np.testing.assert_array_equal(a.order, b.order)
    np.testing.assert_array_equal(steinhardt(x, n_neighbours=10, threads=1), steinhardt(x, n_neighbours=10, threads=2))
