"""CONVENTIONS.md geometry pinned: Euler matrices, where an atom lands, theta = 0 is the sum,
the origin at n // 2, and the Fourier slice theorem."""
import numpy as np
import pytest

from aetcore.model.geometry import detector_position, euler_matrices, origin
from aetcore.model.projection import project_atoms, project_volume, render_atoms


def _rz(a):
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])


def _ry(a):
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def test_euler_matrices_match_the_written_formula(rng):
    ang = rng.uniform(-180, 180, (20, 3))
    R = euler_matrices(ang)
    for k, (phi, theta, psi) in enumerate(np.radians(ang)):
        np.testing.assert_allclose(R[k], _rz(phi) @ _ry(theta) @ _rz(psi), atol=1e-12)
    # A 1-D array means (0, theta, 0).
    np.testing.assert_allclose(euler_matrices(np.array([30.0]))[0], _ry(np.radians(30)), atol=1e-12)


def test_single_tilt_detector_coordinates():
    r = np.array([[1.5, -2.0, 3.0]])
    th = np.radians(25.0)
    uv = detector_position(r, [25.0])[0, 0]
    assert uv[0] == pytest.approx(1.5 * np.cos(th) - 3.0 * np.sin(th))
    assert uv[1] == pytest.approx(-2.0)


def test_origin_is_fftshift_centre():
    for n in (7, 8, 63, 64):
        assert origin(n) == np.argmax(np.fft.fftshift(np.arange(n) == 0))


def test_theta_zero_is_the_sum_over_z(rng):
    vol = rng.random((17, 20, 23), dtype=np.float32)
    p = project_volume(vol, [0.0])[0]
    np.testing.assert_allclose(p, vol.sum(axis=0), rtol=1e-5)


