"""Checks at the public boundary: bad input is refused before any work, with a message that names
the argument, what was expected and what was given (CONVENTIONS.md)."""
from __future__ import annotations

import os
from numbers import Integral, Real

import numpy as np

__all__ = [
    "as_tilts", "as_volume", "as_angles", "as_positions", "positive", "at_least",
    "resolve_threads", "as_generator", "finite_array", "real_array", "as_matrix", "one_of",
    "species_symbols", "flag",
]


def _describe(a) -> str:
    if isinstance(a, np.ndarray):
        return f"an array of shape {a.shape} and dtype {a.dtype}"
    return f"{type(a).__name__}"


def finite_array(a: np.ndarray, name: str) -> None:
    """Raise ValueError if `a` holds NaN or Inf."""
    if a.size and not np.isfinite(a).all():
        bad = int(np.count_nonzero(~np.isfinite(a)))
        raise ValueError(f"{name}: expected finite values, got {bad} NaN or Inf entries")


def real_array(a, name: str, ndims, layout: str) -> np.ndarray:
    """A float32 C-contiguous copy-if-needed of `a` with ndim in `ndims` (an int or a tuple);
    refuses ragged lists, non-real dtypes, empty arrays and NaN/Inf, naming `name`."""
    ndims = (ndims,) if isinstance(ndims, Integral) else tuple(ndims)
    if isinstance(a, (list, tuple)):
        shapes = []
        for item in a:
            s = np.shape(item)
            if s not in shapes:
                shapes.append(s)
        if len(shapes) > 1:
            raise ValueError(f"{name}: expected images of one shape {layout}, got shapes "
                             f"{', '.join(str(s) for s in shapes[:4])}{' ...' if len(shapes) > 4 else ''}")
        try:
            a = np.asarray(a)
        except (TypeError, ValueError):
            raise TypeError(f"{name}: expected a NumPy array {layout}, got a list that is not one") from None
    if not isinstance(a, np.ndarray):
        raise TypeError(f"{name}: expected a NumPy array {layout}, got {_describe(a)}")
    if a.ndim not in ndims:
        raise ValueError(f"{name}: expected {' or '.join(str(d) for d in ndims)} dimensions {layout}, "
                         f"got shape {a.shape}")
    if a.dtype == bool or not (np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer)):
        raise TypeError(f"{name}: expected a real floating-point array, got dtype {a.dtype}")
    if any(s == 0 for s in a.shape):
        raise ValueError(f"{name}: expected a non-empty array, got shape {a.shape}")
    out = np.ascontiguousarray(a, dtype=np.float32)
    finite_array(out, name)
    return out


def one_of(value, options, name: str) -> str:
    """A string among `options`."""
    if not isinstance(value, str):
        raise TypeError(f"{name}: expected one of {options}, got {type(value).__name__}")
    if value not in options:
        raise ValueError(f"{name}: expected one of {options}, got {value!r}")
    return value


def as_matrix(value, shape: tuple, name: str, accepted: str, kind: str) -> np.ndarray:
    """A finite float64 matrix of `shape`. `accepted` lists what the argument may be (for the
    TypeError); `kind` names the matrix (for the shape error)."""
    try:
        m = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"{name}: expected {accepted}, got {type(value).__name__}") from None
    if m.shape != tuple(shape):
        raise ValueError(f"{name}: expected a {tuple(shape)} {kind}, got shape {m.shape}")
    finite_array(m, name)
    return m


def as_tilts(tilts, name: str = "tilts") -> np.ndarray:
    """A tilt series as float32 C-contiguous (n_angles, ny, nx); copies only when needed."""
    return real_array(tilts, name, 3, "(n_angles, ny, nx)")


def as_volume(volume, name: str = "volume") -> np.ndarray:
    """A volume as float32 C-contiguous (nz, ny, nx); copies only when needed."""
    return real_array(volume, name, 3, "(nz, ny, nx)")


def as_angles(angles, n: int | None = None, name: str = "angles") -> np.ndarray:
    """Euler angles in degrees as float64 (n, 3) `(phi, theta, psi)`.

    A 1-D array of n tilt angles means a single-axis tilt series `(0, theta, 0)` about y.
    """
    if isinstance(angles, (list, tuple)):
        angles = np.asarray(angles, dtype=np.float64)
    if not isinstance(angles, np.ndarray):
        raise TypeError(f"{name}: expected an array of angles in degrees, got {_describe(angles)}")
    if not (np.issubdtype(angles.dtype, np.floating) or np.issubdtype(angles.dtype, np.integer)):
        raise TypeError(f"{name}: expected real angles in degrees, got dtype {angles.dtype}")
    a = np.asarray(angles, dtype=np.float64)
    if a.ndim == 1:
        a = np.stack([np.zeros_like(a), a, np.zeros_like(a)], axis=1)
    elif a.ndim != 2 or a.shape[1] != 3:
        raise ValueError(f"{name}: expected shape (n,) tilt angles or (n, 3) Euler angles (phi, theta, psi) "
                         f"in degrees, got shape {a.shape}")
    if a.shape[0] == 0:
        raise ValueError(f"{name}: expected at least one angle, got none")
    finite_array(a, name)
    if np.abs(a).max() > 360.0:
        raise ValueError(f"{name}: expected degrees within [-360, 360], got a value of {np.abs(a).max():g} "
                         "(radians are used only inside the core)")
    if n is not None and a.shape[0] != n:
        raise ValueError(f"{name}: expected {n} angles (one per image), got {a.shape[0]}")
    return np.ascontiguousarray(a)


