"""aetcore.io.tables: the one CSV and HDF5 table writer (aet run, aet analyze, aet track)."""
import csv

import h5py
import numpy as np
import pytest

from aetcore.io.tables import read_group, write_csv, write_group, write_h5


def test_csv_cells(tmp_path):
    p = tmp_path / "t.csv"
    write_csv(p, {"x": np.array([1.0, 1 / 3, np.nan, np.inf]), "ok": np.array([True, False, True, False]),
                  "n": np.arange(4), "species": np.array(["Fe", "Pt", "Fe", "Å"]),
                  "nuclei": [[1, 2], [], [3], [4, 5, 6]]})
    with open(p, encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert [r["x"] for r in rows] == ["1", "0.33333333", "nan", "inf"]  # 8 significant digits
    assert [r["ok"] for r in rows] == ["1", "0", "1", "0"]
    assert [r["n"] for r in rows] == ["0", "1", "2", "3"]
    assert [r["species"] for r in rows] == ["Fe", "Pt", "Fe", "Å"]
    assert [r["nuclei"] for r in rows] == ["1;2", "", "3", "4;5;6"]
    assert not list(tmp_path.glob(".*tmp*"))


def test_csv_empty_and_refusals(tmp_path):
    write_csv(tmp_path / "e.csv", {"a": np.zeros(0), "b": np.zeros(0, int)})
    assert (tmp_path / "e.csv").read_text() == "a,b\n"
    with pytest.raises(ValueError, match="equal lengths"):
        write_csv(tmp_path / "bad.csv", {"a": np.zeros(2), "b": np.zeros(3)})
    with pytest.raises(ValueError, match="'a'"):
        write_csv(tmp_path / "bad.csv", {"a": np.zeros((2, 3))})
    assert not (tmp_path / "bad.csv").exists()


def test_h5_round_trip(tmp_path):
    p = tmp_path / "t.h5"
    big = np.arange(5000, dtype=np.float32)
    write_h5(p, {"symbols": np.array(["Fe", "Pt", "Å"]), "big": big, "skip": None,
                 "group": {"cells": [[1, 2], [3]], "v": np.eye(3)}},
             attrs={"units": "Å"}, meta={"key": "abc", "n": 3})
    with h5py.File(p) as f:
        assert f["symbols"].dtype.kind == "S" and f["big"].compression == "gzip" and "skip" not in f
        assert f.attrs["units"] == "Å"
        arrays, meta = read_group(f)
    assert meta == {"key": "abc", "n": 3}
    assert arrays["symbols"].tolist() == ["Fe", "Pt", "Å"]
    np.testing.assert_array_equal(arrays["big"], big)
    assert arrays["group"]["cells"].tolist() == ["1;2", "3"]
    np.testing.assert_array_equal(arrays["group"]["v"], np.eye(3))


def test_group_without_meta(tmp_path):
    with h5py.File(tmp_path / "g.h5", "w") as f:
        write_group(f.create_group("a"), {"x": np.ones(2)})
        assert read_group(f["a"])[1] is None


def test_csv_text_is_quoted_and_none_is_empty(tmp_path):
    p = tmp_path / "q.csv"
    text = ["plain", "a, b", 'say "hi"', "two\nlines", None]
    write_csv(p, {"text": text, "n": [1, None, 3, None, 5], "r": [0.5, None, None, None, 1e-9]})
    with open(p, encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["text"] for r in rows] == ["plain", "a, b", 'say "hi"', "two\nlines", ""]
    assert [r["n"] for r in rows] == ["1", "", "3", "", "5"]
    assert [r["r"] for r in rows] == ["0.5", "", "", "", "1e-09"]
