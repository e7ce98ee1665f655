"""aetcore.io: round trips for every format, truncated/corrupt files, angle-count mismatches and
atomic writes."""
import json
import os

import numpy as np
import pytest
from ase import Atoms

from aetcore import io as aio


@pytest.fixture
def stack(rng):
    return rng.random((5, 12, 16)).astype(np.float32)


def _same(a, b):
    assert a.dtype == np.float32 and a.flags.c_contiguous
    np.testing.assert_array_equal(a, b)


def test_npy_round_trip(tmp_path, stack):
    aio.write_npy(tmp_path / "t.npy", stack)
    _same(aio.read_tilts(tmp_path / "t.npy"), stack)


def test_tiff_round_trip(tmp_path, stack):
    tifffile = pytest.importorskip("tifffile")
    tifffile.imwrite(tmp_path / "t.tif", stack)
    _same(aio.read_tilts(tmp_path / "t.tif"), stack)
    tifffile.imwrite(tmp_path / "one.tiff", stack[0])
    _same(aio.read_tilts(tmp_path / "one.tiff"), stack[:1])


def test_mrc_round_trip_and_voxel_size(tmp_path, stack):
    mrcfile = pytest.importorskip("mrcfile")
    aio.write_mrc(tmp_path / "v.mrc", stack, 0.35)
    _same(aio.read_tilts(tmp_path / "v.mrc"), stack)
    with mrcfile.open(tmp_path / "v.mrc") as m:
        assert m.voxel_size.x == pytest.approx(0.35, rel=1e-6)
        assert m.voxel_size.z == pytest.approx(0.35, rel=1e-6)
        assert m.data.shape == stack.shape


def test_hdf5_round_trip_and_dataset(tmp_path, stack):
    h5py = pytest.importorskip("h5py")
    with h5py.File(tmp_path / "t.h5", "w") as f:
        f["data/tilts"] = stack
    _same(aio.read_tilts(tmp_path / "t.h5"), stack)  # the only 3D dataset
    with h5py.File(tmp_path / "two.hdf5", "w") as f:
        f["a"] = stack
        f["b"] = 2 * stack
    with pytest.raises(ValueError, match="two.hdf5.*dataset"):
        aio.read_tilts(tmp_path / "two.hdf5")
    _same(aio.read_tilts(tmp_path / "two.hdf5", dataset="b"), 2 * stack)
    with pytest.raises(ValueError, match="two.hdf5.*'c'"):
        aio.read_tilts(tmp_path / "two.hdf5", dataset="c")


