"""Writing atoms, volumes, arrays, angles and JSON summaries.

Every writer is atomic: it writes a temporary file in the target directory and renames it over the
target (CONVENTIONS.md: an output is written whole or not at all); :func:`atomic_path` is that
mechanism for any other writer.
"""
from __future__ import annotations

import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np

__all__ = ["write_xyz", "write_mrc", "write_json", "write_npy", "write_angles", "atomic_path"]


def _read_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _read_umask()


@contextmanager
def atomic_path(path):
    """Yield a temporary path in the directory of `path`; on success rename it to `path`, on any
    error remove it (the target is never left half written)."""
    path = Path(path)
    directory = path.parent if str(path.parent) else Path(".")
    if not directory.is_dir():
        raise ValueError(f"{path}: the directory {directory} does not exist")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp" + path.suffix, dir=directory)
    os.close(fd)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; outputs get the usual permissions
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def write_xyz(path, atoms) -> None:
    """Write an ``ase.Atoms`` (or a list of them, one frame per model) as extended XYZ with its
    per-atom arrays and scalar info."""
    from ase.io import write
    frames = atoms if isinstance(atoms, (list, tuple)) else [atoms]
    clean = []
    for a in frames:
        a = a.copy()
        # extended XYZ holds scalars and short arrays in the comment line; keep what it can hold
        a.info = {k: v for k, v in a.info.items() if isinstance(v, (int, float, str, bool, np.integer, np.floating))}
        clean.append(a)
    with atomic_path(path) as tmp:
        write(tmp, clean, format="extxyz")


def write_mrc(path, volume, voxel_size: float) -> None:
    """Write a volume ``(nz, ny, nx)`` as float32 MRC with the voxel size (Å) in the header. The
    header's label names aetcore without a time stamp, so identical volumes give identical files."""
    import mrcfile

    from .._util.validate import as_volume, positive
    v = as_volume(volume)  # refuses complex values, NaN and Inf, wrong shapes, naming `volume`
    voxel_size = positive(voxel_size, "voxel_size")
    with atomic_path(path) as tmp:
        with mrcfile.new(tmp, overwrite=True) as m:
            m.set_data(v)
            m.voxel_size = voxel_size
            m.header.label[0] = b"aetcore".ljust(80)
            m.header.nlabl = 1


def write_npy(path, array) -> None:
    """Write a NumPy array atomically."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, np.asarray(array))


def write_angles(path, angles) -> None:
    """Write angles (degrees) one per line (or three per line for ``(n, 3)``)."""
    a = np.asarray(angles, np.float64)
    with atomic_path(path) as tmp:
        np.savetxt(tmp, a, fmt="%.6f")


def _jsonable(o):
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, (np.bool_,)):
        return bool(o)
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"cannot write {type(o).__name__} to JSON")


def write_json(path, data) -> None:
    """Write `data` as indented JSON (NumPy scalars and arrays converted)."""
    text = json.dumps(data, indent=2, default=_jsonable, allow_nan=True)
    with atomic_path(path) as tmp:
        with open(tmp, "w") as f:
            f.write(text + "\n")
