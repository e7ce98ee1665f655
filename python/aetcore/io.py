"""Reading tilt series and angles, writing atoms, volumes and summaries.

Readers refuse corrupt, truncated or mismatched files with a ``ValueError`` that names the file and
what is wrong. Every writer is atomic: it writes a temporary file in the target directory and
renames it over the target (CONVENTIONS.md: an output is written whole or not at all).
"""
from __future__ import annotations

import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np

__all__ = ["read_tilts", "read_angles", "check_angles", "write_xyz", "write_mrc", "write_json",
           "write_npy", "write_angles", "atomic_path"]

TILT_SUFFIXES = (".npy", ".tif", ".tiff", ".mrc", ".mrcs", ".st", ".ali", ".h5", ".hdf5")


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
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def _check_file(path) -> Path:
    p = Path(path)
    if not p.exists():
        raise ValueError(f"{p}: no such file")
    if not p.is_file():
        raise ValueError(f"{p}: not a regular file")
    if p.stat().st_size == 0:
        raise ValueError(f"{p}: the file is empty")
    return p


def _as_stack(a, p: Path) -> np.ndarray:
    a = np.asarray(a)
    if a.ndim == 2:
        a = a[None]
    if a.ndim != 3:
        raise ValueError(f"{p}: expected a stack of images (n_images, ny, nx), got shape {a.shape}")
    if any(s == 0 for s in a.shape):
        raise ValueError(f"{p}: the stack is empty, shape {a.shape}")
    if not (np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer)):
        raise ValueError(f"{p}: expected real-valued images, got dtype {a.dtype}")
    out = np.ascontiguousarray(a, dtype=np.float32)
    if not np.isfinite(out).all():
        raise ValueError(f"{p}: {int(np.count_nonzero(~np.isfinite(out)))} pixels are NaN or Inf")
    return out


def read_tilts(path, *, dataset: str | None = None) -> np.ndarray:
    """Read a tilt series (or an angle-major frame stack) as float32 ``(n_images, ny, nx)``.

    Formats by suffix: ``.npy``; ``.tif``/``.tiff`` (multi-page, tifffile); ``.mrc``/``.mrcs``/
    ``.st``/``.ali`` (mrcfile); ``.h5``/``.hdf5`` (h5py; `dataset` names the dataset, by default the
    only 3D dataset in the file). A single 2D image is returned as a stack of one.
    """
    p = _check_file(path)
    suffix = p.suffix.lower()
    try:
        if suffix == ".npy":
            a = np.load(p, allow_pickle=False)
        elif suffix in (".tif", ".tiff"):
            import tifffile
            a = tifffile.imread(p)
        elif suffix in (".mrc", ".mrcs", ".st", ".ali"):
            import mrcfile
            with mrcfile.open(p, mode="r", permissive=False) as m:
                if m.data is None:
                    raise ValueError("no image data")
                a = np.array(m.data)
        elif suffix in (".h5", ".hdf5"):
            import h5py
            with h5py.File(p, "r") as f:
                if dataset is None:
                    found = []
                    f.visititems(lambda n, o: found.append(n) if isinstance(o, h5py.Dataset) and o.ndim in (2, 3) else None)
                    if len(found) != 1:
                        raise ValueError(f"expected exactly one 2D/3D dataset, found {found or 'none'}; "
                                         "name one with the dataset option")
                    dataset = found[0]
                if dataset not in f:
                    raise ValueError(f"no dataset {dataset!r} (datasets: {_h5_names(f)})")
                a = np.array(f[dataset])
        else:
            raise ValueError(f"unknown tilt-series format {suffix!r}; expected one of {', '.join(TILT_SUFFIXES)}")
    except ValueError as e:
        if str(e).startswith(str(p)):
            raise
        raise ValueError(f"{p}: cannot read the tilt series: {e}") from e
    except Exception as e:  # corrupt or truncated files raise many exception types
        raise ValueError(f"{p}: cannot read the tilt series (corrupt or truncated file?): {e}") from e
    return _as_stack(a, p)


def _h5_names(f) -> list:
    names = []
    f.visit(names.append)
    return names


def read_angles(path, n: int | None = None) -> np.ndarray:
    """Read angles in degrees: one per line (``.txt``, ``.csv``, IMOD ``.rawtlt``/``.tlt``), or
    ``n x 3`` ZYZ Euler angles per line separated by spaces, tabs or commas. Blank lines and lines
    starting with ``#`` are ignored. Returns ``(n,)`` or ``(n, 3)`` float64. With `n`, the count
    must match (see :func:`check_angles`)."""
    p = _check_file(path)
    rows = []
    try:
        text = p.read_text()
    except UnicodeDecodeError as e:
        raise ValueError(f"{p}: not a text file of angles ({e})") from e
    for lineno, line in enumerate(text.splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        fields = [f for f in line.replace(",", " ").replace(";", " ").split() if f]
        try:
            rows.append([float(f) for f in fields])
        except ValueError:
            if not rows and lineno == 1 and not any(c.isdigit() for c in line):
                continue  # a CSV header
            raise ValueError(f"{p}: line {lineno}: expected numbers, got {line!r}") from None
    if not rows:
        raise ValueError(f"{p}: no angles found")
    widths = {len(r) for r in rows}
    if len(widths) != 1 or widths.pop() not in (1, 3):
        raise ValueError(f"{p}: expected one angle per line or three (phi, theta, psi) per line, "
                         f"got lines with {sorted({len(r) for r in rows})} values")
    a = np.asarray(rows, np.float64)
    if a.shape[1] == 1:
        a = a[:, 0]
    if not np.isfinite(a).all():
        raise ValueError(f"{p}: angles must be finite")
    if np.abs(a).max() > 360:
        raise ValueError(f"{p}: angles are in degrees and must lie in [-360, 360], got up to {np.abs(a).max():g}")
    if n is not None:
        check_angles(a, n, p)
    return a


def check_angles(angles, n: int, path="angles") -> None:
    """Raise ValueError naming `path` if there are not `n` angles."""
    if len(angles) != n:
        raise ValueError(f"{path}: {len(angles)} angles for {n} images; expected one angle per image")


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
    """Write a volume ``(nz, ny, nx)`` as float32 MRC with the voxel size (Å) in the header."""
    import mrcfile
    v = np.ascontiguousarray(volume, dtype=np.float32)
    if v.ndim != 3:
        raise ValueError(f"volume: expected (nz, ny, nx), got shape {v.shape}")
    if not (np.isfinite(voxel_size) and voxel_size > 0):
        raise ValueError(f"voxel_size: expected a positive number of Å, got {voxel_size}")
    with atomic_path(path) as tmp:
        with mrcfile.new(tmp, overwrite=True) as m:
            m.set_data(v)
            m.voxel_size = float(voxel_size)


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
