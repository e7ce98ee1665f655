"""Reading tilt series, their metadata and angles; writing atoms, volumes and summaries.

Tilt-series formats (by suffix; :data:`TILT_SUFFIXES`), and what :func:`read_tilt_metadata` takes
from each:

- ``.npy`` (NumPy): images only. ``.tif``/``.tiff`` (multi-page TIFF, tifffile): pixel size from
  ImageJ metadata (``unit`` with the XResolution tag) where present.
- ``.mrc``/``.mrcs`` and IMOD stacks ``.st`` (raw) / ``.ali`` (aligned) (mrcfile): pixel size from
  the header; tilt angles from an FEI1/FEI2 extended header ("Alpha tilt") or an IMOD/SerialEM
  extended header (``SERI``, or IMOD-stamped with SerialEM flags: tilt angle x 100 per section).
- ``.h5``/``.hdf5`` (h5py; `dataset` names the image dataset): angles from an attribute of the
  image dataset or a 1-D dataset named ``angles``/``tilt_angles``/``tilt_angle``/``tiltangles``
  (degrees unless its ``units`` attribute says radians); pixel size from a ``pixel_size``
  attribute (Å unless a ``pixel_size_units`` attribute says otherwise).
- ``.emd``, Berkeley EMD v0.2 (ncempy): an ``emd_group_type = 1`` group with ``data`` ``(n, ny,
  nx)``; angles from ``dim1`` when its units are degrees or radians, pixel size from the spacing
  of the last (x) dim vector and its units.
- ``.emd``, Velox (Thermo Fisher; h5py): a group in ``/Data/Image`` (`dataset` = its name or
  detector name) with ``Data`` ``(ny, nx, n)``; per-frame ``Stage.AlphaTilt`` (radians in the
  file, degrees here) and ``BinaryResult.PixelSize`` from the JSON ``Metadata`` columns.
- ``.dm3``/``.dm4``, Gatan DigitalMicrograph (ncempy): the first image after the thumbnail, 2D or
  a 3D stack; pixel size from the x calibration, the stage tilt from the tag
  ``Microscope Info.Stage Position.Stage Alpha``.
- ``.ser``, FEI/Thermo Fisher TIA series of 2D images (ncempy, after a check of every offset and
  size in the file): pixel size from the image calibration; the stage tilt ("Stage A [deg]")
  from the companion ``.emi`` file (``name_1.ser`` goes with ``name.emi``). SER per-image tags
  hold only time and position.

- ``.mat``, MATLAB v5/v7 (scipy) or v7.3 (h5py) (:mod:`aetcore.io.matlab`; `dataset` names the
  variable, default the only 2D/3D numeric one): projections ``P(dim1, dim2, k)`` become
  ``(k, dim2, dim1)``, so ``x`` runs along the source's ``dim1``. No pixel size or angles (angles
  come from an angle file and its convention, :func:`aetcore.model.geometry.angles_from_convention`).

DM and SER files hold one stage tilt per file (not per image): it becomes the file's tilt
angle only when the file holds a single image, and is otherwise reported as ``stage_alpha``.

Angle files: ``.txt``, ``.csv``, IMOD ``.rawtlt``/``.tlt`` (one angle, or ``phi theta psi``, per
line), a ``.mat`` file (an ``(n, 3)``/``(3, n)`` or vector variable, as written), or any tilt-series file above whose metadata hold one tilt angle per image
(:func:`read_angles`, :func:`read_tilt_metadata`). Angles are in degrees.

Readers refuse corrupt, truncated or mismatched files with a ``ValueError`` that names the file and
what is wrong. Every writer is atomic: it writes a temporary file in the target directory and
renames it over the target (CONVENTIONS.md: an output is written whole or not at all).
"""
from __future__ import annotations

import json
import math
import struct
import warnings
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from .._util.optional import MissingExtraError, require

__all__ = ["read_tilts", "read_tilt_metadata", "read_angles", "check_angles", "read_atoms", "TILT_SUFFIXES"]

TILT_SUFFIXES = (".npy", ".tif", ".tiff", ".mrc", ".mrcs", ".st", ".ali", ".h5", ".hdf5",
                 ".emd", ".dm3", ".dm4", ".ser", ".mat")

#: Suffixes whose files may hold several datasets, chosen with the ``dataset`` option.
_DATASET_SUFFIXES = (".h5", ".hdf5", ".emd", ".mat")

#: Names (case-insensitive) of HDF5 datasets or attributes that hold tilt angles.
_H5_ANGLE_NAMES = ("angles", "tilt_angles", "tilt_angle", "tiltangles")


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


class _FileError(ValueError):
    """A reader's complaint about the file's content (the message is completed with the path)."""


