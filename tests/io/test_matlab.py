"""MATLAB files (issue 13): v5 and v7.3 readers, the source layouts, and the angle conventions of
other codes, pinned on the measured Ta film of ../shared/data/ta_film (skipped when it is absent).

The v7.3 fixtures are written the way MATLAB writes them: an HDF5 file behind a 512-byte text
header, each variable a dataset with its axes reversed (column-major) and a ``MATLAB_class``
attribute.
"""
import re

import numpy as np
import pytest
import scipy.io

from aetcore import io as aio
from aetcore.io.matlab import mat_angles, mat_model, mat_tilts, mat_variables, mat_volume
from aetcore.model.geometry import ANGLE_CONVENTIONS, angles_from_convention, detector_position, euler_matrices
from aetcore.model.projection import project_atoms

from conftest import SHARED

h5py = pytest.importorskip("h5py")

FILM = SHARED / "ta_film"
PIXEL = 0.3216  # Å, the film's README


def write_v73(path, variables):
    """A MAT v7.3 file as MATLAB writes it (header, reversed axes, MATLAB_class)."""
    header = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Fri Dec  4 12:00:00 2026 HDF5 schema 1.00 ."
    with h5py.File(path, "w", userblock_size=512) as f:
        for name, a in variables.items():
            a = np.asarray(a)
            if a.dtype.kind == "U":
                codes = np.array([[ord(c) for c in s] for s in a], np.uint16)
                ds = f.create_dataset(name, data=codes.T)
                ds.attrs["MATLAB_class"] = np.bytes_("char")
            else:
                ds = f.create_dataset(name, data=a.T)
                ds.attrs["MATLAB_class"] = np.bytes_({"f": "double" if a.itemsize == 8 else "single",
                                                      "i": "int32", "u": "uint16"}[a.dtype.kind])
    with open(path, "r+b") as fh:
        fh.write(header.ljust(116) + b"\x00" * 8 + b"\x00\x02IM")
    return path


@pytest.fixture(params=["v5", "v7.3"])
def write_mat(request, tmp_path):
    def write(name, variables):
        p = tmp_path / f"{name}.mat"
        if request.param == "v5":
            scipy.io.savemat(p, variables)
            return p
        return write_v73(p, variables)
    return write


def test_layouts(write_mat, rng):
    proj = rng.random((10, 6, 4)).astype(np.float32)  # P(dim1, dim2, k): no two sides equal
    vol = rng.random((5, 7, 9)).astype(np.float32)
    model = rng.random((3, 11))
    p = write_mat("proj", {"Proj_sub": proj})
    tilts = aio.read_tilts(p)
    assert tilts.shape == (4, 6, 10) and tilts.dtype == np.float32 and tilts.flags.c_contiguous
    k, y, x = 2, 4, 7
    assert tilts[k, y, x] == proj[x, y, k]  # x along dim1, y along dim2
    assert aio.read_tilt_metadata(p)["shape"] == (4, 6, 10)
    v = mat_volume(write_mat("vol", {"rec": vol}))
    assert v.shape == (9, 7, 5) and v[8, 6, 4] == vol[4, 6, 8]
    pos, species = mat_model(write_mat("model", {"model": model, "atomtype": np.arange(1, 12)[None]}))
    np.testing.assert_array_equal(pos, model.T)
    assert species.tolist() == [str(i) for i in range(1, 12)]
    pos, species = mat_model(write_mat("model2", {"xyz": model.T, "species": np.array(["Fe"] * 11)}))
    np.testing.assert_array_equal(pos, model.T)
    assert species.tolist() == ["Fe"] * 11


def test_angles(write_mat, rng):
    a = rng.uniform(-70, 70, (7, 3))
    np.testing.assert_allclose(aio.read_angles(write_mat("a1", {"angle": a}), 7), a)
    np.testing.assert_allclose(aio.read_angles(write_mat("a2", {"angles": a.T})), a)  # (3, n) as GENFIRE
    np.testing.assert_allclose(aio.read_angles(write_mat("a3", {"tilt": a[:, 1][None]})), a[:, 1])
    p = write_mat("a4", {"angle": a})
    with pytest.raises(ValueError, match=re.escape(str(p)) + ".*7 angles for 8 images"):
        aio.read_angles(p, 8)


