"""The results folder on disk: the step files ``DIR/steps/<step>.h5`` and the groups of
``results.h5``, each a set of datasets plus one JSON attribute ``meta`` (the one reader and writer of
that layout).
"""
from __future__ import annotations

import json
from contextlib import contextmanager
from pathlib import Path

import numpy as np

__all__ = ["load_step", "save_step"]


# ------------------------------------------------------------------------------------ step files
def _step_path(out: Path, step: str) -> Path:
    return out / "steps" / f"{step}.h5"


def _write_group(g, arrays: dict, attrs: dict) -> None:
    """`arrays` (None skipped; str arrays as bytes) as datasets of the HDF5 group `g`, `attrs` as its
    JSON attribute ``meta``: the layout of a step file and of each step's group in results.h5."""
    from .writers import _jsonable
    for k, v in arrays.items():
        if v is None:
            continue
        v = np.asarray(v)
        g.create_dataset(k, data=v.astype("S") if v.dtype.kind == "U" else v,
                         compression="gzip" if v.size > 4096 else None)
    g.attrs["meta"] = json.dumps(attrs, default=_jsonable)


def save_step(path, arrays: dict, attrs: dict) -> None:
    """Write one step's products atomically: `arrays` (name -> ndarray, None skipped) as datasets and
    `attrs` (JSON-serialisable) as one JSON attribute ``meta``."""
    import h5py

    from .writers import atomic_path
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as f:
            _write_group(f, arrays, attrs)


@contextmanager
def _step_file(path):
    """A step file open for reading; any failure to read it is a ValueError naming the file."""
    import h5py
    p = Path(path)
    try:
        with h5py.File(p, "r") as f:
            yield f
    except (OSError, KeyError, ValueError) as e:
        raise ValueError(f"{p}: not a readable aetcore step file ({e})") from e


def load_step(path) -> tuple[dict, dict]:
    """Read a step file written by :func:`save_step`: ``(arrays, attrs)``."""
    with _step_file(path) as f:
        arrays = {}
        for k in f:
            v = f[k][()]
            if isinstance(v, np.ndarray) and v.dtype.kind == "S":
                v = v.astype("U")
            arrays[k] = v
        attrs = json.loads(f.attrs["meta"])
    return arrays, attrs


def _step_meta(path) -> dict:
    """The ``meta`` attribute of a step file alone (no datasets read)."""
    with _step_file(path) as f:
        return json.loads(f.attrs["meta"])
