"""aetcore.io readers for microscope formats (issue 5, "Files users have"): DM3/DM4, SER (+EMI),
Berkeley and Velox EMD, MRC extended headers and HDF5 metadata.

Fixtures are generated in tmp_path: DM, SER, EMI and Velox files by tests/io/em_writers.py (checked
against ncempy's own readers first), Berkeley EMD by ncempy's writer, MRC by mrcfile. Every reader
must give back the exact array as float32 (n, ny, nx), the pixel size in Å and the tilt angles in
degrees where the file holds them, and refuse corrupt or truncated files with a ValueError that
names the file (never another exception, a crash or a hang).
"""
import re
import time

import numpy as np
import pytest

from aetcore import io as aio

from em_writers import dm_bytes, ser_bytes, write_dm, write_emi, write_ser, write_velox

ncempy_io = pytest.importorskip("ncempy.io")
h5py = pytest.importorskip("h5py")


@pytest.fixture
def stack(rng):
    return rng.random((4, 6, 10)).astype(np.float32)  # n=4 images of ny=6 x nx=10: no axis is symmetric


def _same(a, b):
    assert a.dtype == np.float32 and a.flags.c_contiguous and a.ndim == 3
    np.testing.assert_array_equal(a, b)


def _raises_naming(path, fn=aio.read_tilts, what=None, **kw):
    pattern = re.escape(str(path)) + (".*" + what if what else "")
    with pytest.raises(ValueError, match=pattern):
        fn(path, **kw)


def _berkeley(path, data, dims):
    from ncempy.io import emd
    with emd.fileEMD(path, readonly=False) as f:
        assert f.put_emdgroup("tilts", data, dims) is not None
    return path


# ------------------------------------------------------------------------------------ DM3 / DM4

@pytest.mark.parametrize("version", [3, 4])
@pytest.mark.parametrize("thumbnail", [True, False])
def test_dm_stack_round_trip(tmp_path, stack, version, thumbnail):
    p = write_dm(tmp_path / f"t.dm{version}", stack, version=version, pixel_size=0.035, unit="nm",
                 stage_alpha=-12.5, thumbnail=thumbnail)
    # the fixture is a DM file as ncempy understands it
    ref = ncempy_io.dm.dmReader(p)
    np.testing.assert_array_equal(ref["data"], stack)
    assert ref["pixelUnit"][-2:] == ["nm", "nm"]
    _same(aio.read_tilts(p), stack)
    meta = aio.read_tilt_metadata(p)
    assert meta["format"] == f"dm{version}" and meta["shape"] == (4, 6, 10)
    assert meta["pixel_size"] == pytest.approx(0.35, rel=1e-6)  # 0.035 nm (float32 tag) in Å
    assert meta["stage_alpha"] == -12.5
    assert meta["angles"] is None  # one stage tilt for four images is not a tilt series
    with pytest.raises(ValueError, match=r"t\.dm\d.*one stage tilt, -12.5 deg.*4 images"):
        aio.read_angles(p)


@pytest.mark.parametrize("unit,scale", [("nm", 0.042), ("\u00b5m", 4.2e-5), ("\u00c5", 0.42), ("pm", 42.0)])
def test_dm_single_image_angle_and_units(tmp_path, rng, unit, scale):
    img = (rng.random((7, 5)) * 4000).astype(np.uint16)
    p = write_dm(tmp_path / "one.dm3", img, version=3, pixel_size=scale, unit=unit, stage_alpha=31.25)
    _same(aio.read_tilts(p), img[None].astype(np.float32))
    meta = aio.read_tilt_metadata(p)
    assert meta["shape"] == (1, 7, 5)
    assert meta["pixel_size"] == pytest.approx(0.42, rel=1e-6)
    np.testing.assert_array_equal(meta["angles"], [31.25])
    np.testing.assert_array_equal(aio.read_angles(p, n=1), [31.25])
    with pytest.raises(ValueError, match=r"one.dm3: 1 angles for 2 images"):
        aio.read_angles(p, n=2)


def test_dm_without_calibration_or_tilt(tmp_path, stack):
    p = write_dm(tmp_path / "bare.dm4", stack)
    meta = aio.read_tilt_metadata(p)
    assert meta["pixel_size"] is None and meta["angles"] is None and meta["stage_alpha"] is None
    _raises_naming(p, aio.read_angles, "no tilt angle")


# ---------------------------------------------------------------------------------- SER (+ EMI)

