"""Minimal writers for the microscope formats that no Python library writes (test fixtures only).

* :func:`write_dm` — Gatan DigitalMicrograph DM3/DM4: a big-endian tag tree (groups and typed
  data tags, ``%%%%`` delimited) holding an ``ImageList`` with an optional RGB thumbnail and one
  image or 3D stack, its calibration and a ``Microscope Info.Stage Position.Stage Alpha`` tag.
* :func:`write_ser` — FEI/Thermo Fisher TIA SER: a little-endian header, a series dimension, an
  offset array, then per image a calibrated 2D data element and a time (and position) tag; and
  :func:`write_emi`, the companion file whose XML ``ObjectInfo`` holds the stage tilt.
* :func:`write_velox` — a Velox-style EMD (HDF5): ``/Data/Image/<uuid>/Data`` as
  ``(ny, nx, n_frames)`` with one JSON metadata column per frame.

Written from the published format descriptions (DM tag-file notes, the TIA series-file
description, ncempy's reader as the check); the tests confirm ncempy reads what these write.
"""
from __future__ import annotations

import json
import struct

import numpy as np

# ------------------------------------------------------------------------------------------ DM3/4

# tag-entry value encodings (DM "encoded types")
_DM_TAG_CODE = {np.dtype(np.int16): 2, np.dtype(np.int32): 3, np.dtype(np.uint16): 4,
                np.dtype(np.uint32): 5, np.dtype(np.float32): 6, np.dtype(np.float64): 7,
                np.dtype(np.bool_): 8, np.dtype(np.int8): 9, np.dtype(np.uint8): 10,
                np.dtype(np.int64): 11, np.dtype(np.uint64): 12}
# image pixel types (ImageData.DataType)
_DM_IMAGE_TYPE = {np.dtype(np.int16): 1, np.dtype(np.float32): 2, np.dtype(np.uint8): 6,
                  np.dtype(np.int32): 7, np.dtype(np.uint16): 10, np.dtype(np.uint32): 11,
                  np.dtype(np.float64): 12}


class DMString(str):
    """A DM text tag, stored as an array of uint16 characters."""


def _dm_data(value):
    """(info words, little-endian payload) of one data tag."""
    if isinstance(value, DMString):
        chars = np.array([ord(c) for c in value], "<u2")
        return [20, 4, len(chars)], chars.tobytes()
    if isinstance(value, np.ndarray):
        flat = np.ascontiguousarray(value).reshape(-1)
        code = _DM_TAG_CODE[flat.dtype.newbyteorder("=")]
        return [20, code, flat.size], flat.astype(flat.dtype.newbyteorder("<")).tobytes()
    value = np.asarray(value)
    code = _DM_TAG_CODE[value.dtype.newbyteorder("=")]
    return [code], value.astype(value.dtype.newbyteorder("<")).tobytes()


def _dm_group(entries, version):
    """A tag group: sorted/open flags, tag count, then entries (label, value | list of entries)."""
    word = ">I" if version == 3 else ">Q"
    out = [bytes([0, 1]), struct.pack(word, len(entries))]
    for label, value in entries:
        lab = label.encode("latin-1")
        if isinstance(value, list):
            kind, body = 20, _dm_group(value, version)
        else:
            info, payload = _dm_data(value)
            kind = 21
            body = b"%%%%" + struct.pack(word, len(info)) + b"".join(struct.pack(word, i) for i in info) + payload
        out.append(bytes([kind]) + struct.pack(">H", len(lab)) + lab)
        if version == 4:
            out.append(struct.pack(">Q", len(body)))  # DM4: byte size of what follows
        out.append(body)
    return b"".join(out)


def _dm_image(data, scales, units, tags):
    """One ImageList entry; `data` (C order) is stored x-fastest with Dimensions (nx, ny[, nz])."""
    dims = data.shape[::-1]
    cal = [("", [("Origin", np.float32(0)), ("Scale", np.float32(s)), ("Units", DMString(u))])
           for s, u in zip(scales, units)]
    image_type = 23 if tags is None else _DM_IMAGE_TYPE[data.dtype]  # 23: RGB thumbnail
    return [
        ("ImageData", [
            ("Calibrations", [
                ("Brightness", [("Origin", np.float32(0)), ("Scale", np.float32(1)), ("Units", DMString(""))]),
                ("Dimension", cal),
                ("DisplayCalibratedUnits", np.bool_(True)),
            ]),
            ("Data", data),
            ("DataType", np.uint32(image_type)),
            ("Dimensions", [("", np.uint32(d)) for d in dims]),
            ("PixelDepth", np.uint32(data.dtype.itemsize)),
        ]),
        ("ImageTags", tags or []),
        ("Name", DMString("tilt series" if tags is not None else "thumbnail")),
    ]


