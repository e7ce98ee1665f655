import os
from pathlib import Path

import numpy as np
import pytest

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def relative_error(x, y):
    """||a x - y|| / ||y|| with the least-squares scale a (independent of aetcore.metrics)."""
    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64)
    a = (x * y).sum() / (x * x).sum()
    return float(np.linalg.norm(a * x - y) / np.linalg.norm(y))


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


def fept_dev_series(name):
    """A raw series of ../shared/data/fept_dev aligned with its recorded shifts (linear interpolation,
    :func:`aetcore.steps.align.apply_alignment`) after its detector offset, estimated from the data
    (:func:`aetcore.model.noise.estimate_detector_noise`), is removed.

    Returns (tilts, angles, pixel_size, meta, noise); skips when the case is not present.
    """
    import json
    import tifffile
    from aetcore.model.noise import estimate_detector_noise
    from aetcore.steps.align import apply_alignment
    d = SHARED / "fept_dev" / name
    if not d.exists():
        pytest.skip(f"{d} is not present")
    raw = tifffile.imread(d / "tilts.tif").astype(np.float32)
    meta = json.loads((d / "meta.json").read_text())
    noise = estimate_detector_noise(raw)
    du_dv = np.asarray(meta["misalignment"]["shifts_px"], np.float64)      # (du, dv) per image
    tilts = apply_alignment(raw - np.float32(noise.offset), -du_dv[:, ::-1], order=1)
    return tilts, np.loadtxt(d / "angles.txt"), float(meta["pixel_size"]), meta, noise


def shared_case(name):
    """A case from ../shared/data mapped onto CONVENTIONS.md: (volume, tilts, angles, support).

    The mapping (pinned by tests/steps/test_shared_data.py): both the volume and the projections are
    transposed (2, 1, 0) from MATLAB's [x, y, z] / [x, y, k]; the Euler angles are used as given.
    """
    d = SHARED / name
    if not d.exists():
        pytest.skip(f"{d} is not present")
    if name == "genfire_vesicle":
        model = np.load(d / "model_matlab_layout.npy")
        proj = np.load(d / "projections_matlab_layout.npy")
        angles = np.load(d / "angles.npy")
        support = np.transpose(np.load(d / "support_matlab_layout.npy"), (2, 1, 0)) > 0
    else:
        model = np.load(d / "ground_truth_matlab_layout.npy")
        proj = np.load(d / "projections_matlab_layout.npy")
        angles = np.load(d / "angles_matlab.npy")
        support = None
    vol = np.ascontiguousarray(np.transpose(model, (2, 1, 0)), np.float32)
    tilts = np.ascontiguousarray(np.transpose(proj, (2, 1, 0)), np.float32)
    return vol, tilts, np.asarray(angles, np.float64), support


def gauge_free_rms(found, truth, angles):
    """RMS (px) of found - truth (alignment shifts (dy, dx) per image) after removing the
    object-translation mode (dy = t_y, dx = t_x cos(theta) - t_z sin(theta)), the gauge of alignment
    (independent of aetcore.scoring.alignment_error)."""
    th = np.radians(angles)
    d = np.asarray(found, np.float64) - np.asarray(truth, np.float64)
    ay = np.ones((len(th), 1))
    ax = np.stack([np.cos(th), -np.sin(th)], axis=1)
    ry = d[:, 0] - ay @ np.linalg.lstsq(ay, d[:, 0], rcond=None)[0]
    rx = d[:, 1] - ax @ np.linalg.lstsq(ax, d[:, 1], rcond=None)[0]
    return float(np.sqrt((ry ** 2 + rx ** 2).mean()))
