"""Atomic models from other codes' files: extended XYZ, MATLAB ``.mat`` and CSV/text.

:func:`read_model` reads a model to compare (``aet compare``, :func:`aetcore.quality.compare.compare_models`):
extended XYZ (``.xyz``, through :func:`aetcore.io.read_atoms`), MATLAB (``.mat``: a ``(3, n)`` or
``(n, 3)`` positions variable and, if present, a species variable; :func:`aetcore.io.matlab.mat_model`)
or CSV/text (``x, y, z`` and optionally a species column; a header line is skipped). Positions are in Å.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .readers import read_atoms, text_fields

__all__ = ["read_model"]


def _read_csv(p: Path):
    rows, species = [], []
    for lineno, line, fields in text_fields(p.read_text()):
        try:
            nums = [float(f) for f in fields[:3]]
        except ValueError:
            if not rows and lineno == 1:
                continue  # header
            raise ValueError(f"{p}: line {lineno}: expected x y z [species], got {line!r}") from None
        if len(fields) not in (3, 4) or len(nums) != 3:
            raise ValueError(f"{p}: line {lineno}: expected x y z [species], got {line!r}")
        rows.append(nums)
        species.append(fields[3] if len(fields) == 4 else None)
    if not rows:
        raise ValueError(f"{p}: no atoms found")
    have = [s is not None for s in species]
    if any(have) and not all(have):
        raise ValueError(f"{p}: some lines have a species column and some do not")
    return np.asarray(rows, np.float64), (np.array(species) if all(have) else None)


def read_model(path, *, variable: str | None = None, species_variable: str | None = None):
    """Positions ``(n, 3)`` in Å and species (array of str, or None) of a model file.

    Parameters
    ----------
    path : str or Path
        ``.xyz`` (extended XYZ), ``.mat`` or ``.csv``/``.txt``.
    variable, species_variable : str, optional
        For ``.mat``: the positions and species variables (see :func:`aetcore.io.matlab.mat_model`).
    """
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"{p}: no such file")
    suffix = p.suffix.lower()
    try:
        if suffix == ".mat":
            from .matlab import mat_model
            return mat_model(p, variable, species_variable)
        if suffix in (".csv", ".txt", ".dat"):
            return _read_csv(p)
        if suffix in (".xyz", ".extxyz"):
            atoms = read_atoms(p)
            return np.asarray(atoms.positions, np.float64), np.array(atoms.get_chemical_symbols())
    except ValueError as e:
        if str(e).startswith(str(p)):
            raise
        raise ValueError(f"{p}: cannot read the model: {e}") from e
    except Exception as e:
        raise ValueError(f"{p}: cannot read the model ({type(e).__name__}: {e})") from e
    raise ValueError(f"{p}: unknown model format {suffix!r}; expected .xyz, .mat, .csv or .txt")