def dm_bytes(stack, *, version=4, pixel_size=None, unit="nm", stage_alpha=None, thumbnail=True):
    """The bytes of a DM3 (`version` 3) or DM4 file holding `stack` (2D image or 3D stack).

    `pixel_size` is the x/y calibration in `unit` (default: none, scale 1 and empty units);
    `stage_alpha` (degrees) goes into ``Microscope Info.Stage Position.Stage Alpha``.
    """
    stack = np.asarray(stack)
    scale = 1.0 if pixel_size is None else pixel_size
    u = "" if pixel_size is None else unit
    scales = [scale, scale] + [1.0] * (stack.ndim - 2)
    units = [u, u] + [""] * (stack.ndim - 2)
    tags = [("Microscope Info", [("Stage Position", [("Stage Alpha", np.float32(stage_alpha))])])] \
        if stage_alpha is not None else []
    images = []
    if thumbnail:
        images.append(("", _dm_image(np.zeros((8, 8), np.uint32), [1.0, 1.0], ["", ""], None)))
    images.append(("", _dm_image(stack, scales, units, tags)))
    root = _dm_group([("ImageList", images)], version)
    tail = b"\0" * 8
    if version == 3:
        head = struct.pack(">III", 3, len(root) + len(tail), 1)
    else:
        head = struct.pack(">IQI", 4, len(root) + len(tail), 1)
    return head + root + tail


def write_dm(path, stack, **kw):
    """Write :func:`dm_bytes` to `path`."""
    data = dm_bytes(stack, **kw)
    with open(path, "wb") as f:
        f.write(data)
    return path


# --------------------------------------------------------------------------------------- SER / EMI

_SER_TYPE = {np.dtype(np.uint8): 1, np.dtype(np.uint16): 2, np.dtype(np.uint32): 3,
             np.dtype(np.int8): 4, np.dtype(np.int16): 5, np.dtype(np.int32): 6,
             np.dtype(np.float32): 7, np.dtype(np.float64): 8}


def ser_bytes(stack, *, pixel_size_m=1e-10, version=0x0220, positions=False, times=None):
    """The bytes of a TIA SER file with the images of `stack` ``(n, ny, nx)``.

    Images are stored bottom row first (TIA's origin is the lower left; ncempy flips them back).
    `pixel_size_m` is the calibration step in metres; with `positions`, every tag also carries
    an (x, y) position (tag type 0x4142) instead of the time only (0x4152).
    """
    stack = np.asarray(stack)
    if stack.ndim == 2:
        stack = stack[None]
    n, ny, nx = stack.shape
    code = _SER_TYPE[stack.dtype.newbyteorder("=")]
    ofmt = "<i" if version == 0x0210 else "<q"
    tag_type = 0x4142 if positions else 0x4152
    desc, units = b"Number", b""
    dim = (struct.pack("<i", n) + struct.pack("<dd", 0.0, 1.0) + struct.pack("<i", 0)
           + struct.pack("<i", len(desc)) + desc + struct.pack("<i", len(units)) + units)
    head_len = 6 + 16 + struct.calcsize(ofmt) + 4
    arr_off = head_len + len(dim)
    arr_len = 2 * n * struct.calcsize(ofmt)
    pos = arr_off + arr_len
    elements, data_offsets = [], []
    for k in range(n):
        el = (struct.pack("<ddi", 0.0, pixel_size_m, 0) * 2 + struct.pack("<hii", code, nx, ny)
              + np.flipud(stack[k]).astype(stack.dtype.newbyteorder("<")).tobytes())
        data_offsets.append(pos)
        elements.append(el)
        pos += len(el)
    tags, tag_offsets = [], []
    for k in range(n):
        t = struct.pack("<HHI", tag_type, 0, int(times[k]) if times is not None else 1_700_000_000 + k)
        if positions:
            t += struct.pack("<dd", 1e-9 * k, -1e-9 * k)
        tag_offsets.append(pos)
        tags.append(t)
        pos += len(t)
    header = (struct.pack("<HHH", 0x4949, 0x0197, version) + struct.pack("<IIii", 0x4122, tag_type, n, n)
              + struct.pack(ofmt, arr_off) + struct.pack("<i", 1))
    offsets = b"".join(struct.pack(ofmt, o) for o in data_offsets + tag_offsets)
    return header + dim + offsets + b"".join(elements) + b"".join(tags)