@contextmanager
def _reading(p: Path, what: str):
    """Turn any failure while reading `p` into a ValueError naming `p` (corrupt files make the
    underlying libraries raise many exception types)."""
    try:
        yield
    except MissingExtraError:
        raise  # not the file's fault: the message names the extra to install
    except ValueError as e:
        if str(e).startswith(str(p)):
            raise
        raise ValueError(f"{p}: cannot read the {what}: {e}") from e
    except Exception as e:  # includes MemoryError and RecursionError from absurd counts
        raise ValueError(f"{p}: cannot read the {what} (corrupt or truncated file?): "
                         f"{type(e).__name__}: {e}") from e


def _unit_to_angstrom(unit) -> float | None:
    """Å per `unit` (a length unit as written by DM, EMD, Velox, TIA...), or None if unknown."""
    if isinstance(unit, bytes):
        unit = unit.decode("utf-8", "replace")
    u = str(unit).strip().strip("[]").replace("_", "").strip().lower()
    return {"m": 1e10, "meter": 1e10, "meters": 1e10, "mm": 1e7, "um": 1e4, "\u00b5m": 1e4,
            "\u03bcm": 1e4, "micron": 1e4, "microns": 1e4, "nm": 10.0, "nanometer": 10.0,
            "nanometers": 10.0, "a": 1.0, "\u00e5": 1.0, "\u212b": 1.0, "angstrom": 1.0,
            "angstroms": 1.0, "ang": 1.0, "pm": 0.01}.get(u)


def _angle_unit(unit) -> float | None:
    """Degrees per `unit` for an angle unit, or None if `unit` is not an angle unit."""
    if isinstance(unit, bytes):
        unit = unit.decode("utf-8", "replace")
    u = str(unit).strip().strip("[]").replace("_", "").strip().lower()
    if u in ("deg", "degree", "degrees", "\u00b0"):
        return 1.0
    if u in ("rad", "radian", "radians"):
        return 180.0 / math.pi
    return None


def _pixel_size(step, unit) -> float | None:
    """A positive finite pixel size in Å from a calibration step and its length unit, else None."""
    f = _unit_to_angstrom(unit)
    try:
        step = float(step)
    except (TypeError, ValueError):
        return None
    if f is None or not math.isfinite(step) or step <= 0:
        return None
    return step * f


def _meta(fmt: str, shape, pixel_size=None, angles=None, angles_source=None, stage_alpha=None) -> dict:
    shape = tuple(int(s) for s in shape)
    if len(shape) == 2:
        shape = (1,) + shape
    if angles is not None:
        angles = np.asarray(angles, np.float64).reshape(-1)
    return {"format": fmt, "shape": shape, "pixel_size": pixel_size, "angles": angles,
            "angles_source": angles_source if angles is not None else None,
            "stage_alpha": None if stage_alpha is None else float(stage_alpha)}


# ----------------------------------------------------------------------------- per-format readers
# Each returns (data or None, metadata dict); data is read only when `load` is true.

def _read_npy(p, load):
    a = np.load(p, allow_pickle=False, mmap_mode=None if load else "r")
    return (a if load else None), _meta("npy", a.shape)


def _tiff_pixel_size(t):
    """Pixel size in Å from ImageJ metadata (``unit``) and the XResolution tag (pixels per unit)."""
    ij = t.imagej_metadata or {}
    unit = str(ij.get("unit", "")).replace("\\u00B5", "\u00b5").replace("\\u00b5", "\u00b5")
    tag = t.pages[0].tags.get("XResolution")
    if not unit or tag is None:
        return None
    try:
        num, den = tag.value
        return _pixel_size(den / num, unit)
    except (TypeError, ValueError, ZeroDivisionError):
        return None


_TIFF_TYPE_SIZE = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 13: 4,
                   16: 8, 17: 8, 18: 8}


def _tiff_check_chain(p: Path) -> int:
    """Follow a TIFF's chain of image file directories (classic or BigTIFF) to its end, checking
    that every directory, out-of-line tag value and next-directory pointer lies inside the file
    (tifffile only logs a truncated file). Raise _FileError if not; return the number of pages."""
    size = p.stat().st_size
    with open(p, "rb") as fh:
        head = fh.read(16)
        if len(head) < 8 or head[:2] not in (b"II", b"MM"):
            raise _FileError("not a TIFF file")
        e = "<" if head[:2] == b"II" else ">"
        magic = struct.unpack(e + "H", head[2:4])[0]
        if magic == 42:
            off_fmt, cnt_fmt, entry_fmt, first = "I", "H", "HHII", struct.unpack(e + "I", head[4:8])[0]
        elif magic == 43 and len(head) >= 16:
            off_fmt, cnt_fmt, entry_fmt, first = "Q", "Q", "HHQQ", struct.unpack(e + "Q", head[8:16])[0]
        else:
            raise _FileError(f"not a TIFF file (magic number {magic})")
        osz, csz, esz = (struct.calcsize(e + f) for f in (off_fmt, cnt_fmt, entry_fmt))
        seen, off = set(), first
        while off:
            k = len(seen)
            if off in seen:
                raise _FileError("the chain of image directories loops")
            seen.add(off)
            fh.seek(off)
            raw = fh.read(csz)
            if len(raw) < csz:
                raise _FileError(f"truncated: image directory {k} at byte {off} is past the end")
            n = struct.unpack(e + cnt_fmt, raw)[0]
            if off + csz + n * esz + osz > size:
                raise _FileError(f"truncated: image directory {k} runs past the end of the file")
            for _, typ, count, value in struct.iter_unpack(e + entry_fmt, fh.read(n * esz)):
                nbytes = _TIFF_TYPE_SIZE.get(typ, 0) * count
                if nbytes > osz and value + nbytes > size:
                    raise _FileError(f"truncated: a tag value of image directory {k} ends at byte "
                                     f"{value + nbytes} but the file has {size}")
            off = struct.unpack(e + off_fmt, fh.read(osz))[0]
    return len(seen)