@pytest.mark.parametrize("version", [0x0210, 0x0220])
@pytest.mark.parametrize("positions", [False, True])
def test_ser_round_trip(tmp_path, stack, version, positions):
    p = write_ser(tmp_path / "s_1.ser", stack, pixel_size_m=3.5e-11, version=version, positions=positions,
                  times=[10, 20, 30, 40])
    ref = ncempy_io.ser.serReader(str(p))
    np.testing.assert_array_equal(ref["data"], stack)
    assert ref["pixelSize"] == [3.5e-11, 3.5e-11]
    with ncempy_io.ser.fileSER(str(p)) as f:  # the per-image tags are where TIA puts them
        assert [int(f._getTag(k)["Time"]) for k in range(4)] == [10, 20, 30, 40]
        if positions:
            assert f._getTag(2)["PositionX"] == pytest.approx(2e-9)
    _same(aio.read_tilts(p), stack)
    meta = aio.read_tilt_metadata(p)
    assert meta["format"] == "ser" and meta["shape"] == (4, 6, 10)
    assert meta["pixel_size"] == pytest.approx(0.35, rel=1e-12)
    assert meta["angles"] is None and meta["stage_alpha"] is None  # no .emi next to it


def test_ser_stage_tilt_from_emi(tmp_path, stack):
    one = write_ser(tmp_path / "tilt_1.ser", stack[:1], pixel_size_m=2e-11)
    write_emi(tmp_path / "tilt.emi", stage_alpha=-42.5)
    assert ncempy_io.ser.serReader(str(one))["metadata"]["Stage A [deg]"] == -42.5
    meta = aio.read_tilt_metadata(one)
    assert meta["stage_alpha"] == -42.5 and meta["pixel_size"] == pytest.approx(0.2)
    np.testing.assert_array_equal(aio.read_angles(one), [-42.5])
    many = write_ser(tmp_path / "series_1.ser", stack)
    write_emi(tmp_path / "series.emi", stage_alpha=10.0)
    assert aio.read_tilt_metadata(many)["stage_alpha"] == 10.0
    with pytest.raises(ValueError, match=r"series_1.ser.*one stage tilt, 10 deg, for its 4 images"):
        aio.read_angles(many)


def test_ser_int_images(tmp_path, rng):
    img = rng.integers(-3000, 3000, (2, 9, 4)).astype(np.int16)
    p = write_ser(tmp_path / "i_1.ser", img)
    _same(aio.read_tilts(p), img.astype(np.float32))


# ---------------------------------------------------------------------------------------- EMD

def test_berkeley_emd_angles_from_dim1(tmp_path, stack):
    angles = np.array([-60.0, -20.0, 15.5, 58.0])
    p = _berkeley(tmp_path / "b.emd", stack, [(angles, "tilt angle", "deg"), (np.arange(6) * 0.035, "y", "n_m"),
                                              (np.arange(10) * 0.035, "x", "n_m")])
    ref = ncempy_io.emd.emdReader(p)
    np.testing.assert_array_equal(ref["data"], stack)
    _same(aio.read_tilts(p), stack)
    meta = aio.read_tilt_metadata(p)
    assert meta["format"] == "emd" and meta["shape"] == (4, 6, 10)
    assert meta["pixel_size"] == pytest.approx(0.35, rel=1e-12)
    np.testing.assert_array_equal(meta["angles"], angles)
    assert "dim1" in meta["angles_source"]
    np.testing.assert_array_equal(aio.read_angles(p, n=4), angles)
    with pytest.raises(ValueError, match=r"b.emd: 4 angles for 5 images"):
        aio.read_angles(p, n=5)


def test_berkeley_emd_radians_and_no_angles(tmp_path, stack):
    rad = np.radians([-45.0, -15.0, 15.0, 45.0])
    p = _berkeley(tmp_path / "r.emd", stack, [(rad, "alpha", "rad"), (np.arange(6) * 1e-10, "y", "m"),
                                              (np.arange(10) * 1e-10, "x", "m")])
    np.testing.assert_allclose(aio.read_angles(p), [-45.0, -15.0, 15.0, 45.0], rtol=0, atol=1e-12)
    assert aio.read_tilt_metadata(p)["pixel_size"] == pytest.approx(1.0)
    q = _berkeley(tmp_path / "plain.emd", stack, [(np.arange(4.0), "index", "pixels"),
                                                  (np.arange(6.0), "y", "pixels"), (np.arange(10.0), "x", "pixels")])
    meta = aio.read_tilt_metadata(q)
    assert meta["angles"] is None and meta["pixel_size"] is None
    _raises_naming(q, aio.read_angles, "no tilt angle")


