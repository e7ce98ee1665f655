"""The readers that need ncempy (the extra ``[formats]``) say so when it is missing (issue 15).

ncempy is simulated as uninstalled (None in ``sys.modules``): reading a DM4, SER or Berkeley EMD
file raises :class:`aetcore._util.optional.MissingExtraError` (an ImportError, not the "corrupt
file" ValueError) naming ``pip install "aetcore[formats]"``; ``aet run`` on such a file exits with
status 1 and that message; the formats read without ncempy (Velox EMD, NumPy) still read.
"""
import re
import sys

import numpy as np
import pytest

from aetcore import io as aio
from aetcore._util.optional import MissingExtraError
from aetcore.app.cli import main

from em_writers import write_dm, write_ser, write_velox

HINT = re.escape('pip install "aetcore[formats]"')


@pytest.fixture
def stack(rng):
    return rng.random((3, 6, 10)).astype(np.float32)


@pytest.fixture
def files(tmp_path, stack):
    """DM4, SER and Berkeley EMD files, written while ncempy is still importable (EMD needs its writer)."""
    ncempy_emd = pytest.importorskip("ncempy.io.emd")
    out = {"dm4": write_dm(tmp_path / "t.dm4", stack), "ser": write_ser(tmp_path / "t_1.ser", stack)}
    out["emd"] = tmp_path / "b.emd"
    with ncempy_emd.fileEMD(out["emd"], readonly=False) as f:
        dims = [(np.arange(3.0), "angle", "[deg]"), (np.arange(6.0), "y", "[n_m]"), (np.arange(10.0), "x", "[n_m]")]
        f.put_emdgroup("data", stack, dims)
    out["velox"] = write_velox(tmp_path / "v.emd", stack)
    return out


@pytest.fixture
def without_ncempy(monkeypatch):
    for name in list(sys.modules):
        if name.split(".")[0] == "ncempy":
            monkeypatch.delitem(sys.modules, name)
    for name in ("ncempy", "ncempy.io", "ncempy.io.dm", "ncempy.io.ser", "ncempy.io.emd"):
        monkeypatch.setitem(sys.modules, name, None)


@pytest.mark.parametrize("kind, feature", [("dm4", "DigitalMicrograph"), ("ser", "TIA .ser"),
                                           ("emd", "Berkeley EMD")])
def test_reader_names_the_formats_extra(files, without_ncempy, kind, feature):
    with pytest.raises(MissingExtraError, match=f"reading {feature}.*needs ncempy.*{HINT}"):
        aio.read_tilts(files[kind])


def test_formats_without_ncempy_still_read(files, without_ncempy, stack, tmp_path):
    np.testing.assert_array_equal(aio.read_tilts(files["velox"]), stack)  # Velox EMD: h5py only
    np.save(tmp_path / "t.npy", stack)
    np.testing.assert_array_equal(aio.read_tilts(tmp_path / "t.npy"), stack)


def test_aet_run_on_a_dm4_without_ncempy(files, without_ncempy, tmp_path, capsys):
    angles = tmp_path / "angles.txt"
    angles.write_text("-30\n0\n30\n")
    rc = main(["run", str(files["dm4"]), "--angles", str(angles), "--pixel-size", "0.4", "--species", "Fe,Pt",
               "--out", str(tmp_path / "out"), "--quiet"])
    err = capsys.readouterr().err
    assert rc == 1, err
    assert err.startswith("aet run: error: reading DigitalMicrograph") and re.search(HINT, err)