def _read_tiff(p, load):
    import tifffile
    n_pages = None if load else _tiff_check_chain(p)
    with tifffile.TiffFile(p) as t:
        if load:
            a = t.asarray()
            return a, _meta("tiff", a.shape, _tiff_pixel_size(t))
        size = p.stat().st_size
        if len(t.pages) != n_pages:
            raise _FileError(f"corrupt: tifffile reads {len(t.pages)} of the {n_pages} pages")
        for k, pg in enumerate(t.pages):
            end = max((o + c for o, c in zip(pg.dataoffsets, pg.databytecounts)), default=0)
            if end > size:
                raise _FileError(f"truncated: the data of page {k} end at byte {end} but the file has {size}")
        return None, _meta("tiff", t.series[0].shape, _tiff_pixel_size(t))


def _mrc_angles(m, nz):
    """Per-section tilt angles from an MRC extended header, or (None, None)."""
    h = m.header
    ext = m.extended_header
    exttyp = bytes(h.exttyp).rstrip(b"\0 ")
    if ext is None or ext.nbytes == 0 or nz < 1:
        return None, None
    if exttyp in (b"FEI1", b"FEI2"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # mrcfile warns, then returns None, for a short header
            ind = m.indexed_extended_header
        if ind is not None and len(ind) >= nz:
            a = np.asarray(ind["Alpha tilt"][:nz], np.float64)
            if np.isfinite(a).all():
                return a, f"MRC {exttyp.decode()} extended header (Alpha tilt)"
        return None, None
    # IMOD header words (absent from mrcfile's field names): nint, nreal (int16) at bytes 128, 130,
    # imodStamp (int32) at 152; SerialEM sets nint = bytes per section and nreal = content flags.
    order = h.mode.dtype.byteorder
    order = order if order in "<>" else "="
    hb = np.asarray(h).tobytes()
    nint, flags = (int(v) for v in np.frombuffer(hb[128:132], np.dtype(np.int16).newbyteorder(order)))
    stamp = int(np.frombuffer(hb[152:156], np.dtype(np.int32).newbyteorder(order))[0])
    sizes = {1: 2, 2: 6, 4: 4, 8: 2, 16: 2, 32: 4}
    imod = exttyp == b"SERI" or (exttyp == b"" and stamp == 1146047817 and 0 < flags < 64
                                 and nint == sum(s for b, s in sizes.items() if flags & b))
    if not imod or not flags & 1 or nint < 2 or ext.nbytes < nint * nz:
        return None, None
    raw = np.frombuffer(bytes(ext)[: nint * nz], np.uint8).reshape(nz, nint)[:, :2].copy()
    dt = np.dtype(np.int16).newbyteorder(order)
    return raw.view(dt)[:, 0].astype(np.float64) / 100.0, "MRC IMOD/SerialEM extended header (tilt angle)"


def _read_mrc(p, load):
    import mrcfile
    with mrcfile.open(p, mode="r", permissive=False, header_only=not load) as m:
        h = m.header
        if load:
            if m.data is None:
                raise _FileError("no image data")
            a = np.array(m.data)
            shape = a.shape
        else:
            from mrcfile.utils import data_dtype_from_header
            shape = (int(h.nz), int(h.ny), int(h.nx)) if int(h.nz) > 1 else (int(h.ny), int(h.nx))
            need = 1024 + int(h.nsymbt) + int(np.prod(shape)) * data_dtype_from_header(h).itemsize
            if p.stat().st_size < need:
                raise _FileError(f"truncated: the header announces {need} bytes but the file has "
                                 f"{p.stat().st_size}")
            a = None
        vx = float(m.voxel_size.x)
        angles, source = _mrc_angles(m, shape[0] if len(shape) == 3 else 1)
        return a, _meta("mrc", shape, vx if math.isfinite(vx) and vx > 0 else None, angles, source)


def _h5_names(f) -> list:
    names = []
    f.visit(names.append)
    return names


def _h5_attr_float(obj, name):
    v = obj.attrs.get(name)
    if v is None:
        return None
    try:
        v = np.asarray(v, np.float64).reshape(-1)
    except (TypeError, ValueError):
        return None
    return float(v[0]) if v.size == 1 else None


def _read_hdf5(p, load, dataset):
    import h5py
    with h5py.File(p, "r") as f:
        if dataset is None:
            found = []
            f.visititems(lambda n, o: found.append(n) if isinstance(o, h5py.Dataset) and o.ndim in (2, 3) else None)
            if len(found) != 1:
                raise _FileError(f"expected exactly one 2D/3D dataset, found {found or 'none'}; "
                                 "name one with the dataset option")
            dataset = found[0]
        if dataset not in f or not isinstance(f[dataset], h5py.Dataset):
            raise _FileError(f"no dataset {dataset!r} (datasets: {_h5_names(f)})")
        d = f[dataset]
        a = np.array(d) if load else None
        shape = d.shape
        # pixel size: an attribute of the image dataset, else of the file
        pixel = None
        for obj in (d, f):
            v = _h5_attr_float(obj, "pixel_size")
            if v is not None:
                unit = obj.attrs.get("pixel_size_units", obj.attrs.get("pixel_unit", "Å"))
                pixel = _pixel_size(v, unit)
                break
        # angles: an attribute of the image dataset, else 1-D datasets named like angles
        cands = []
        for k, v in d.attrs.items():
            if k.lower() in _H5_ANGLE_NAMES:
                cands.append((f"HDF5 attribute {dataset}/@{k}", np.asarray(v), 1.0))
        if not cands:
            def visit(name, o):
                if isinstance(o, h5py.Dataset) and name.rsplit("/", 1)[-1].lower() in _H5_ANGLE_NAMES:
                    unit = o.attrs.get("units", o.attrs.get("unit", "deg"))
                    cands.append((f"HDF5 dataset {name}", np.array(o), _angle_unit(unit)))
            f.visititems(visit)
        if len(cands) > 1:
            raise _FileError(f"several tilt-angle entries ({', '.join(c[0] for c in cands)}); keep one")
        angles = source = None
        if cands:
            source, v, factor = cands[0]
            if factor is None:
                raise _FileError(f"{source} has units that are not degrees or radians")
            if v.ndim != 1 or not np.issubdtype(v.dtype, np.number):
                raise _FileError(f"{source} should be a 1-D array of numbers, got shape {v.shape}, "
                                 f"dtype {v.dtype}")
            angles = v.astype(np.float64) * factor
        return a, _meta("hdf5", shape, pixel, angles, source)


def _emd_is_velox(f) -> bool:
    import h5py
    return isinstance(f.get("Data"), h5py.Group) and isinstance(f["Data"].get("Image"), h5py.Group)


def _velox_frames_meta(g):
    """Per-frame Velox metadata (a list of dicts) from the uint8 ``Metadata`` dataset."""
    if "Metadata" not in g:
        return []
    raw = np.asarray(g["Metadata"])
    if raw.ndim == 1:
        raw = raw[:, None]
    out = []
    for k in range(raw.shape[1]):
        text = raw[:, k].astype(np.uint8).tobytes().rstrip(b"\0")
        if not text:
            out.append({})
            continue
        out.append(json.loads(text.decode("utf-8")))
    return out


def _read_velox(p, f, load, dataset):
    groups = {name: g for name, g in f["Data/Image"].items() if "Data" in g}
    if not groups:
        raise _FileError("a Velox EMD file without image data (Data/Image/*/Data)")
    metas = {name: _velox_frames_meta(g) for name, g in groups.items()}
    if dataset is None:
        if len(groups) != 1:
            names = [f"{n} ({(metas[n][0].get('BinaryResult', {}).get('Detector', '?') if metas[n] else '?')})"
                     for n in groups]
            raise _FileError(f"{len(groups)} images in Data/Image ({', '.join(names)}); name one with "
                             "the dataset option (group name or detector name)")
        name = next(iter(groups))
    else:
        key = dataset.strip("/").rsplit("/", 1)[-1]
        hits = [n for n in groups if n == key] or [
            n for n in groups if metas[n] and str(metas[n][0].get("BinaryResult", {}).get("Detector")) == key]
        if len(hits) != 1:
            raise _FileError(f"no single image {dataset!r} in Data/Image (groups: {list(groups)})")
        name = hits[0]
    d = groups[name]["Data"]
    if d.ndim == 3:
        shape = (d.shape[2], d.shape[0], d.shape[1])
        a = np.moveaxis(np.asarray(d), 2, 0) if load else None
    else:
        shape = d.shape
        a = np.asarray(d) if load else None
    frames = metas[name]
    pixel = angles = source = None
    if frames:
        br = frames[0].get("BinaryResult", {})
        pixel = _pixel_size(br.get("PixelSize", {}).get("width"), br.get("PixelUnitX", ""))
        try:
            alpha = [float(m["Stage"]["AlphaTilt"]) for m in frames]
        except (KeyError, TypeError, ValueError):
            alpha = None
        n = shape[0] if len(shape) == 3 else 1
        if alpha is not None and len(alpha) == n and np.isfinite(alpha).all():
            angles, source = np.degrees(alpha), "Velox EMD per-frame metadata (Stage.AlphaTilt)"
    return a, _meta("emd-velox", shape, pixel, angles, source)


def _read_berkeley(p, load, dataset):
    emd = require("ncempy.io.emd", "formats", "reading Berkeley EMD files")
    with emd.fileEMD(p, readonly=True) as f:
        groups = {g.name: g for g in f.list_emds}
        if dataset is None:
            usable = [n for n, g in groups.items() if g["data"].ndim in (2, 3)]
            if len(usable) != 1:
                raise _FileError(f"expected exactly one 2D/3D EMD data group, found {usable or 'none'}; "
                                 "name one with the dataset option")
            name = usable[0]
        else:
            key = "/" + dataset.strip("/")
            hits = [n for n in groups if n == key or n == "/data" + key or n.rsplit("/", 1)[-1] == key[1:]]
            if len(hits) != 1:
                raise _FileError(f"no single EMD data group {dataset!r} (groups: {list(groups)})")
            name = hits[0]
        g = groups[name]
        shape = g["data"].shape
        if load:
            got = f.get_emdgroup(g)
            if got is None:
                raise _FileError(f"the EMD group {name} does not have the EMD layout (data, dim1...)")
            a, dims = got
        else:
            a, dims = None, f.get_emddims(g)
    pixel = angles = source = None
    if len(dims) >= 2:
        vec, _, unit = dims[-1]
        vec = np.asarray(vec, np.float64).reshape(-1)
        if vec.size >= 2:
            pixel = _pixel_size(vec[1] - vec[0], unit)
    if len(shape) == 3:
        vec, dname, unit = dims[0]
        factor = _angle_unit(unit)
        vec = np.asarray(vec, np.float64).reshape(-1)
        if factor is not None and vec.size == shape[0]:
            angles, source = vec * factor, f"EMD {name}/dim1 ({dname}, {unit})"
    return a, _meta("emd", shape, pixel, angles, source)


def _read_emd(p, load, dataset):
    import h5py
    with h5py.File(p, "r") as f:  # raises OSError for files that are not HDF5 or are truncated
        if _emd_is_velox(f):
            return _read_velox(p, f, load, dataset)
    return _read_berkeley(p, load, dataset)


def _read_dm(p, load):
    dm = require("ncempy.io.dm", "formats", "reading DigitalMicrograph .dm3/.dm4 files")
    size = p.stat().st_size
    with open(p, "rb") as fh:
        head = fh.read(4)
    version = struct.unpack(">I", head)[0] if len(head) == 4 else None
    if version not in (3, 4):
        raise _FileError(f"not a DigitalMicrograph DM3/DM4 file (version field {version})")
    if size < (24 if version == 4 else 18):
        raise _FileError(f"truncated: {size} bytes is shorter than a DM{version} header")
    with dm.fileDM(p, on_memory=True) as f:
        if f.numObjects < 1 or not f.dataShape:
            raise _FileError("no image in the file")
        ii = 0 if f.numObjects == 1 else 1  # ncempy skips the thumbnail
        if ii >= len(f.dataOffset) or ii >= len(f.dataSize) or ii >= len(f.xSize):
            raise _FileError("the image tags are incomplete (no Data or Dimensions)")
        if int(f.dataOffset[ii]) + int(f.dataSize[ii]) > size:
            raise _FileError(f"truncated: the image data end at byte {int(f.dataOffset[ii]) + int(f.dataSize[ii])}"
                             f" but the file has {size} bytes")
        shape = tuple(int(s) for s in (f.zSize2[ii], f.zSize[ii], f.ySize[ii], f.xSize[ii]) if s > 1)
        a = None
        if load:
            im = f.getDataset(0)
            a, units, scales = im["data"], im["pixelUnit"], im["pixelSize"]
            shape = a.shape
        else:
            jj = sum(int(n) for n in f.dataShape[:ii])
            units = f.scaleUnit[jj:jj + int(f.dataShape[ii])][::-1]
            scales = f.scale[jj:jj + int(f.dataShape[ii])][::-1]
        md = f.getMetadata(0)
    pixel = _pixel_size(scales[-1], units[-1]) if scales and units else None
    alpha = md.get("Microscope Info Stage Position Stage Alpha")
    try:
        alpha = float(alpha) if alpha is not None and math.isfinite(float(alpha)) else None
    except (TypeError, ValueError):
        alpha = None
    n = shape[0] if len(shape) == 3 else 1
    angles = [alpha] if alpha is not None and n == 1 else None
    return a, _meta(f"dm{version}", shape, pixel, angles,
                    "DM tag Microscope Info.Stage Position.Stage Alpha", alpha)


_SER_TYPES = {1: "<u1", 2: "<u2", 3: "<u4", 4: "<i1", 5: "<i2", 6: "<i4", 7: "<f4", 8: "<f8",
              9: "<c8", 10: "<c16"}


def _check_ser(p: Path) -> tuple:
    """Walk a TIA SER file's header, offset array and image headers; raise _FileError on anything
    inconsistent (before ncempy reads it, so no bad count ever becomes a huge allocation).
    Returns (n_images, ny, nx)."""
    size = p.stat().st_size
    with open(p, "rb") as fh:
        def read(off, fmt):
            n = struct.calcsize(fmt)
            if off < 0 or off + n > size:
                raise _FileError(f"truncated: needs bytes {off}..{off + n} but the file has {size}")
            fh.seek(off)
            return struct.unpack(fmt, fh.read(n))
        order, sid, ver = read(0, "<HHH")
        if order != 0x4949 or sid != 0x0197:
            raise _FileError("not a TIA SER file (byte-order or series-id field wrong)")
        if ver not in (0x0210, 0x0220):
            raise _FileError(f"unknown SER version {ver:#06x}")
        ofmt = "<i" if ver == 0x0210 else "<q"
        osz = struct.calcsize(ofmt)
        dtype_id, tag_id, total, valid = read(6, "<IIii")
        if dtype_id == 0x4120:
            raise _FileError("the series holds 1D spectra, not images")
        if dtype_id != 0x4122 or tag_id not in (0x4152, 0x4142):
            raise _FileError(f"unknown data type {dtype_id:#x} or tag type {tag_id:#x}")
        if not 0 < valid <= total:
            raise _FileError(f"{valid} valid of {total} elements; expected at least one image")
        (arr_off,) = read(22, ofmt)
        pos = 22 + osz
        (ndim,) = read(pos, "<i")
        pos += 4
        if not 0 <= ndim <= 16:
            raise _FileError(f"{ndim} series dimensions")
        for _ in range(ndim):
            pos += 4 + 16 + 4
            (n,) = read(pos, "<i")
            pos += 4 + max(n, 0)
            (n2,) = read(pos, "<i")
            pos += 4 + max(n2, 0)
            if n < 0 or n2 < 0 or pos > size:
                raise _FileError("a series dimension's description runs past the end of the file")
        if arr_off < pos or arr_off + 2 * total * osz > size:
            raise _FileError(f"the offset array ({total} entries at byte {arr_off}) lies outside the file")
        fh.seek(arr_off)
        offsets = struct.unpack(f"<{valid}{ofmt[1]}", fh.read(valid * osz))
        first = None
        for k, off in enumerate(offsets):
            dt, nx, ny = read(off + 40, "<hii")
            if dt not in _SER_TYPES or nx <= 0 or ny <= 0:
                raise _FileError(f"image {k}: bad data type {dt} or shape {nx}x{ny}")
            end = off + 50 + nx * ny * np.dtype(_SER_TYPES[dt]).itemsize
            if end > size:
                raise _FileError(f"truncated: image {k} ends at byte {end} but the file has {size}")
            if first is None:
                first = (dt, nx, ny)
            elif (dt, nx, ny) != first:
                raise _FileError(f"image {k} is {nx}x{ny} of type {dt}, image 0 is {first[1]}x{first[2]} "
                                 f"of type {first[0]}")
    return valid, first[2], first[1]


def _read_ser(p, load):
    ser = require("ncempy.io.ser", "formats", "reading TIA .ser files")
    n, ny, nx = _check_ser(p)
    with ser.fileSER(p) as f:
        a = None
        first, meta0 = f.getDataset(0)
        if load:
            a = np.empty((n, ny, nx), first.dtype)
            a[0] = first
            for k in range(1, n):
                a[k] = f.getDataset(k)[0]
        md = f.getMetadata()
    cal = meta0["Calibration"][0]
    pixel = _pixel_size(cal["CalibrationDelta"], "m")  # TIA calibrates images in metres
    alpha = md.get("Stage A [deg]")
    try:
        alpha = float(alpha) if alpha is not None and math.isfinite(float(alpha)) else None
    except (TypeError, ValueError):
        alpha = None
    angles = [alpha] if alpha is not None and n == 1 else None
    return a, _meta("ser", (n, ny, nx), pixel, angles, "EMI Stage A [deg]", alpha)


def _read_mat(p, load, dataset):
    from .matlab import mat_tilts, mat_tilts_shape
    shape = mat_tilts_shape(p, dataset)
    return (mat_tilts(p, dataset) if load else None), _meta("mat", shape)


def _read_any(path, dataset, load):
    p = _check_file(path)
    suffix = p.suffix.lower()
    if suffix not in TILT_SUFFIXES:
        raise ValueError(f"{p}: unknown tilt-series format {suffix!r}; expected one of {', '.join(TILT_SUFFIXES)}")
    if dataset is not None and suffix not in _DATASET_SUFFIXES:
        raise ValueError(f"{p}: the dataset option ({dataset!r}) applies only to "
                         f"{', '.join(_DATASET_SUFFIXES)} files")
    with _reading(p, "tilt series" if load else "tilt-series metadata"):
        if suffix == ".npy":
            a, meta = _read_npy(p, load)
        elif suffix in (".tif", ".tiff"):
            a, meta = _read_tiff(p, load)
        elif suffix in (".mrc", ".mrcs", ".st", ".ali"):
            a, meta = _read_mrc(p, load)
        elif suffix in (".h5", ".hdf5"):
            a, meta = _read_hdf5(p, load, dataset)
        elif suffix == ".emd":
            a, meta = _read_emd(p, load, dataset)
        elif suffix in (".dm3", ".dm4"):
            a, meta = _read_dm(p, load)
        elif suffix == ".mat":
            a, meta = _read_mat(p, load, dataset)
        else:
            a, meta = _read_ser(p, load)
    if len(meta["shape"]) != 3 or 0 in meta["shape"]:
        raise ValueError(f"{p}: expected a stack of images (n_images, ny, nx), got shape {meta['shape']}")
    return p, a, meta


def read_tilts(path, *, dataset: str | None = None) -> np.ndarray:
    """Read a tilt series (or an angle-major frame stack) as float32 ``(n_images, ny, nx)``.

    Parameters
    ----------
    path : str or Path
        A file with a suffix in :data:`TILT_SUFFIXES` (formats in the module docstring). A single
        2D image is returned as a stack of one.
    dataset : str, optional
        For HDF5: the dataset holding the images (default: the only 2D/3D dataset). For EMD: the
        EMD data group (Berkeley) or the ``Data/Image`` group or detector name (Velox); default:
        the only one. Other formats have one image stack and refuse this option.

    Returns
    -------
    numpy.ndarray
        float32, C-contiguous, ``(n_images, ny, nx)``, in counts as stored (no calibration).

    Raises
    ------
    ValueError
        Naming the file: missing, empty, unknown suffix, corrupt, truncated, not a stack of real
        finite images, or an ambiguous/missing `dataset`.
    """
    p, a, _ = _read_any(path, dataset, True)
    return _as_stack(a, p)


def read_tilt_metadata(path, *, dataset: str | None = None) -> dict:
    """What a tilt-series file says about itself, without reading the images where the format
    allows.

    Parameters
    ----------
    path, dataset
        As for :func:`read_tilts`.

    Returns
    -------
    dict
        ``format`` (str: npy, tiff, mrc, hdf5, emd, emd-velox, dm3, dm4, ser);
        ``shape`` (tuple ``(n_images, ny, nx)`` as :func:`read_tilts` returns it);
        ``pixel_size`` (float, Å, from the x-axis calibration, or None if the file has none);
        ``angles`` (float64 ``(n_images,)`` tilt angles in degrees, one per image, or None);
        ``angles_source`` (str naming where in the file the angles came from, or None);
        ``stage_alpha`` (float, degrees: the single stage tilt a DM or SER/EMI file records for the
        whole file, or None; it is also ``angles`` when the file holds one image).

    Raises
    ------
    ValueError
        As :func:`read_tilts`; also when the metadata are contradictory (several angle entries in
        an HDF5 file, angle units that are not degrees or radians).
    """
    p, _, meta = _read_any(path, dataset, False)
    if meta["angles"] is not None:
        if len(meta["angles"]) != meta["shape"][0]:
            raise ValueError(f"{p}: {meta['angles_source']} holds {len(meta['angles'])} angles for "
                             f"{meta['shape'][0]} images; expected one angle per image")
        _check_angle_values(meta["angles"], p)
    return meta


def _check_angle_values(a, p) -> None:
    if not np.isfinite(a).all():
        raise ValueError(f"{p}: angles must be finite")
    if a.size and np.abs(a).max() > 360:
        raise ValueError(f"{p}: angles are in degrees and must lie in [-360, 360], got up to {np.abs(a).max():g}")


def read_angles(path, n: int | None = None, *, dataset: str | None = None) -> np.ndarray:
    """Read tilt angles in degrees from a text file or from a tilt-series file's metadata.

    Parameters
    ----------
    path : str or Path
        A text file (``.txt``, ``.csv``, IMOD ``.rawtlt``/``.tlt``, ...): one angle per line, or
        ``phi theta psi`` ZYZ Euler angles per line separated by spaces, tabs, commas or
        semicolons; blank lines, ``#`` comments and a first-line CSV header are skipped.
        Or a tilt-series file (suffix in :data:`TILT_SUFFIXES`) whose metadata hold one tilt angle
        per image (see :func:`read_tilt_metadata`): the file's images need not be read.
    n : int, optional
        The number of images; the count must match (see :func:`check_angles`).
    dataset : str, optional
        For a tilt-series file: as for :func:`read_tilts`.

    Returns
    -------
    numpy.ndarray
        float64 ``(n,)`` tilt angles or ``(n, 3)`` Euler angles, in degrees.

    Raises
    ------
    ValueError
        Naming the file: unreadable, non-numeric lines, wrong width, angles outside [-360, 360]
        or not finite, a tilt-series file without angles in its metadata, or a count mismatch.
    """
    p = _check_file(path)
    if p.suffix.lower() == ".mat":
        from .matlab import mat_angles
        with _reading(p, "angles"):
            a = mat_angles(p, dataset)
        _check_angle_values(a, p)
        if n is not None:
            check_angles(a, n, p)
        return a
    if p.suffix.lower() in TILT_SUFFIXES:
        meta = read_tilt_metadata(p, dataset=dataset)
        if meta["angles"] is None:
            extra = ""
            if meta["stage_alpha"] is not None:
                extra = (f" (it records one stage tilt, {meta['stage_alpha']:g} deg, for its "
                         f"{meta['shape'][0]} images)")
            raise ValueError(f"{p}: the file's metadata hold no tilt angle per image{extra}; "
                             "give the angles in a text file")
        a = meta["angles"]
        if n is not None:
            check_angles(a, n, p)
        return a
    if dataset is not None:
        raise ValueError(f"{p}: the dataset option applies only to tilt-series files")
    rows = []
    try:
        text = p.read_text()
    except UnicodeDecodeError as e:
        raise ValueError(f"{p}: not a text file of angles ({e})") from e
    for lineno, line, fields in text_fields(text):
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
    _check_angle_values(a, p)
    if n is not None:
        check_angles(a, n, p)
    return a


def text_fields(text: str):
    """The fields of each line of a small text table (angles, models): the one tokenizer of them.

    ``#`` starts a comment; commas, semicolons and white space separate fields; blank lines are
    skipped. Yields ``(line number, stripped line, fields)``, line numbers from 1.

    Examples
    --------
    >>> list(text_fields("# x, y\n1, 2 ; 3\n\n4"))
    [(2, '1, 2 ; 3', ['1', '2', '3']), (4, '4', ['4'])]
    """
    for lineno, line in enumerate(text.splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if line:
            yield lineno, line, line.replace(",", " ").replace(";", " ").split()


def check_angles(angles, n: int, path="angles") -> None:
    """Raise ValueError naming `path` if there are not `n` angles."""
    if len(angles) != n:
        raise ValueError(f"{path}: {len(angles)} angles for {n} images; expected one angle per image")


def read_atoms(path, *, min_atoms: int = 1, name: str = "path"):
    """The atomic model of a results folder (its ``atoms.xyz``) or of an extended XYZ file, as
    :func:`aetcore.io.write_xyz` writes it: the one reader of ``atoms.xyz``.

    Parameters
    ----------
    path : path
        A results folder of ``aet run`` or an ``.xyz`` file holding one model.
    min_atoms : int
        Fewest atoms accepted.
    name : str
        The argument named when `path` holds no model.

    Returns
    -------
    ase.Atoms
        Positions in Å (object frame), symbols and the per-atom arrays of the file.

    Raises
    ------
    ValueError
        No such file, a file that is not extended XYZ, more than one model (frame), or fewer than
        `min_atoms` atoms; the message names the file.
    """
    from ase.io import read
    p = Path(path)
    f = p / "atoms.xyz" if p.is_dir() else p
    if not f.is_file():
        raise ValueError(f"{name}: {p} holds no atoms.xyz (expected an `aet run` results folder or an "
                         "extended XYZ file)")
    try:
        frames = read(f, index=":", format="extxyz")
    except Exception as e:  # ase raises many types on bad files
        raise ValueError(f"{f}: cannot read the atomic model as extended XYZ: {e}") from e
    if len(frames) != 1:
        raise ValueError(f"{f}: expected one model (one XYZ frame), got {len(frames)}")
    if len(frames[0]) < min_atoms:
        raise ValueError(f"{f}: expected at least {min_atoms} atoms, got {len(frames[0])}")
    return frames[0]
