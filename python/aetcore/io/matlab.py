"""MATLAB ``.mat`` files as the AET community writes them: tilt series, angles, volumes and atomic
models, MAT v5/v7 (``scipy.io.loadmat``) and v7.3 (HDF5, ``h5py``).

Every array is first brought to MATLAB's own index order (``A(i, j, k)`` is ``a[i, j, k]``): scipy
returns it so, h5py returns the axes reversed (MATLAB writes column-major), and this module reverses
them back. The source's layouts are then mapped onto CONVENTIONS.md, keeping the source's axes
(``x`` along ``dim1``, ``y`` along ``dim2``):

- projections ``P(dim1, dim2, k)`` -> tilt series ``tilts[k, y, x]`` = ``P(x, y, k)``;
- volumes ``V(dim1, dim2, dim3)`` -> ``vol[z, y, x]`` = ``V(x, y, z)``;
- atomic models ``M(3, n)`` (or ``(n, 3)``), rows ``(dim1, dim2, dim3)`` -> positions ``(n, 3)``
  ``(x, y, z)``, unchanged in value (the unit is the file's: Å for the published AET models);
- angles ``(n, 3)`` or ``(3, n)`` -> ``(n, 3)`` rows ``(phi, theta, psi)`` in the source's
  convention (convert them with :func:`aetcore.model.geometry.angles_from_convention`), or ``(n,)``
  tilt angles.

:func:`aetcore.io.read_tilts` and :func:`aetcore.io.read_angles` read ``.mat`` files through this
module (their ``dataset`` option names the variable).

A file with several variables needs the variable's name (the ``dataset`` option of the readers)
unless exactly one variable has the expected shape.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["is_mat_v73", "mat_variables", "read_mat_variable", "mat_tilts", "mat_tilts_shape",
           "mat_angles", "mat_volume", "mat_model"]

_V73_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def is_mat_v73(path) -> bool:
    """True if `path` is a MAT v7.3 (HDF5) file: the HDF5 signature after the 512-byte header."""
    with open(path, "rb") as f:
        head = f.read(520)
    return head[512:520] == _V73_SIGNATURE or head[:8] == _V73_SIGNATURE


def _h5_is_variable(obj) -> bool:
    import h5py
    return isinstance(obj, h5py.Dataset) and obj.attrs.get("MATLAB_class", b"") not in (b"cell", b"struct")


def _h5_class(obj) -> str:
    c = obj.attrs.get("MATLAB_class", b"double")
    return c.decode() if isinstance(c, bytes) else str(c)


def mat_variables(path) -> dict:
    """The numeric (and char) variables of a ``.mat`` file: ``{name: (shape, class)}`` with the shape
    in MATLAB order and the MATLAB class (``double``, ``single``, ``char``, ...).

    Raises
    ------
    ValueError
        Naming the file when it is not a readable MAT file.
    """
    p = Path(path)
    if is_mat_v73(p):
        import h5py
        out = {}
        with h5py.File(p, "r") as f:
            for name, obj in f.items():
                if name.startswith("#") or not _h5_is_variable(obj):
                    continue
                out[name] = (tuple(obj.shape[::-1]), _h5_class(obj))
        return out
    import scipy.io
    try:
        info = scipy.io.whosmat(p)
    except Exception as e:
        raise ValueError(f"{p}: not a readable MATLAB file ({type(e).__name__}: {e})") from e
    return {name: (tuple(shape), cls) for name, shape, cls in info}


def read_mat_variable(path, name: str) -> np.ndarray:
    """One variable of a ``.mat`` file, in MATLAB index order (``A(i, j, k)`` is ``a[i, j, k]``).

    A char array is returned as an array of str (one per row).
    """
    p = Path(path)
    if is_mat_v73(p):
        import h5py
        with h5py.File(p, "r") as f:
            if name not in f or not _h5_is_variable(f[name]):
                raise ValueError(f"{p}: no numeric variable {name!r}; it holds {sorted(mat_variables(p))}")
            ds = f[name]
            cls = _h5_class(ds)
            a = np.asarray(ds[()])
            if a.dtype.names and set(a.dtype.names) >= {"real", "imag"}:
                raise ValueError(f"{p}: variable {name!r} is complex; expected real values")
            a = a.T  # h5py sees MATLAB's column-major array with its axes reversed
            if cls == "char":
                a = np.array(["".join(map(chr, row)).rstrip() for row in np.atleast_2d(a)])
            return a
    import scipy.io
    try:
        d = scipy.io.loadmat(p, variable_names=[name], squeeze_me=False, chars_as_strings=True)
    except Exception as e:
        raise ValueError(f"{p}: not a readable MATLAB file ({type(e).__name__}: {e})") from e
    if name not in d:
        raise ValueError(f"{p}: no variable {name!r}; it holds {sorted(mat_variables(p))}")
    a = d[name]
    if a.dtype.kind in "US":
        return np.array([str(s).rstrip() for s in a.ravel()])
    if a.dtype.kind == "O" or a.dtype.names:
        raise ValueError(f"{p}: variable {name!r} is a cell or struct array; expected a numeric array")
    if np.iscomplexobj(a):
        raise ValueError(f"{p}: variable {name!r} is complex; expected real values")
    return a


def _pick(p: Path, variable, ok, what: str) -> str:
    """The variable to read: `variable` if given (checked), else the only one whose MATLAB shape
    passes `ok`."""
    vars_ = mat_variables(p)
    if variable is not None:
        if variable not in vars_:
            raise ValueError(f"{p}: no variable {variable!r}; it holds {sorted(vars_)}")
        return variable
    cands = [n for n, (shape, cls) in vars_.items() if cls != "char" and ok(shape)]
    if len(cands) == 1:
        return cands[0]
    listing = ", ".join(f"{n} {'x'.join(map(str, s))} {c}" for n, (s, c) in vars_.items()) or "nothing"
    if not cands:
        raise ValueError(f"{p}: no variable looks like {what}; the file holds {listing}")
    raise ValueError(f"{p}: several variables look like {what} ({', '.join(cands)}); name one "
                     f"(the dataset option)")


def _real(a: np.ndarray, p: Path, name: str) -> np.ndarray:
    if not (np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer)
            or a.dtype == bool):
        raise ValueError(f"{p}: variable {name!r} has type {a.dtype}; expected real numbers")
    return a


def _tilts_variable(p: Path, variable) -> tuple:
    name = _pick(p, variable, lambda s: len(s) in (2, 3) and min(s) > 1, "a stack of projections")
    shape = mat_variables(p)[name][0]
    if len(shape) not in (2, 3) or min(shape[:2]) < 2:
        raise ValueError(f"{p}: variable {name!r} has shape {shape}; expected (dim1, dim2, n_images)")
    d1, d2 = shape[:2]
    return name, (shape[2] if len(shape) == 3 else 1, d2, d1)


def mat_tilts_shape(path, variable: str | None = None) -> tuple:
    """The shape ``(k, dim2, dim1)`` :func:`mat_tilts` would return, without reading the images."""
    return _tilts_variable(Path(path), variable)[1]


def mat_tilts(path, variable: str | None = None) -> np.ndarray:
    """A tilt series ``P(dim1, dim2, k)`` as ``(k, dim2, dim1)`` (CONVENTIONS.md: image ``k`` is
    ``tilts[k]``, ``x`` along the source's ``dim1``, ``y`` along its ``dim2``).

    Parameters
    ----------
    path : str or Path
        A MAT v5/v7 or v7.3 file.
    variable : str, optional
        The variable holding the projections; default: the only 2D or 3D numeric variable.

    Returns
    -------
    numpy.ndarray
        The values as stored (the caller converts to float32), ``(k, dim2, dim1)``; a 2D
        variable is one image.
    """
    p = Path(path)
    name = _tilts_variable(p, variable)[0]
    a = _real(read_mat_variable(p, name), p, name)
    if a.ndim == 2:
        a = a[:, :, None]
    if a.ndim != 3:
        raise ValueError(f"{p}: variable {name!r} has shape {a.shape}; expected (dim1, dim2, n_images)")
    return np.transpose(a, (2, 1, 0))


def mat_volume(path, variable: str | None = None) -> np.ndarray:
    """A volume ``V(dim1, dim2, dim3)`` as float32 ``vol[z, y, x]`` = ``V(x, y, z)``."""
    p = Path(path)
    name = _pick(p, variable, lambda s: len(s) == 3 and min(s) > 1, "a volume")
    a = _real(read_mat_variable(p, name), p, name)
    if a.ndim != 3:
        raise ValueError(f"{p}: variable {name!r} has shape {a.shape}; expected (dim1, dim2, dim3)")
    return np.ascontiguousarray(np.transpose(a, (2, 1, 0)), np.float32)


def mat_angles(path, variable: str | None = None, n: int | None = None) -> np.ndarray:
    """Angles in degrees: ``(n, 3)`` rows ``(phi, theta, psi)`` as the file stores them (``(3, n)``
    is transposed), or ``(n,)`` tilt angles. The convention is the source's (see
    :func:`aetcore.model.geometry.angles_from_convention`).

    Parameters
    ----------
    variable : str, optional
        Default: the only numeric variable that is a vector or has a side of 3.
    n : int, optional
        The number of images; decides the orientation of a ``3 x 3`` array (rows are images) and
        is checked.
    """
    p = Path(path)
    name = _pick(p, variable, lambda s: len(s) == 2 and (min(s) == 1 or 3 in s), "angles")
    a = np.asarray(_real(read_mat_variable(p, name), p, name), np.float64)
    if a.ndim == 2 and 1 in a.shape:
        a = a.ravel()
    elif a.ndim == 2 and a.shape[1] != 3 and a.shape[0] == 3:
        a = a.T
    elif a.ndim != 2 or a.shape[1] != 3:
        raise ValueError(f"{p}: variable {name!r} has shape {a.shape}; expected (n, 3), (3, n) or a vector")
    if n is not None and a.shape[0] != n:
        raise ValueError(f"{p}: {a.shape[0]} angles for {n} images; expected one angle per image")
    if not np.isfinite(a).all():
        raise ValueError(f"{p}: angles must be finite")
    return a


def mat_model(path, variable: str | None = None, species_variable: str | None = None):
    """An atomic model: positions ``(n, 3)`` ``(x, y, z)`` = ``(dim1, dim2, dim3)`` and species.

    Parameters
    ----------
    variable : str, optional
        The positions, ``(3, n)`` (the AET codes' layout) or ``(n, 3)``; default: the only
        numeric variable with a side of 3 and more than 3 entries.
    species_variable : str, optional
        Per-atom species: a numeric vector (labels or atomic numbers, returned as str of the
        integer) or a char array of element symbols. Default: a variable of length n named like
        ``atomtype``/``atom_type``/``species``/``types``/``Z`` if there is one, else None.

    Returns
    -------
    positions : (n, 3) float64
    species : (n,) array of str, or None
    """
    p = Path(path)
    vars_ = mat_variables(p)
    name = _pick(p, variable, lambda s: len(s) == 2 and 3 in s and max(s) > 3, "an atomic model (3 x n)")
    a = np.asarray(_real(read_mat_variable(p, name), p, name), np.float64)
    if a.ndim != 2 or 3 not in a.shape:
        raise ValueError(f"{p}: variable {name!r} has shape {a.shape}; expected (3, n) or (n, 3)")
    pos = a.T if a.shape[0] == 3 else a
    if not np.isfinite(pos).all():
        raise ValueError(f"{p}: variable {name!r}: positions must be finite")
    n = pos.shape[0]
    if species_variable is None:
        names = {"atomtype", "atom_type", "atomtypes", "species", "types", "type", "z", "elements"}
        cands = [v for v, (shape, cls) in vars_.items() if v != name and v.lower() in names
                 and (shape[0] == n if cls == "char" else int(np.prod(shape)) == n)]
        species_variable = cands[0] if len(cands) == 1 else None
    species = None
    if species_variable is not None:
        s = read_mat_variable(p, species_variable)
        if s.dtype.kind == "U":
            species = np.asarray(s, dtype=str)
        else:
            s = np.asarray(s).ravel()
            if not np.all(np.isfinite(s)) or not np.all(s == np.round(s)):
                raise ValueError(f"{p}: variable {species_variable!r}: expected integer species labels")
            species = np.array([str(int(v)) for v in s])
        if species.shape[0] != n:
            raise ValueError(f"{p}: variable {species_variable!r} holds {species.shape[0]} species for "
                             f"{n} atoms; expected one per atom")
    return pos, species