def test_a_voxel_at_the_origin_lands_at_the_detector_origin():
    for shape in ((16, 16, 16), (15, 17, 19)):
        vol = np.zeros(shape, np.float32)
        vol[shape[0] // 2, shape[1] // 2, shape[2] // 2] = 1
        for theta in (-60.0, 0.0, 37.0):
            p = project_volume(vol, [theta])[0]
            assert np.unravel_index(p.argmax(), p.shape) == (shape[1] // 2, shape[2] // 2)


@pytest.mark.parametrize("angles", [[0.0, 0.0, 0.0], [0.0, 40.0, 0.0], [30.0, -50.0, 80.0]])
def test_an_atom_lands_where_the_convention_says(angles):
    ps = 0.5
    r = np.array([[2.0, -1.5, 3.0]])
    img = project_atoms(r, ["Pt"], np.array([angles]), (48, 48), ps)[0]
    u, v = detector_position(r, np.array([angles]), ps)[0, 0]
    # Centroid of the (symmetric, exactly integrated) blob equals the predicted detector position.
    yy, xx = np.mgrid[:48, :48]
    cy, cx = (img * yy).sum() / img.sum(), (img * xx).sum() / img.sum()
    assert cx - 24 == pytest.approx(u, abs=1e-3)
    assert cy - 24 == pytest.approx(v, abs=1e-3)
    # ... and the volume projector agrees with the atom projector on a rendered atom.
    vol = render_atoms(r, ["Pt"], (48, 48, 48), ps)
    pv = project_volume(vol, np.array([angles]))[0]
    cyv, cxv = (pv * yy).sum() / pv.sum(), (pv * xx).sum() / pv.sum()
    assert (cyv, cxv) == pytest.approx((cy, cx), abs=0.05)


def test_every_projection_of_atoms_has_the_same_total(rng):
    pos = rng.uniform(-5, 5, (30, 3))
    sp = rng.choice(["Fe", "Pt"], 30)
    p = project_atoms(pos, sp, np.linspace(-70, 70, 9), (96, 96), 0.4)
    tot = p.sum(axis=(1, 2))
    np.testing.assert_allclose(tot, tot[0], rtol=1e-5)
    vol = render_atoms(pos, sp, (96, 96, 96), 0.4)
    assert vol.sum() == pytest.approx(tot[0], rel=1e-5)


def test_fourier_slice_theorem():
    # FT2[P](ku, kv) = FT3[f](R (ku, kv, 0)) for low frequencies of a smooth object.
    n, ps = 64, 0.5
    pos = np.array([[1.0, -2.0, 0.5], [-3.0, 1.0, 2.0], [2.5, 3.0, -1.5]])
    sp = ["Pt", "Fe", "Pt"]
    vol = render_atoms(pos, sp, (n, n, n), ps, blur=1.0).astype(np.float64)
    ang = np.array([[20.0, 35.0, -10.0]])
    proj = project_atoms(pos, sp, ang, (n, n), ps, blur=1.0)[0].astype(np.float64)
    R = euler_matrices(ang)[0]
    F2 = np.fft.fft2(np.fft.ifftshift(proj))
    c = np.arange(n) - n // 2
    for ku, kv in [(0, 0), (1, 0), (0, 2), (3, -2), (-4, 5)]:
        k3 = R @ np.array([ku, kv, 0.0])  # (kx, ky, kz) in cycles per n voxels
        x = np.exp(-2j * np.pi * k3[0] * c / n)
        y = np.exp(-2j * np.pi * k3[1] * c / n)
        z = np.exp(-2j * np.pi * k3[2] * c / n)
        F3 = np.einsum("zyx,z,y,x->", vol, z, y, x)  # DFT at a non-integer frequency
        assert abs(F2[kv % n, ku % n] - F3) < 1e-4 * abs(F2[0, 0])


@pytest.mark.parametrize("pixel_size", [0.3, 0.5])
def test_atom_projection_is_the_pixel_mean_of_the_written_gaussian(pixel_size):
    # CONVENTIONS, forward model: sigma^2 = B / (8 pi^2) + blur^2, the projection H sqrt(2 pi) sigma
    # exp(-|p - p_i|^2 / (2 sigma^2)) (the beam integral counted in voxels: / pixel_size), and a pixel
    # holds its mean over the pixel's square; computed here with erf, independently of the core
    from scipy.special import erf
    from aetcore.model.projection import atom_model
    m = atom_model(["Pt"], heights={"Pt": 2.0}, b_factors={"Pt": 4.0}, blur=0.2)
    s, n, p = np.sqrt(4.0 / (8 * np.pi ** 2) + 0.2 ** 2), 32, pixel_size
    pos = np.array([[0.13, -0.21, 0.4]])
    img = project_atoms(pos, ["Pt"], [0.0], (n, n), p, model=m, cutoff=12.0)[0].astype(np.float64)
    edges = (np.arange(n + 1) - n // 2 - 0.5) * p

    def pixel_mean(c):  # mean of exp(-(t - c)^2 / (2 s^2)) over each pixel, in Å along one axis
        return np.diff(erf((edges - c) / (s * np.sqrt(2)))) * s * np.sqrt(np.pi / 2) / p

    ref = 2.0 * np.sqrt(2 * np.pi) * s / p * np.outer(pixel_mean(pos[0, 1]), pixel_mean(pos[0, 0]))
    np.testing.assert_allclose(img, ref, rtol=0, atol=1e-6 * ref.max())
    assert img.sum() == pytest.approx(2.0 * (2 * np.pi) ** 1.5 * s ** 3 / p ** 3, rel=1e-6)


def test_default_atom_intensity_rises_as_z_to_1_6_to_1_8():
    # CONVENTIONS, forward model: the integrated intensity of an atom rises roughly as Z^1.6-1.8 with
    # the default per-species model (heights and B-factors), measured on projections of lone atoms
    from ase.data import atomic_numbers
    totals = {s: project_atoms(np.zeros((1, 3)), [s], [0.0], (64, 64), 0.4)[0].sum() for s in ("Ti", "Fe", "Pt")}
    for a, b in (("Ti", "Pt"), ("Fe", "Pt"), ("Ti", "Fe")):
        k = np.log(totals[b] / totals[a]) / np.log(atomic_numbers[b] / atomic_numbers[a])
        assert 1.6 <= k <= 1.8, (a, b, k)
