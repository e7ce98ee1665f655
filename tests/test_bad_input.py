"""Bad input is refused before any work, with a message naming the argument (CONVENTIONS.md)."""
import numpy as np
import pytest

from aetcore.project import backproject_volume, project_atoms, project_volume, render_atoms
from aetcore.reconstruct import genfire, resire, sirt, wbp

T = np.ones((5, 16, 16), np.float32)
A = np.linspace(-60, 60, 5)
RECONSTRUCTORS = [genfire, resire, sirt, wbp]


@pytest.mark.parametrize("fn", RECONSTRUCTORS)
def test_angle_count_must_match_images(fn):
    with pytest.raises(ValueError, match="angles"):
        fn(T, A[:4])


@pytest.mark.parametrize("fn", RECONSTRUCTORS)
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nan_and_inf_are_refused(fn, bad):
    t = T.copy()
    t[2, 3, 4] = bad
    with pytest.raises(ValueError, match="tilts"):
        fn(t, A)
    a = A.copy()
    a[1] = bad
    with pytest.raises(ValueError, match="angles"):
        fn(T, a)


@pytest.mark.parametrize("fn", RECONSTRUCTORS)
def test_wrong_ndim_and_dtype(fn):
    with pytest.raises(ValueError, match="tilts"):
        fn(T[0], A)
    with pytest.raises(TypeError, match="tilts"):
        fn(T.astype(np.complex64), A)
    with pytest.raises(TypeError, match="tilts"):
        fn("tilts.tif", A)
    with pytest.raises(ValueError, match="angles"):
        fn(T, np.zeros((5, 2)))


@pytest.mark.parametrize("fn", RECONSTRUCTORS)
@pytest.mark.parametrize("ps", [0.0, -1.0])
def test_non_positive_pixel_size(fn, ps):
    with pytest.raises(ValueError, match="pixel_size"):
        fn(T, A, pixel_size=ps)


def test_genfire_specific_options():
    with pytest.raises(ValueError, match="oversampling"):
        genfire(T, A, oversampling=0.5)
    with pytest.raises(ValueError, match="iterations"):
        genfire(T, A, iterations=0)
    with pytest.raises(ValueError, match="support"):
        genfire(T, A, support=np.ones((8, 8, 8), bool))
    with pytest.raises(ValueError, match="support"):
        genfire(T, A, support="sphere")
    with pytest.raises(ValueError, match="rfree_fraction"):
        genfire(T, A, rfree_fraction=0.9)
    with pytest.raises(TypeError, match="seed"):
        genfire(T, A, seed="abc")
    with pytest.raises(ValueError, match="threads"):
        genfire(T, A, threads=0)
    with pytest.raises(ValueError, match="tilts"):
        genfire(np.zeros_like(T), A)


def test_degrees_out_of_range_are_refused():
    with pytest.raises(ValueError, match="angles"):
        project_volume(np.ones((8, 8, 8), np.float32), [400.0])


def test_projector_inputs():
    v = np.ones((8, 8, 8), np.float32)
    with pytest.raises(ValueError, match="volume"):
        project_volume(v[0], [0.0])
    with pytest.raises(ValueError, match="detector_shape"):
        project_volume(v, [0.0], detector_shape=(8,))
    with pytest.raises(ValueError, match="angles"):
        backproject_volume(np.ones((2, 8, 8), np.float32), [0.0], (8, 8, 8))
    with pytest.raises(ValueError, match="shape"):
        backproject_volume(np.ones((1, 8, 8), np.float32), [0.0], (8, 8))


def test_atom_inputs():
    p = np.zeros((2, 3))
    with pytest.raises(ValueError, match="species"):
        project_atoms(p, ["Pt"], [0.0], (8, 8), 1.0)
    with pytest.raises(ValueError, match="species"):
        project_atoms(p, ["Pt", "Xx"], [0.0], (8, 8), 1.0)
    with pytest.raises(ValueError, match="positions"):
        project_atoms(np.zeros((2, 2)), ["Pt", "Pt"], [0.0], (8, 8), 1.0)
    with pytest.raises(ValueError, match="pixel_size"):
        render_atoms(p, ["Pt", "Pt"], (8, 8, 8), 0.0)
    with pytest.raises(ValueError, match="b_factors"):
        render_atoms(p, ["Pt", "Pt"], (8, 8, 8), 1.0, b_factors=-1.0)
    bad = p.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="positions"):
        render_atoms(bad, ["Pt", "Pt"], (8, 8, 8), 1.0)