def write_ser(path, stack, **kw):
    """Write :func:`ser_bytes` to `path`."""
    data = ser_bytes(stack, **kw)
    with open(path, "wb") as f:
        f.write(data)
    return path


def write_emi(path, *, stage_alpha=None, high_tension_kv=300.0):
    """A minimal EMI file: binary preamble, then the XML ``ObjectInfo`` with the microscope
    conditions and an experimental description holding ``Stage A`` in degrees."""
    rows = [("High tension", "kV", high_tension_kv)]
    if stage_alpha is not None:
        rows.append(("Stage A", "deg", stage_alpha))
    desc = "".join(f"<Data><Label>{lab}</Label><Value>{val}</Value><Unit>{unit}</Unit></Data>"
                   for lab, unit, val in rows)
    xml = ("<ObjectInfo><Uuid>00000000-0000-0000-0000-000000000001</Uuid>"
           "<AcquireDate>Mon Jan 01 00:00:00 2024</AcquireDate><Manufacturer>FEI</Manufacturer>"
           "<DetectorPixelHeight>1</DetectorPixelHeight><DetectorPixelWidth>1</DetectorPixelWidth>"
           "<ExperimentalConditions><MicroscopeConditions><AcceleratingVoltage>300000"
           "</AcceleratingVoltage><Tilt1>0</Tilt1></MicroscopeConditions></ExperimentalConditions>"
           f"<ExperimentalDescription><Root>{desc}</Root></ExperimentalDescription>"
           "<AcquireInfo><DwellTimePath>1e-05</DwellTimePath></AcquireInfo>"
           "<DetectorRange><StartX>0</StartX></DetectorRange></ObjectInfo>")
    with open(path, "wb") as f:
        f.write(b"\xd0\xcf\x11\xe0" + b"\0" * 60 + xml.encode("utf-8") + b"\0" * 16)
    return path


# ------------------------------------------------------------------------------------------ Velox

def write_velox(path, stack, *, pixel_size_m=None, alpha_rad=None, detector="HAADF",
                uuid="8f4cfb0e1e9a4e6c9b0d5f0f5a7d1c2e", extra_images=()):
    """A Velox-style EMD file: ``/Data/Image/<uuid>/Data`` ``(ny, nx, n)`` and ``Metadata``
    (uint8, one zero-padded JSON column per frame) with ``BinaryResult`` pixel size (metres) and
    ``Stage.AlphaTilt`` (radians). `extra_images` adds ``(uuid, stack, detector)`` groups."""
    import h5py

    def frame_json(k, det):
        md = {"Acquisition": {"AcquisitionStartDatetime": {"DateTime": "1700000000"}},
              "BinaryResult": {"Detector": det, "PixelUnitX": "m", "PixelUnitY": "m",
                               "PixelSize": {"width": str(pixel_size_m or 1e-10),
                                             "height": str(pixel_size_m or 1e-10)}},
              "Stage": {"AlphaTilt": str(alpha_rad[k]) if alpha_rad is not None else "0",
                        "BetaTilt": "0"},
              "CustomProperties": {}}
        return json.dumps(md).encode("utf-8")

    with h5py.File(path, "w") as f:
        f.attrs["Version"] = json.dumps({"format": "Velox", "version": "2"})
        for uid, s, det in ((uuid, stack, detector),) + tuple(extra_images):
            s = np.asarray(s)
            g = f.create_group(f"Data/Image/{uid}")
            g["Data"] = np.ascontiguousarray(np.moveaxis(s, 0, 2))
            cols = [frame_json(k, det) for k in range(s.shape[0])]
            width = max(len(c) for c in cols) + 64
            meta = np.zeros((width, len(cols)), np.uint8)
            for k, c in enumerate(cols):
                meta[: len(c), k] = np.frombuffer(c, np.uint8)
            g["Metadata"] = meta
    return path
