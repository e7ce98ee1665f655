"""Projection geometry (CONVENTIONS.md): ZYZ Euler angles in degrees, rotation matrices acting on
column vectors (x, y, z), and where an object-frame point lands on the detector."""
from __future__ import annotations

import numpy as np

from .. import _core
from .._util.validate import as_angles, as_positions, positive

__all__ = ["euler_matrices", "normalize_angles", "detector_position", "origin"]


def normalize_angles(angles, n: int | None = None) -> np.ndarray:
    """Euler angles as a float64 ``(n, 3)`` array ``(phi, theta, psi)`` in degrees.

    Parameters
    ----------
    angles : array_like
        ``(n,)`` tilt angles (single-axis tilt about y, i.e. ``(0, theta, 0)``) or ``(n, 3)``
        ZYZ Euler angles, degrees.
    n : int, optional
        The number of images the angles belong to; a different count is refused.
    """
    return as_angles(angles, n)


def euler_matrices(angles) -> np.ndarray:
    """Rotation matrices ``R = Rz(phi) @ Ry(theta) @ Rz(psi)``, shape ``(n, 3, 3)``.

    Parameters
    ----------
    angles : array_like
        Tilt angles ``(n,)`` or Euler angles ``(n, 3)``, degrees.
    """
    a = as_angles(angles)
    return _core.euler_matrices(np.radians(a))


def origin(n: int) -> int:
    """Index of the origin of an axis of length n (the ``numpy.fft.fftshift`` centre)."""
    return n // 2


def detector_position(positions, angles, pixel_size: float = 1.0) -> np.ndarray:
    """Detector coordinates ``(u, v) = (R_k^T r)[:2]`` of object positions, in Å.

    Parameters
    ----------
    positions : (n_atoms, 3) array
        Object-frame positions ``(x, y, z)`` in Å.
    angles : array_like
        ``(n_angles,)`` or ``(n_angles, 3)`` in degrees.
    pixel_size : float
        Å per pixel; the result is divided by it when it is not 1 (pixels from the origin).

    Returns
    -------
    (n_angles, n_atoms, 2) array of ``(u, v)``.
    """
    p = as_positions(positions)
    R = euler_matrices(angles)
    ps = positive(pixel_size, "pixel_size")
    return np.einsum("kji,nj->kni", R, p)[..., :2] / ps
