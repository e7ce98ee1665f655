"""Strain from the lattice fit and Gaussian-weighted displacement gradients: known homogeneous
strains of randomly oriented particles are recovered."""
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from aetcore.analysis import atomic_strain, fit_lattice, strain_map, to_crystal_frame, voigt
from aetcore.analysis.strain import displacement_gradient
from aetcore.model.simulate import FEPT_LATTICE_CONSTANT as A, fcc_particle

RADIUS = 16.0
UNIAXIAL = np.diag([0.01, 0.0, 0.0])
SHEAR = np.array([[0.0, 0.01, 0.0], [0.01, 0.0, 0.0], [0.0, 0.0, 0.0]])  # eps_xy = 1 %
GENERAL = np.array([[0.004, 0.003, -0.002], [0.003, -0.006, 0.001], [-0.002, 0.001, 0.008]])


def strained(eps, seed, thermal=0.03):
    R = Rotation.random(random_state=seed).as_matrix()
    x0 = fcc_particle(A, RADIUS, orientation=R, thermal=thermal, seed=seed)
    return x0 @ (np.eye(3) + eps).T, R


@pytest.mark.parametrize("eps,seed", [(UNIAXIAL, 0), (SHEAR, 1), (GENERAL, 2)])
def test_homogeneous_strain_recovered_within_0p1_percent(eps, seed):
    x, _ = strained(eps, seed)
    fit = fit_lattice(x, lattice_constant=A)  # orientation unknown to the fit
    e = atomic_strain(fit.ideal, fit.displacement, sigma=10.0)
    interior = np.linalg.norm(fit.ideal - fit.ideal.mean(axis=0), axis=1) < RADIUS - 4.0
    assert interior.sum() > 500
    err = np.abs(e[interior] - eps).max()
    # 3 pm thermal noise alone gives ~3e-4 (measured 2.5e-4 .. 3.9e-4 over these cases)
    assert err < 1e-3
    # the surface atoms too: the local linear fit is exact for a homogeneous field
    assert np.abs(e - eps).max() < 1e-3


def test_noise_free_strain_is_exact_and_rotation_free():
    x, _ = strained(GENERAL, 3, thermal=0.0)
    fit = fit_lattice(x, lattice_constant=A)
    G = displacement_gradient(fit.ideal, fit.displacement, sigma=10.0)
    np.testing.assert_allclose(0.5 * (G + np.swapaxes(G, 1, 2)), np.broadcast_to(GENERAL, G.shape), atol=1e-9)
    # a symmetric stretch has no rotation: the Kabsch fit takes the rotation out exactly
    np.testing.assert_allclose(0.5 * (G - np.swapaxes(G, 1, 2)), 0.0, atol=1e-9)


def test_fitted_lattice_constant_absorbs_the_dilatation():
    x, _ = strained(UNIAXIAL, 4)
    fit = fit_lattice(x)
    assert fit.lattice_constant / A - 1 == pytest.approx(np.trace(UNIAXIAL) / 3, abs=2e-4)
    e = atomic_strain(fit.ideal, fit.displacement, sigma=10.0)
    deviatoric = UNIAXIAL - np.trace(UNIAXIAL) / 3 * np.eye(3)
    assert np.abs(e - deviatoric).max() < 1e-3


def test_crystal_frame_and_voigt():
    x, R = strained(UNIAXIAL, 5, thermal=0.0)
    fit = fit_lattice(x, lattice_constant=A)
    e = atomic_strain(fit.ideal, fit.displacement, sigma=10.0)
    ec = to_crystal_frame(e, fit.rotation)
    expected = fit.rotation.T @ UNIAXIAL @ fit.rotation
    np.testing.assert_allclose(ec, np.broadcast_to(expected, ec.shape), atol=1e-9)
    v = voigt(e[:1])[0]
    np.testing.assert_allclose(v, [0.01, 0, 0, 0, 0, 0], atol=1e-9)


def test_strain_map_inside_particle_and_linear_field():
    # an inhomogeneous field u = eps(X) X with eps_xx growing along z: the map follows it
    x0 = fcc_particle(A, RADIUS)
    k = 2e-4  # per Å
    u = np.zeros_like(x0)
    u[:, 0] = k * x0[:, 0] * x0[:, 2]  # du_x/dx = k z, du_x/dz = k x
    m = strain_map(x0, u, normal="y", offset=0.0, spacing=2.0, sigma=6.0)
    assert m.inside.sum() > 100 and (~m.inside).sum() > 20
    assert np.isnan(m.strain[~m.inside]).all()
    # at the centre the neighbourhood is symmetric, so the local linear fit of the quadratic u gives
    # its exact gradient there (du_x/dx = du_x/dz = 0 at the origin)
    c = np.argmin(np.abs(m.u)), np.argmin(np.abs(m.v))
    assert m.u[c[0]] == 0 and m.v[c[1]] == 0
    np.testing.assert_allclose(m.strain[c[1], c[0]], 0.0, atol=1e-12)
    # elsewhere compare with an independent weighted least squares (numpy lstsq, sqrt weights)
    rng = np.random.default_rng(0)
    iv, iu = np.nonzero(m.inside)
    for t in rng.choice(iv.size, 6, replace=False):
        p = m.offset * m.axes[2] + m.u[iu[t]] * m.axes[0] + m.v[iv[t]] * m.axes[1]
        d2 = np.sum((x0 - p) ** 2, axis=1)
        w = np.sqrt(np.exp(-0.5 * d2 / 6.0 ** 2) * (d2 <= (4 * 6.0) ** 2))  # the documented 4 sigma reach
        design = np.concatenate([np.ones((len(x0), 1)), x0 - p], axis=1) * w[:, None]
        coef = np.linalg.lstsq(design, u * w[:, None], rcond=None)[0]
        G = coef[1:].T
        np.testing.assert_allclose(m.strain[iv[t], iu[t]], 0.5 * (G + G.T), atol=1e-6)
    # and the map follows the field: e_xx grows along z (v) through the centre. Smoothing a varying
    # field near the surface flattens it (the kernel's weight centroid moves inwards), so only the
    # direction is asserted here; the values are pinned by the lstsq comparison above.
    col = m.strain[:, c[0], 0, 0]
    sel = m.inside[:, c[0]]
    assert (np.diff(col[sel]) > 0).all()


def test_bad_input():
    with pytest.raises(ValueError, match="displacement"):
        atomic_strain(np.zeros((4, 3)), np.zeros((3, 3)))
    with pytest.raises(ValueError, match="sigma"):
        atomic_strain(np.zeros((4, 3)), np.zeros((4, 3)), sigma=0)
    with pytest.raises(ValueError, match="normal"):
        strain_map(np.zeros((4, 3)), np.zeros((4, 3)), normal="w")