def test_berkeley_emd_choose_group(tmp_path, stack):
    from ncempy.io import emd
    p = tmp_path / "two.emd"
    with emd.fileEMD(p, readonly=False) as f:
        f.put_emdgroup("haadf", stack, emd.defaultDims(stack))
        f.put_emdgroup("bf", 2 * stack, emd.defaultDims(stack))
    _raises_naming(p, what="dataset option")
    _same(aio.read_tilts(p, dataset="bf"), 2 * stack)
    _same(aio.read_tilts(p, dataset="/data/haadf"), stack)
    _raises_naming(p, what="'df'", dataset="df")


def test_velox_emd_per_frame_alpha(tmp_path, stack):
    alpha = np.array([-55.0, -18.5, 20.0, 61.25])
    p = write_velox(tmp_path / "v.emd", stack, pixel_size_m=3.5e-11, alpha_rad=np.radians(alpha))
    ref = ncempy_io.emdVelox.emdVeloxReader(p)  # ncempy reads the fixture: (ny, nx, n) frames, nm
    np.testing.assert_array_equal(np.moveaxis(ref["data"], 2, 0), stack)
    assert ref["pixelSize"][0] == pytest.approx(0.035)
    _same(aio.read_tilts(p), stack)
    meta = aio.read_tilt_metadata(p)
    assert meta["format"] == "emd-velox" and meta["shape"] == (4, 6, 10)
    assert meta["pixel_size"] == pytest.approx(0.35, rel=1e-12)
    np.testing.assert_allclose(meta["angles"], alpha, rtol=0, atol=1e-9)
    np.testing.assert_allclose(aio.read_angles(p, n=4), alpha, rtol=0, atol=1e-9)


def test_velox_emd_choose_detector(tmp_path, stack):
    p = write_velox(tmp_path / "d.emd", stack, detector="HAADF", uuid="aaaa",
                    extra_images=[("bbbb", 3 * stack, "DF4")])
    _raises_naming(p, what="dataset option")
    _same(aio.read_tilts(p, dataset="DF4"), 3 * stack)
    _same(aio.read_tilts(p, dataset="aaaa"), stack)
    _raises_naming(p, what="'BF'", dataset="BF")


# ------------------------------------------------------------------------------- MRC and HDF5

def test_mrc_fei_and_imod_extended_header_angles(tmp_path, stack):
    mrcfile = pytest.importorskip("mrcfile")
    from mrcfile.dtypes import get_ext_header_dtype
    angles = np.array([-60.5, -20.0, 0.25, 45.0])
    with mrcfile.new(tmp_path / "fei.mrc") as m:
        m.set_data(stack)
        m.voxel_size = 0.4
        dt = get_ext_header_dtype(b"FEI1")
        ext = np.zeros(4, dt)
        ext["Metadata size"] = dt.itemsize
        ext["Alpha tilt"] = angles
        m.set_extended_header(ext)
        m.header.exttyp = b"FEI1"
    with mrcfile.new(tmp_path / "seri.st") as m:  # SerialEM/IMOD: int16 tilt angle x 100 per section
        m.set_data(stack)
        m.set_extended_header(np.frombuffer((angles * 100).round().astype("<i2").tobytes(), "V1"))
        m.header.exttyp = b"SERI"
        extra2 = bytearray(bytes(m.header.extra2))
        extra2[16:20] = np.array([2, 1], "<i2").tobytes()  # nint = 2 bytes per section, nreal = flag 1
        m.header.extra2 = bytes(extra2)
    for name, pixel in (("fei.mrc", 0.4), ("seri.st", None)):
        p = tmp_path / name
        _same(aio.read_tilts(p), stack)
        meta = aio.read_tilt_metadata(p)
        assert meta["shape"] == (4, 6, 10)
        assert meta["pixel_size"] == (None if pixel is None else pytest.approx(pixel, rel=1e-6))
        np.testing.assert_array_equal(meta["angles"], angles)
        np.testing.assert_array_equal(aio.read_angles(p, n=4), angles)
    aio.write_mrc(tmp_path / "plain.mrc", stack, 1.5)
    meta = aio.read_tilt_metadata(tmp_path / "plain.mrc")
    assert meta["angles"] is None and meta["pixel_size"] == pytest.approx(1.5)
    data = (tmp_path / "plain.mrc").read_bytes()
    (tmp_path / "cut.mrc").write_bytes(data[:-8])
    _raises_naming(tmp_path / "cut.mrc", aio.read_tilt_metadata, "truncated")


