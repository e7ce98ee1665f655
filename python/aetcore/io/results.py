"""The results folder on disk: the step files ``DIR/steps/<step>.h5`` and the groups of
``results.h5``, each a set of datasets plus one JSON attribute ``meta`` (the one reader and writer of
that layout; the encoding is that of :mod:`aetcore.io.tables`).
"""
from __future__ import annotations

import json
from contextlib import contextmanager
from pathlib import Path

from .tables import read_group, write_group, write_h5

__all__ = ["load_step", "save_step"]


# ------------------------------------------------------------------------------------ step files
def _step_path(out: Path, step: str) -> Path:
    return out / "steps" / f"{step}.h5"


def write_step_group(g, arrays: dict, attrs: dict) -> None:
    """`arrays` (None skipped) as datasets of the open HDF5 group `g` and `attrs` as its JSON
    attribute ``meta``: the layout of a step file and of each step's group in results.h5."""
    write_group(g, arrays, meta=attrs)


def save_step(path, arrays: dict, attrs: dict) -> None:
    """Write one step's products atomically: `arrays` (name -> ndarray, None skipped) as datasets and
    `attrs` (JSON-serialisable) as one JSON attribute ``meta``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_h5(path, arrays, meta=attrs)


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
        arrays, attrs = read_group(f)
        if attrs is None:
            raise KeyError("no 'meta' attribute")
    return arrays, attrs


def _step_meta(path) -> dict:
    """The ``meta`` attribute of a step file alone (no datasets read)."""
    with _step_file(path) as f:
        return json.loads(f.attrs["meta"])