def test_variable_choice_and_errors(write_mat, rng, tmp_path):
    b = rng.random((5, 6, 3))
    p = write_mat("two", {"a": rng.random((5, 6, 3)), "b": b})
    with pytest.raises(ValueError, match=re.escape(str(p)) + ".*several variables.*a, b"):
        aio.read_tilts(p)
    np.testing.assert_array_equal(aio.read_tilts(p, dataset="b"), b.transpose(2, 1, 0).astype(np.float32))
    assert set(mat_variables(p)) == {"a", "b"} and mat_variables(p)["b"][0] == (5, 6, 3)
    with pytest.raises(ValueError, match=re.escape(str(p)) + ".*no variable 'c'"):
        aio.read_tilts(p, dataset="c")
    p = write_mat("none", {"scalar": np.array([[3.0]])})
    with pytest.raises(ValueError, match=re.escape(str(p)) + ".*no variable looks like a stack"):
        aio.read_tilts(p)
    bad = tmp_path / "junk.mat"
    bad.write_bytes(b"not a mat file at all" * 10)
    with pytest.raises(ValueError, match=re.escape(str(bad))):
        aio.read_tilts(bad)


# ------------------------------------------------------------------------------- conventions

def test_genfire_convention_is_genfire_s_matrix(rng):
    """GENFIRE (calculate3Dprojection_interp.m, fillInFourierGrid.m, genfire/utility.py) builds this
    matrix and samples the 3D transform at ``R' k`` (k the detector's Fourier coordinates, kz = 0);
    aetcore's Fourier slice is at ``R_aet (k_u, k_v, 0)``, so ``R_aet = R'``."""
    a = rng.uniform(-180, 180, (20, 3))
    phi, theta, psi = np.radians(a).T
    c, s = np.cos, np.sin
    R = np.array([[c(psi) * c(theta) * c(phi) - s(psi) * s(phi), c(psi) * c(theta) * s(phi) + s(psi) * c(phi), -c(psi) * s(theta)],
                  [-s(psi) * c(theta) * c(phi) - c(psi) * s(phi), -s(psi) * c(theta) * s(phi) + c(psi) * c(phi), s(psi) * s(theta)],
                  [s(theta) * c(phi), s(theta) * s(phi), c(theta)]]).transpose(2, 0, 1)
    np.testing.assert_allclose(euler_matrices(angles_from_convention(a, "genfire")),
                               np.transpose(R, (0, 2, 1)), atol=1e-12)


def test_resire_convention_is_the_readme_s_geometry(rng):
    """RESIRE: a voxel r lands on pixel (R r)[0:2], R = (Rq(z, phi) Rq(y, theta) Rq(x, psi))^T,
    Rq(v, a) the right-handed rotation by a about v (Rodrigues' formula, written independently)."""
    def rq(v, a):
        v = np.asarray(v, float)
        K = np.array([[0, -v[2], v[1]], [v[2], 0, -v[0]], [-v[1], v[0], 0]])
        return np.eye(3) + np.sin(a) * K + (1 - np.cos(a)) * K @ K

    a = np.column_stack([rng.uniform(-5, 5, 12), rng.uniform(-70, 70, 12), rng.uniform(-5, 5, 12)])
    r = rng.uniform(-20, 20, (30, 3))
    got = detector_position(r, angles_from_convention(a, "resire"))
    for k, (phi, theta, psi) in enumerate(np.radians(a)):
        R = (rq([0, 0, 1], phi) @ rq([0, 1, 0], theta) @ rq([1, 0, 0], psi)).T
        np.testing.assert_allclose(got[k], (r @ R.T)[:, :2], atol=1e-9)
    # nearly single-axis tilts keep theta's sign and stay near (0, theta, 0) (near theta = 0 a small
    # psi about x is a large phi = -psi about z, correctly)
    z = angles_from_convention(a, "resire")
    assert np.all(np.sign(z[:, 1]) == np.sign(a[:, 1]))
    tilted = np.abs(a[:, 1]) > 20
    assert np.abs(z[tilted][:, [0, 2]]).max() < 15


def test_unknown_convention_is_refused():
    with pytest.raises(ValueError, match="convention.*aetcore, genfire, resire.*'relion'"):
        angles_from_convention([1.0, 2.0], "relion")
    assert ANGLE_CONVENTIONS == ("aetcore", "genfire", "resire")


# ------------------------------------------------------------------- the measured film (shared)