def as_positions(positions, name: str = "positions") -> np.ndarray:
    """Atom positions in Å as float64 C-contiguous (n, 3) `(x, y, z)`."""
    if isinstance(positions, (list, tuple)):
        positions = np.asarray(positions, dtype=np.float64)
    if not isinstance(positions, np.ndarray):
        raise TypeError(f"{name}: expected an (n, 3) array of positions in Å, got {_describe(positions)}")
    p = np.asarray(positions, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] != 3:
        raise ValueError(f"{name}: expected shape (n, 3) (x, y, z in Å), got shape {p.shape}")
    finite_array(p, name)
    return np.ascontiguousarray(p)


def positive(value, name: str) -> float:
    """A finite number > 0."""
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"{name}: expected a positive number, got {type(value).__name__}")
    if not np.isfinite(value) or value <= 0:
        raise ValueError(f"{name}: expected a positive number, got {value}")
    return float(value)


def at_least(value, minimum, name: str, integer: bool = False):
    """A number >= minimum (an integer if asked)."""
    if isinstance(value, bool) or not isinstance(value, Integral if integer else Real):
        kind = "an integer" if integer else "a number"
        raise TypeError(f"{name}: expected {kind} >= {minimum}, got {type(value).__name__}")
    if not np.isfinite(value) or value < minimum:
        raise ValueError(f"{name}: expected a value >= {minimum}, got {value}")
    return int(value) if integer else float(value)


def flag(value, name: str) -> bool:
    """True or False (a NumPy bool too); anything else is a TypeError naming `name`."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name}: expected True or False, got {type(value).__name__}")
    return bool(value)


def species_symbols(species, name: str = "species", *, text: bool = False) -> tuple:
    """The species of a sample: distinct element symbols, as a tuple of str (the one check of a
    species list, for the API, ``aet --species`` and batch manifests).

    Parameters
    ----------
    species : sequence of str, or str with ``text=True``
        Element symbols such as ``("Fe", "Pt")``; with ``text=True`` also one comma-separated
        string ``"Fe,Pt"`` (the command line and manifest form).
    name : str
        The argument named in error messages.

    Raises
    ------
    TypeError
        Not a sequence of str (a str without ``text=True``).
    ValueError
        No species, an unknown element symbol (``X``, the ASE placeholder, included), or a symbol
        given twice.
    """
    from ase.data import atomic_numbers

    if text and isinstance(species, str):
        species = [s.strip() for s in species.split(",") if s.strip()]
    elif isinstance(species, (str, bytes)) or not hasattr(species, "__iter__"):
        raise TypeError(f"{name}: expected a sequence of element symbols such as ('Fe', 'Pt'), "
                        f"got {type(species).__name__} {species!r}")
    sp = tuple(species)
    if len(sp) == 0:
        raise ValueError(f"{name}: expected at least one species (element symbols such as Fe,Pt), got none")
    for s in sp:
        if not isinstance(s, str):
            raise TypeError(f"{name}: expected element symbols (str), got {type(s).__name__} {s!r}")
    bad = [s for s in sp if atomic_numbers.get(s, 0) == 0]
    if bad:
        raise ValueError(f"{name}: unknown element symbol(s) {', '.join(map(repr, bad))}")
    if len(set(sp)) != len(sp):
        raise ValueError(f"{name}: repeated element symbol in {sp}; expected distinct species")
    return tuple(str(s) for s in sp)


def resolve_threads(threads) -> int:
    """None means every core the process may use."""
    if threads is None:
        try:
            return max(1, len(os.sched_getaffinity(0)))
        except AttributeError:  # pragma: no cover - not Linux
            return max(1, os.cpu_count() or 1)
    return at_least(threads, 1, "threads", integer=True)


def as_generator(seed) -> np.random.Generator:
    """seed=None, an int, or a numpy.random.Generator."""
    if isinstance(seed, np.random.Generator):
        return seed
    if seed is None or (isinstance(seed, Integral) and not isinstance(seed, bool)):
        return np.random.default_rng(seed)
    raise TypeError(f"seed: expected None, an int or a numpy.random.Generator, got {type(seed).__name__}")


def as_folder(folder, name: str = "folder"):
    """An existing directory as a Path; TypeError for a non-path, ValueError if it does not exist."""
    import os
    from pathlib import Path
    if not isinstance(folder, (str, os.PathLike)):
        raise TypeError(f"{name}: expected a path (str or os.PathLike), got {type(folder).__name__}")
    f = Path(folder)
    if not f.is_dir():
        raise ValueError(f"{name}: {f} is not an existing directory")
    return f