def test_hdf5_angle_and_pixel_metadata(tmp_path, stack):
    rad = np.radians([-30.0, -10.0, 10.0, 30.0])
    with h5py.File(tmp_path / "a.h5", "w") as f:
        f["images"] = stack
        f["images"].attrs["pixel_size"] = 0.04
        f["images"].attrs["pixel_size_units"] = "nm"
        f["meta/tilt_angles"] = rad
        f["meta/tilt_angles"].attrs["units"] = "rad"
    _same(aio.read_tilts(tmp_path / "a.h5"), stack)
    meta = aio.read_tilt_metadata(tmp_path / "a.h5")
    assert meta["pixel_size"] == pytest.approx(0.4)
    np.testing.assert_allclose(meta["angles"], [-30.0, -10.0, 10.0, 30.0], atol=1e-12)
    with h5py.File(tmp_path / "b.h5", "w") as f:
        f["t"] = stack
        f["t"].attrs["angles"] = [1.0, 2.0, 3.0, 4.0]
        f.attrs["pixel_size"] = 0.5  # Å by the aetcore convention
    assert aio.read_tilt_metadata(tmp_path / "b.h5")["pixel_size"] == 0.5
    np.testing.assert_array_equal(aio.read_angles(tmp_path / "b.h5"), [1, 2, 3, 4])
    with h5py.File(tmp_path / "c.h5", "w") as f:
        f["t"] = stack
        f["x/angles"] = np.arange(4.0)
        f["y/angles"] = np.arange(4.0) + 1
    _raises_naming(tmp_path / "c.h5", aio.read_tilt_metadata, "several tilt-angle")
    with h5py.File(tmp_path / "d.h5", "w") as f:
        f["t"] = stack
        f["angles"] = np.arange(3.0)
    _raises_naming(tmp_path / "d.h5", aio.read_angles, "3 angles for 4 images")


@pytest.mark.parametrize("unit,step", [("nm", 0.035), ("micron", 3.5e-5), ("\\u00B5m", 3.5e-5), (None, None)])
def test_tiff_imagej_pixel_size(tmp_path, stack, unit, step):
    tifffile = pytest.importorskip("tifffile")
    p = tmp_path / "ij.tif"
    if unit is None:
        tifffile.imwrite(p, stack, photometric="minisblack")
    else:
        tifffile.imwrite(p, stack, imagej=True, resolution=(1 / step, 1 / step), metadata={"unit": unit})
    _same(aio.read_tilts(p), stack)
    meta = aio.read_tilt_metadata(p)
    assert meta["shape"] == (4, 6, 10) and meta["angles"] is None
    assert meta["pixel_size"] == (None if unit is None else pytest.approx(0.35, rel=1e-6))


def test_formats_without_metadata_and_option_checks(tmp_path, stack):
    aio.write_npy(tmp_path / "t.npy", stack)
    meta = aio.read_tilt_metadata(tmp_path / "t.npy")
    assert meta == {"format": "npy", "shape": (4, 6, 10), "pixel_size": None, "angles": None,
                    "angles_source": None, "stage_alpha": None}
    _raises_naming(tmp_path / "t.npy", aio.read_angles, "no tilt angle")
    _raises_naming(tmp_path / "t.npy", what="dataset option", dataset="x")
    (tmp_path / "a.txt").write_text("0\n1\n")
    _raises_naming(tmp_path / "a.txt", aio.read_angles, "dataset option", dataset="x")
    for s in (".emd", ".dm3", ".dm4", ".ser"):
        assert s in aio.TILT_SUFFIXES


# --------------------------------------------------------------------- corrupt and truncated files

def _fixtures(tmp_path, stack):
    """name -> bytes of a good file of each new format."""
    out = {"t.dm3": dm_bytes(stack, version=3, pixel_size=0.03, stage_alpha=4.0),
           "t.dm4": dm_bytes(stack, version=4, pixel_size=0.03, stage_alpha=4.0),
           "s_1.ser": ser_bytes(stack, pixel_size_m=3e-11)}
    out["v.emd"] = write_velox(tmp_path / "good_v.emd", stack, alpha_rad=np.zeros(4)).read_bytes()
    out["b.emd"] = _berkeley(tmp_path / "good_b.emd", stack, [(np.arange(4.0), "a", "deg"), (np.arange(6.0), "y", "nm"),
                                                              (np.arange(10.0), "x", "nm")]).read_bytes()
    return out


