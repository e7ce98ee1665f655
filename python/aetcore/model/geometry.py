"""Projection geometry (CONVENTIONS.md): ZYZ Euler angles in degrees, rotation matrices acting on
column vectors (x, y, z), and where an object-frame point lands on the detector."""
from __future__ import annotations

import numpy as np

from .. import _core
from .._util.validate import as_angles, as_positions, positive

__all__ = ["euler_matrices", "normalize_angles", "detector_position", "origin", "ANGLE_CONVENTIONS",
           "angles_from_convention", "zyz_from_matrices"]

#: Angle conventions of other codes that :func:`angles_from_convention` converts (docs/angles.md).
ANGLE_CONVENTIONS = ("aetcore", "genfire", "resire")


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


def _axis_rotations(axis: int, a: np.ndarray) -> np.ndarray:
    """Right-handed rotations by `a` (radians, shape ``(n,)``) about coordinate axis `axis`
    (0 x, 1 y, 2 z), shape ``(n, 3, 3)``."""
    c, s = np.cos(a), np.sin(a)
    i, j = [(1, 2), (2, 0), (0, 1)][axis]
    R = np.zeros(a.shape + (3, 3))
    R[:, axis, axis] = 1.0
    R[:, i, i] = c
    R[:, j, j] = c
    R[:, i, j] = -s
    R[:, j, i] = s
    return R


def zyz_from_matrices(R) -> np.ndarray:
    """ZYZ Euler angles of rotation matrices: the inverse of :func:`euler_matrices`.

    Parameters
    ----------
    R : (n, 3, 3) array
        Rotation matrices acting on column vectors ``(x, y, z)``.

    Returns
    -------
    (n, 3) float64
        ``(phi, theta, psi)`` in degrees with ``R = Rz(phi) @ Ry(theta) @ Rz(psi)``. Of the two
        solutions the one with the smaller ``|phi| + |psi|`` is returned, so a nearly single-axis
        tilt keeps its sign in ``theta``; where ``sin(theta) = 0``, ``psi = 0``.
    """
    R = np.asarray(R, np.float64)
    if R.ndim != 3 or R.shape[1:] != (3, 3) or not np.isfinite(R).all():
        raise ValueError(f"R: expected finite (n, 3, 3) rotation matrices, got shape {R.shape}")
    st = np.hypot(R[:, 0, 2], R[:, 1, 2])
    theta = np.arctan2(st, R[:, 2, 2])
    phi = np.arctan2(R[:, 1, 2], R[:, 0, 2])
    psi = np.arctan2(R[:, 2, 1], -R[:, 2, 0])
    phi2 = np.arctan2(-R[:, 1, 2], -R[:, 0, 2])   # the other solution: theta -> -theta
    psi2 = np.arctan2(-R[:, 2, 1], R[:, 2, 0])

    def wrap(a):
        return np.abs((a + np.pi) % (2 * np.pi) - np.pi)

    other = wrap(phi2) + wrap(psi2) < wrap(phi) + wrap(psi)
    theta = np.where(other, -theta, theta)
    phi = np.where(other, phi2, phi)
    psi = np.where(other, psi2, psi)
    flat = st < 1e-12                              # theta = 0 or 180: only phi +- psi is defined
    down = R[:, 2, 2] < 0
    phi = np.where(flat & ~down, np.arctan2(R[:, 1, 0], R[:, 0, 0]), phi)
    phi = np.where(flat & down, np.arctan2(-R[:, 1, 0], -R[:, 0, 0]), phi)
    theta = np.where(flat, np.where(down, np.pi, 0.0), theta)
    psi = np.where(flat, 0.0, psi)
    return np.degrees(np.stack([phi, theta, psi], axis=1))


def angles_from_convention(angles, convention: str = "aetcore", n: int | None = None) -> np.ndarray:
    """Angles written in another code's convention, as aetcore's ZYZ Euler angles (docs/angles.md).

    All conventions here take the arrays in the source's axes as :mod:`aetcore.io.matlab` maps them
    (``x`` along MATLAB's ``dim1``, ``y`` along ``dim2``, ``z`` along ``dim3``, origin at index
    ``n // 2``, which is MATLAB's 1-based ``round((n + 1) / 2)``).

    Parameters
    ----------
    angles : array_like
        ``(n,)`` tilt angles or ``(n, 3)`` rows ``(phi, theta, psi)``, degrees, as the source
        writes them.
    convention : {"aetcore", "genfire", "resire"}
        - ``aetcore``: ``R = Rz(phi) Ry(theta) Rz(psi)`` (CONVENTIONS.md); returned unchanged.
        - ``genfire``: GENFIRE (MATLAB and Python): its matrix
          ``Rz(-psi) Ry(-theta) Rz(-phi)`` rotates the detector's Fourier coordinates by its
          transpose, which is aetcore's ZYZ: returned unchanged.
        - ``resire``: RESIRE (and the AET codes built on it) with ``vector1 = [0 0 1]``,
          ``vector2 = [0 1 0]``, ``vector3 = [1 0 0]``: a voxel ``r`` lands on pixel
          ``(Rz(phi) Ry(theta) Rx(psi))^T r``, so aetcore's matrix is
          ``Rz(phi) Ry(theta) Rx(psi)``, re-expressed as ZYZ angles.
    n : int, optional
        The number of images; a different count is refused.

    Returns
    -------
    (n, 3) float64
        ZYZ ``(phi, theta, psi)`` in degrees. A ``(n,)`` input is a single-axis tilt about y in
        every convention: ``(0, theta, 0)``.
    """
    if convention not in ANGLE_CONVENTIONS:
        raise ValueError(f"convention: expected one of {', '.join(ANGLE_CONVENTIONS)}, got {convention!r}")
    a = as_angles(angles, n)
    if convention in ("aetcore", "genfire"):
        return a
    r = np.radians(a)
    R = _axis_rotations(2, r[:, 0]) @ _axis_rotations(1, r[:, 1]) @ _axis_rotations(0, r[:, 2])
    return zyz_from_matrices(R)
