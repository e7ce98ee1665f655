"""Forward projection of volumes and its exact adjoint."""
import numpy as np
import pytest

from aetcore.model.projection import backproject_volume, project_volume


@pytest.mark.parametrize("shape,det", [((16, 18, 20), (18, 20)), ((15, 15, 15), (21, 17))])
def test_adjoint_for_random_euler_angles(rng, shape, det):
    vol = rng.random(shape, dtype=np.float32)
    ang = rng.uniform(-180, 180, (7, 3))
    P = project_volume(vol, ang, detector_shape=det)
    y = rng.random(P.shape, dtype=np.float32)
    lhs = (P.astype(np.float64) * y).sum()
    rhs = (vol.astype(np.float64) * backproject_volume(y, ang, shape)).sum()
    assert lhs == pytest.approx(rhs, rel=1e-4)


def test_projection_of_a_rotated_line_matches_its_length():
    # A uniform cube: the central ray's length through it at 45 degrees is side * sqrt(2) until
    # the beam leaves through the side faces; compare the projection to the analytic chord.
    n = 41
    vol = np.zeros((n, n, n), np.float32)
    vol[10:31, 10:31, 10:31] = 1.0
    p = project_volume(vol, [30.0])[0]
    chord = 21 / np.cos(np.radians(30))
    assert p[n // 2, n // 2] == pytest.approx(chord, rel=0.03)


def test_projection_is_linear(rng):
    a = rng.random((12, 12, 12), dtype=np.float32)
    b = rng.random((12, 12, 12), dtype=np.float32)
    ang = rng.uniform(-90, 90, (4, 3))
    np.testing.assert_allclose(project_volume(a + 2 * b, ang),
                               project_volume(a, ang) + 2 * project_volume(b, ang), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("shape,det", [((16, 18, 20), (18, 20)), ((15, 15, 15), (21, 17)), ((12, 14, 10), (9, 8))])
def test_adjoint_for_single_axis_tilts(rng, shape, det):
    # Single-axis series take their own (bilinear, slice-per-row) path in the core.
    vol = rng.random(shape, dtype=np.float32)
    ang = np.concatenate([rng.uniform(-80, 80, 6), [0.0, 90.0]])
    P = project_volume(vol, ang, detector_shape=det)
    y = rng.random(P.shape, dtype=np.float32)
    lhs = (P.astype(np.float64) * y).sum()
    rhs = (vol.astype(np.float64) * backproject_volume(y, ang, shape)).sum()
    assert lhs == pytest.approx(rhs, rel=1e-4)
    # ... and agrees with the general path (the same tilt written as full Euler angles with a
    # tiny psi that keeps it off the single-axis path).
    eul = np.stack([np.zeros_like(ang), ang, np.full_like(ang, 1e-7)], axis=1)
    np.testing.assert_allclose(P, project_volume(vol, eul, detector_shape=det), rtol=1e-4, atol=1e-4)