def _patch(data, offset, raw):
    b = bytearray(data)
    b[offset:offset + len(raw)] = raw
    return bytes(b)


@pytest.mark.parametrize("name", ["t.dm3", "t.dm4", "s_1.ser", "v.emd", "b.emd"])
def test_truncated_files_are_refused(tmp_path, stack, name):
    data = _fixtures(tmp_path, stack)[name]
    for cut in (3, 11, 40, len(data) // 4, len(data) // 2, len(data) - 40):
        bad = tmp_path / f"cut{cut}_{name}"
        bad.write_bytes(data[:cut])
        for fn in (aio.read_tilts, aio.read_tilt_metadata):
            _raises_naming(bad, fn)


def test_corrupt_headers_are_refused(tmp_path, stack):
    good = _fixtures(tmp_path, stack)
    dm3, dm4, ser = good["t.dm3"], good["t.dm4"], good["s_1.ser"]
    cases = {
        "version.dm3": (_patch(dm3, 0, b"\0\0\0\x07"), "not a DigitalMicrograph"),
        "endian.dm4": (_patch(dm4, 12, b"\0\0\0\0"), "Little Endian"),
        "ntags.dm3": (_patch(dm3, 14, b"\x7f\xff\xff\xff"), ""),  # root tag count far beyond the file
        "delim.dm4": (dm4.replace(b"%%%%", b"%%x%", 1), ""),
        "order_1.ser": (_patch(ser, 0, b"\x4d\x4d"), "not a TIA SER"),
        "ver_1.ser": (_patch(ser, 4, b"\x30\x02"), "unknown SER version"),
        "spectra_1.ser": (_patch(ser, 6, (0x4120).to_bytes(4, "little")), "spectra"),
        "count_1.ser": (_patch(ser, 18, (10 ** 9).to_bytes(4, "little")), "valid of"),
        "offset_1.ser": (_patch(ser, 22, (10 ** 12).to_bytes(8, "little")), "offset array"),
        "sig.emd": (_patch(good["v.emd"], 0, b"\x00HDF"), ""),
        "sig_b.emd": (_patch(good["b.emd"], 1, b"XYZ"), ""),
    }
    # an image whose header claims 2**20 columns: SER image 0 header starts at the first data offset
    arr = int.from_bytes(ser[22:30], "little")  # OffsetArrayOffset (SER 0x0220: int64)
    first = int.from_bytes(ser[arr:arr + 8], "little")  # image 0: two 20-byte calibrations, type, nx, ny
    cases["wide_1.ser"] = (_patch(ser, first + 42, (2 ** 20).to_bytes(4, "little")), "ends at byte")
    for fname, (data, what) in cases.items():
        p = tmp_path / fname
        p.write_bytes(data)
        for fn in (aio.read_tilts, aio.read_tilt_metadata):
            _raises_naming(p, fn, what or None)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # ncempy's size arithmetic overflows on damaged tags
def test_random_damage_never_escapes_as_another_error(tmp_path, stack, rng):
    """Flip bytes (mostly in the headers) and truncate: every outcome is a ValueError naming the
    file or a stack of the right shape; no other exception, no hang (each call well under 2 s)."""
    for name, data in _fixtures(tmp_path, stack).items():
        p = tmp_path / f"x_{name}"
        for trial in range(40):
            b = bytearray(data)
            for _ in range(int(rng.integers(1, 4))):
                i = int(rng.integers(0, min(len(b), 300))) if trial % 4 else int(rng.integers(0, len(b)))
                b[i] = int(rng.integers(0, 256))
            if trial % 5 == 0:
                b = b[: int(rng.integers(1, len(b)))]
            p.write_bytes(bytes(b))
            for fn in (aio.read_tilts, aio.read_tilt_metadata):
                t0 = time.perf_counter()
                try:
                    out = fn(p)
                except ValueError as e:
                    assert str(p) in str(e)
                else:
                    shape = out.shape if isinstance(out, np.ndarray) else out["shape"]
                    assert len(shape) == 3
                assert time.perf_counter() - t0 < 2.0