@pytest.mark.parametrize("suffix", [".npy", ".tif", ".mrc", ".h5"])
def test_truncated_files(tmp_path, stack, suffix):
    pytest.importorskip({".npy": "numpy", ".tif": "tifffile", ".mrc": "mrcfile", ".h5": "h5py"}[suffix])
    good = tmp_path / ("good" + suffix)
    if suffix == ".npy":
        aio.write_npy(good, stack)
    elif suffix == ".tif":
        import tifffile
        tifffile.imwrite(good, stack)
    elif suffix == ".mrc":
        aio.write_mrc(good, stack, 1.0)
    else:
        import h5py
        with h5py.File(good, "w") as f:
            f["t"] = stack
    data = good.read_bytes()
    bad = tmp_path / ("bad" + suffix)
    bad.write_bytes(data[: len(data) // 2])
    for fn in (aio.read_tilts, aio.read_tilt_metadata):  # metadata alone must notice it too
        with pytest.raises(ValueError, match="bad" + suffix.replace(".", r"\.")):
            fn(bad)
    # just the end missing (tifffile ends a file with 16 unreferenced bytes: cutting those loses nothing)
    for cut in (len(data) - 100,) + (() if suffix == ".tif" else (len(data) - 1,)):
        bad.write_bytes(data[:cut])
        with pytest.raises(ValueError, match="bad" + suffix.replace(".", r"\.")):
            aio.read_tilt_metadata(bad)


def test_bad_tilt_files(tmp_path, stack):
    with pytest.raises(ValueError, match="no such file"):
        aio.read_tilts(tmp_path / "missing.npy")
    (tmp_path / "empty.npy").write_bytes(b"")
    with pytest.raises(ValueError, match="empty.npy.*empty"):
        aio.read_tilts(tmp_path / "empty.npy")
    (tmp_path / "t.xyz").write_text("1\n")
    with pytest.raises(ValueError, match="t.xyz.*format"):
        aio.read_tilts(tmp_path / "t.xyz")
    np.save(tmp_path / "4d.npy", stack[None])
    with pytest.raises(ValueError, match="4d.npy.*shape"):
        aio.read_tilts(tmp_path / "4d.npy")
    s = stack.copy()
    s[0, 0, 0] = np.nan
    np.save(tmp_path / "nan.npy", s)
    with pytest.raises(ValueError, match="nan.npy.*NaN"):
        aio.read_tilts(tmp_path / "nan.npy")
    np.save(tmp_path / "c.npy", stack.astype(np.complex64))
    with pytest.raises(ValueError, match="c.npy.*dtype"):
        aio.read_tilts(tmp_path / "c.npy")


def test_read_angles_formats(tmp_path):
    a = np.array([-60.0, -30.5, 0.0, 29.75, 61.0])
    (tmp_path / "a.rawtlt").write_text("\n".join(f"{x:.2f}" for x in a) + "\n\n")
    np.testing.assert_allclose(aio.read_angles(tmp_path / "a.rawtlt"), a)
    (tmp_path / "a.csv").write_text("angle\n" + "\n".join(map(str, a)) + "\n")
    np.testing.assert_allclose(aio.read_angles(tmp_path / "a.csv", n=5), a)
    e = np.column_stack([np.zeros(5), a, np.full(5, 3.0)])
    (tmp_path / "e.csv").write_text("# phi, theta, psi\n" + "\n".join(", ".join(map(str, r)) for r in e))
    np.testing.assert_allclose(aio.read_angles(tmp_path / "e.csv"), e)
    aio.write_angles(tmp_path / "w.txt", a)
    np.testing.assert_allclose(aio.read_angles(tmp_path / "w.txt"), a)


def test_read_angles_errors(tmp_path):
    (tmp_path / "a.txt").write_text("0\n10\n20\n")
    with pytest.raises(ValueError, match=r"a.txt: 3 angles for 4 images"):
        aio.read_angles(tmp_path / "a.txt", n=4)
    (tmp_path / "bad.txt").write_text("0\n10\nten\n")
    with pytest.raises(ValueError, match=r"bad.txt: line 3"):
        aio.read_angles(tmp_path / "bad.txt")
    (tmp_path / "two.txt").write_text("0 1\n10 2\n")
    with pytest.raises(ValueError, match=r"two.txt.*three"):
        aio.read_angles(tmp_path / "two.txt")
    (tmp_path / "rad.txt").write_text("0\n1000\n")
    with pytest.raises(ValueError, match=r"rad.txt.*degrees"):
        aio.read_angles(tmp_path / "rad.txt")
    (tmp_path / "blank.txt").write_text("# nothing\n\n")
    with pytest.raises(ValueError, match=r"blank.txt: no angles"):
        aio.read_angles(tmp_path / "blank.txt")


def test_write_xyz_round_trip_with_arrays(tmp_path, rng):
    from ase.io import read
    at = Atoms(symbols=["Fe", "Pt", "Pt"], positions=rng.normal(size=(3, 3)) * 5)
    at.set_array("intensity", np.array([1.0, 2.5, 3.0]))
    at.set_array("fit_status", np.array([0, 1, 0]))
    at.set_array("precision", rng.random((3, 3)))
    at.info.update(r1_after=0.01, timings={"trace": 1.0}, pixel_size=0.4)
    aio.write_xyz(tmp_path / "a.xyz", at)
    back = read(tmp_path / "a.xyz")
    assert back.get_chemical_symbols() == ["Fe", "Pt", "Pt"]
    np.testing.assert_allclose(back.positions, at.positions, atol=1e-6)
    np.testing.assert_allclose(back.get_array("intensity"), at.get_array("intensity"))
    np.testing.assert_array_equal(back.get_array("fit_status"), [0, 1, 0])
    np.testing.assert_allclose(back.get_array("precision"), at.get_array("precision"), atol=1e-6)
    assert back.info["r1_after"] == pytest.approx(0.01)
    # one frame per model
    aio.write_xyz(tmp_path / "two.xyz", [at, at[:2]])
    frames = read(tmp_path / "two.xyz", index=":")
    assert [len(f) for f in frames] == [3, 2]


def test_write_json(tmp_path):
    aio.write_json(tmp_path / "s.json", {"a": np.float32(1.5), "b": np.arange(3), "c": np.int64(2)})
    assert json.loads((tmp_path / "s.json").read_text()) == {"a": 1.5, "b": [0, 1, 2], "c": 2}


def test_writers_are_atomic(tmp_path, stack):
    target = tmp_path / "s.json"
    target.write_text("old")
    with pytest.raises(TypeError):
        aio.write_json(target, {"x": object()})
    assert target.read_text() == "old"
    with pytest.raises(ValueError, match="volume"):
        aio.write_mrc(tmp_path / "v.mrc", stack[0], 1.0)
    with pytest.raises(RuntimeError):
        with aio.atomic_path(tmp_path / "v.mrc") as tmp:
            open(tmp, "w").write("half")
            raise RuntimeError("crash mid-write")
    assert sorted(os.listdir(tmp_path)) == ["s.json"]  # no temporary files, no partial target
    with pytest.raises(ValueError, match="does not exist"):
        aio.write_json(tmp_path / "nodir" / "x.json", {})


def test_read_atoms_reads_what_write_xyz_writes(tmp_path):
    a = Atoms(["Fe", "Pt", "Fe"], positions=[[0, 0, 0], [1.5, 0, 0], [0, 2.25, 1]])
    a.set_array("intensity", np.array([1.0, 2.0, 3.0]))
    aio.write_xyz(tmp_path / "atoms.xyz", a)
    for where in (tmp_path, tmp_path / "atoms.xyz"):  # a results folder or the file itself
        b = aio.read_atoms(where)
        assert b.get_chemical_symbols() == ["Fe", "Pt", "Fe"]
        np.testing.assert_allclose(b.positions, a.positions)
        np.testing.assert_allclose(b.arrays["intensity"], [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="at least 4 atoms"):
        aio.read_atoms(tmp_path, min_atoms=4)
    aio.write_xyz(tmp_path / "two.xyz", [a, a])
    with pytest.raises(ValueError, match="one model"):
        aio.read_atoms(tmp_path / "two.xyz")
    (tmp_path / "bad.xyz").write_text("3\nnot xyz\nFe 0 0\n")
    with pytest.raises(ValueError, match="bad.xyz"):
        aio.read_atoms(tmp_path / "bad.xyz")
    with pytest.raises(ValueError, match="folders: .*holds no atoms.xyz"):
        aio.read_atoms(tmp_path / "missing", name="folders")