def _film():
    if not FILM.exists():
        pytest.skip(f"{FILM} is not present")
    tilts = aio.read_tilts(FILM / "projections" / "Projections_area1.mat")
    angles = aio.read_angles(FILM / "angles.mat", tilts.shape[0])
    model, _ = mat_model(FILM / "published_model_rows1-2.mat")
    crop = scipy.io.loadmat(FILM / "alignPara.mat")
    centre = crop["CropCen"][0].astype(float)  # area 1's centre, 1-based voxel of the full volume
    # README: full-volume voxel (1-based) = model / pixel + [201, 176, 171]; area 1's origin (index
    # n // 2 of its odd-sized box) is its 1-based CropCen
    positions = model + (np.array([201.0, 176.0, 171.0]) - centre) * PIXEL
    return tilts, angles, positions


def test_film_files_read_as_they_are():
    tilts, angles, positions = _film()
    assert tilts.shape == (46, 61, 131) and angles.shape == (46, 3) and positions.shape == (2127, 3)
    raw = scipy.io.loadmat(FILM / "projections" / "Projections_area1.mat")["Proj_sub"]
    assert tilts[5, 20, 100] == raw[100, 20, 5]
    assert angles[0, 1] == pytest.approx(-63.0, abs=0.01)


def _r1(tilts, positions, angles, shape):
    """R1 = sum|a P + c - b| / sum|b| with the height a and background c fitted by least squares,
    the best over a few B factors (the same fit for every mapping)."""
    y = tilts.astype(np.float64).ravel()
    best = np.inf
    for b in (6.0, 10.0, 14.0):
        x = project_atoms(positions, ["Ta"] * len(positions), angles, shape, PIXEL, heights=1.0,
                          b_factors=b).astype(np.float64).ravel()
        A = np.column_stack([x, np.ones_like(x)])
        coef = np.linalg.lstsq(A, y, rcond=None)[0]
        best = min(best, np.abs(A @ coef - y).sum() / np.abs(y).sum())
    return best


def test_resire_convention_reproduces_the_measured_projections():
    """The published model projected under the resire convention explains Proj_sub better than
    under any other axis mapping or reading of the angles."""
    tilts, raw, pos = _film()
    shape = tilts.shape[1:]
    right = _r1(tilts, pos, angles_from_convention(raw, "resire"), shape)
    phi, theta, psi = raw.T
    gross = {
        "theta reversed": _r1(tilts, pos, angles_from_convention(np.column_stack([phi, -theta, psi]), "resire"), shape),
        "z flipped": _r1(tilts, pos * [1, 1, -1], angles_from_convention(raw, "resire"), shape),
        "x flipped": _r1(tilts, pos * [-1, 1, 1], angles_from_convention(raw, "resire"), shape),
        "dim1 and dim2 swapped": _r1(np.ascontiguousarray(np.transpose(tilts, (0, 2, 1))), pos[:, [1, 0, 2]],
                                     theta, shape[::-1]),
    }
    fine = {  # the +-0.4 degree phi and psi read another way
        "aetcore ZYZ": _r1(tilts, pos, angles_from_convention(raw, "aetcore"), shape),
        "phi reversed": _r1(tilts, pos, angles_from_convention(np.column_stack([-phi, theta, psi]), "resire"), shape),
        "psi reversed": _r1(tilts, pos, angles_from_convention(np.column_stack([phi, theta, -psi]), "resire"), shape),
    }
    assert right < 0.32, right
    for name, r1 in gross.items():
        assert right < 0.85 * r1, (name, right, r1)
    for name, r1 in fine.items():
        assert right < r1, (name, right, r1)


def test_aet_preprocess_reads_the_film_as_it_is(tmp_path):
    """`aet preprocess FILE.mat --angles angles.mat --angle-convention resire` (the first step of
    `aet run`) stores the series in aetcore's layout and the angles converted to ZYZ."""
    from aetcore.app.cli import main
    from aetcore.io.results import load_step

    tilts, raw, _ = _film()
    out = tmp_path / "run"
    config = tmp_path / "film.toml"
    config.write_text("[preprocess]\nalways = false\n")  # the source's series is already clean
    assert main(["preprocess", str(FILM / "projections" / "Projections_area1.mat"), "--angles",
                 str(FILM / "angles.mat"), "--angle-convention", "resire", "--pixel-size", str(PIXEL),
                 "--species", "Ta", "--out", str(out), "--config", str(config), "--quiet"]) == 0
    arrays, _ = load_step(out / "steps" / "preprocess.h5")
    np.testing.assert_array_equal(arrays["tilts"], tilts)
    np.testing.assert_allclose(arrays["angles"], angles_from_convention(raw, "resire"))
    assert not np.allclose(arrays["angles"], raw)
