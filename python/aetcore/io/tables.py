"""Tables on disk: CSV files and HDF5 groups of columns and arrays (the one writer of each, used by
``aet run``, ``aet analyze`` and ``aet track``).

One encoding everywhere:

- CSV (:func:`write_csv`): a header row of column names, then one row per item, UTF-8. Floats with
  8 significant digits (``nan``, ``inf``), booleans as ``1``/``0``, None as an empty cell, a cell
  that holds a list of integers (the nuclei of an event, say) as ``1;2;3``; text with a comma, a
  quote or a line break is quoted as RFC 4180 says (what Python's ``csv`` module reads back).
- HDF5 (:func:`write_group`, :func:`write_h5`, :func:`read_group`): one dataset per column or array;
  text as fixed-length UTF-8 bytes (NumPy ``S``; :func:`read_group` gives ``str`` back), a list of
  integers per row as ``1;2;3`` text like the CSV; a nested dict as a sub-group; arrays of more than
  4096 values gzip-compressed; a group's metadata either as plain HDF5 attributes (`attrs`) or as
  one JSON attribute ``meta`` (`meta`, the layout of the step files and ``results.h5``).

Every file is written whole or not at all (:func:`aetcore.io.atomic_path`).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .writers import _jsonable, atomic_path

__all__ = ["write_csv", "write_group", "write_h5", "read_group", "h5_array"]

_COMPRESS_ABOVE = 4096  # values; smaller datasets are stored as they are


def _list_cells(values) -> bool:
    """A column whose cells are lists of integers (a list of lists or a 1D object array; not a 2D
    array of numbers)."""
    if isinstance(values, np.ndarray):
        cells = values.dtype == object and values.ndim == 1 and values.size > 0
        return bool(cells and isinstance(values[0], (list, tuple, np.ndarray)))
    if isinstance(values, (list, tuple)):
        return len(values) > 0 and isinstance(values[0], (list, tuple))
    return False


def _joined(values) -> list:
    return [";".join(str(int(x)) for x in cell) for cell in values]


def _quoted(t: np.ndarray) -> np.ndarray:
    """RFC 4180: a cell with a comma, a quote or a line break between quotes, its quotes doubled."""
    need = np.zeros(t.shape, bool)
    for c in (",", '"', "\n", "\r"):
        need |= np.char.find(t, c) >= 0
    if not need.any():
        return t
    out = t.astype(object)
    out[need] = ['"' + c.replace('"', '""') + '"' for c in t[need]]
    return out.astype(str)


def _text_column(values, name: str) -> np.ndarray:
    if _list_cells(values):
        return np.asarray(_joined(values), dtype=str)
    a = np.asarray(values)
    if a.ndim != 1:
        raise ValueError(f"columns[{name!r}]: expected one value per row, got shape {a.shape}")
    if a.dtype.kind == "f":
        return np.char.mod("%.8g", a)
    if a.dtype.kind == "b":
        return np.where(a, "1", "0")
    if a.dtype == object:
        a = np.asarray(["" if v is None else str(v) for v in a], dtype=str)
    return _quoted(a.astype(str))


def write_csv(path, columns: dict) -> None:
    """Write `columns` ``{name: values}`` (equal lengths; the order of the dict is the order of the
    columns) as a CSV file with a header row.

    Raises
    ------
    ValueError
        Columns of different lengths, or a column that is not one value per row.
    """
    names = list(columns)
    cols = [_text_column(columns[n], n) for n in names]
    lengths = {n: len(c) for n, c in zip(names, cols)}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"columns: expected equal lengths, got {lengths}")
    lines = np.asarray([], dtype=str)
    if cols:
        lines = cols[0]
        for c in cols[1:]:
            lines = np.char.add(np.char.add(lines, ","), c)
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8", newline="") as fh:
            fh.write(",".join(names) + "\n")
            if lines.size:
                fh.write("\n".join(lines.tolist()) + "\n")


def h5_array(values) -> np.ndarray:
    """`values` as the array :func:`write_group` stores: text as UTF-8 bytes, list cells as ``1;2;3``."""
    if _list_cells(values):
        values = _joined(values)
    a = np.asarray(values)
    if a.dtype.kind in "UO":
        return np.char.encode(a.astype(str), "utf-8")
    return a


def write_group(group, arrays: dict, *, attrs: dict | None = None, meta: dict | None = None) -> None:
    """Write `arrays` ``{name: array, or dict for a sub-group}`` (None skipped) as datasets of the
    open HDF5 group `group`; `attrs` as its plain attributes, `meta` (JSON-serialisable) as its
    attribute ``meta``."""
    for k, v in arrays.items():
        if v is None:
            continue
        if isinstance(v, dict):
            write_group(group.require_group(k), v)
            continue
        a = h5_array(v)
        group.create_dataset(k, data=a, compression="gzip" if a.size > _COMPRESS_ABOVE else None)
    for k, v in (attrs or {}).items():
        group.attrs[k] = v
    if meta is not None:
        group.attrs["meta"] = json.dumps(meta, default=_jsonable)


def write_h5(path, arrays: dict, *, attrs: dict | None = None, meta: dict | None = None) -> None:
    """One HDF5 file, written whole or not at all: :func:`write_group` on its root."""
    import h5py
    path = Path(path)
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as f:
            write_group(f, arrays, attrs=attrs, meta=meta)


def read_group(group) -> tuple[dict, dict | None]:
    """Read what :func:`write_group` wrote: ``(arrays, meta)``, text as ``str`` (sub-groups as dicts;
    `meta` None when the group has none)."""
    import h5py
    arrays = {}
    for k, obj in group.items():
        if isinstance(obj, h5py.Group):
            arrays[k] = read_group(obj)[0]
            continue
        v = obj[()]
        if isinstance(v, np.ndarray) and v.dtype.kind == "S":
            v = np.char.decode(v, "utf-8")
        elif isinstance(v, bytes):
            v = v.decode("utf-8")
        arrays[k] = v
    meta = json.loads(group.attrs["meta"]) if "meta" in group.attrs else None
    return arrays, meta
