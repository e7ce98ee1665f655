"""The chain from a tilt series to an atomic model in one call: reconstruction (GENFIRE), atom
tracing, species classification and refinement against the projections."""
from __future__ import annotations

import time
from typing import Sequence

import numpy as np
from ase import Atoms

from .._util.validate import as_angles, as_generator, as_tilts, positive, resolve_threads, species_symbols
from .classify import classify
from .reconstruct import genfire
from .refine import refine as refine_model
from .trace import trace_atoms

__all__ = ["atoms_from_tilts", "atoms_from_volume"]


def _options(value, name: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise TypeError(f"{name}: expected a dict of keyword options, got {type(value).__name__}")
    return dict(value)


def atoms_from_tilts(tilts, angles, pixel_size: float, species: Sequence[str], *, refine: bool = True,
                     genfire_options: dict | None = None, trace_options: dict | None = None,
                     classify_options: dict | None = None, refine_options: dict | None = None,
                     threads=None, seed=None, progress: bool = True) -> Atoms:
    """Reconstruct, trace, classify and refine: the 3D position and species of every atom.

    Parameters
    ----------
    tilts : (n_angles, ny, nx) array
        Aligned tilt series (rotation centre at ``n // 2``).
    angles : (n_angles,) or (n_angles, 3) array
        Degrees.
    pixel_size : float
        Å per pixel.
    species : sequence of str
        The elements present, e.g. ``("Fe", "Pt")``.
    refine : bool
        Refine positions, per-species heights and B-factors against the tilt series (each atom
        moves at most ``max_shift`` = 1 Å per coordinate unless ``refine_options`` says otherwise).
    genfire_options, trace_options, classify_options, refine_options : dict, optional
        Keyword options passed to :func:`aetcore.steps.reconstruct.genfire`,
        :func:`aetcore.steps.trace.trace_atoms`, :func:`aetcore.steps.classify.classify` and
        :func:`aetcore.steps.refine.refine`.
    threads : int, optional
    seed : None, int or numpy.random.Generator
    progress : bool

    Returns
    -------
    ase.Atoms
        See :func:`atoms_from_volume`; ``atoms.info`` also holds the reconstruction errors and its
        time.
    """
    t, a, ps, species = _check_inputs(tilts, angles, pixel_size, species)
    gopts = _options(genfire_options, "genfire_options")
    nthreads = resolve_threads(threads)
    rng = as_generator(seed)
    t0 = time.perf_counter()
    rec = genfire(t, a, pixel_size=ps, threads=nthreads, seed=rng, progress=progress, **gopts)
    elapsed = time.perf_counter() - t0
    atoms = atoms_from_volume(rec.volume, t, a, ps, species, refine=refine, trace_options=trace_options,
                              classify_options=classify_options, refine_options=refine_options,
                              threads=nthreads, seed=rng)
    atoms.info["reconstruction_errors"] = rec.errors.tolist()
    atoms.info["timings"] = {"reconstruct": elapsed, **atoms.info["timings"]}
    return atoms


def _check_inputs(tilts, angles, pixel_size, species):
    t = as_tilts(tilts)
    a = as_angles(angles, t.shape[0])
    ps = positive(pixel_size, "pixel_size")
    return t, a, ps, species_symbols(species)


def atoms_from_volume(volume, tilts, angles, pixel_size: float, species: Sequence[str], *, refine: bool = True,
                      trace_options: dict | None = None, classify_options: dict | None = None,
                      refine_options: dict | None = None, threads=None, seed=None) -> Atoms:
    """Trace, classify and refine the atoms of a reconstruction of `tilts`.

    Parameters are those of :func:`atoms_from_tilts`, with ``volume`` the reconstruction
    ``(nz, ny, nx)`` (same voxel size as the pixel size).

    Returns
    -------
    ase.Atoms
        Positions in Å in the object frame (CONVENTIONS.md), symbols per atom, and per-atom arrays
        ``intensity`` (integrated, volume units), ``fit_status`` (0 converged, see
        :data:`aetcore.steps.trace.STATUS`) and ``precision`` ((n, 3) Å, NaN without refinement).
        ``atoms.info`` holds the refinement R1 before and after, the refined heights and
        B-factors, the classification history and the time per step (s).
    """
    t, a, ps, species = _check_inputs(tilts, angles, pixel_size, species)
    opts = {n: _options(v, n) for n, v in [("trace_options", trace_options), ("classify_options", classify_options),
                                          ("refine_options", refine_options)]}
    nthreads = resolve_threads(threads)
    rng = as_generator(seed)
    timings = {}

    t0 = time.perf_counter()
    traced = trace_atoms(volume, ps, threads=nthreads, **opts["trace_options"])
    if len(traced) < len(species):
        raise ValueError(f"volume: only {len(traced)} atoms were traced, fewer than the {len(species)} species")
    timings["trace"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    cls = classify(volume, traced.positions, species, pixel_size=ps, seed=rng, **opts["classify_options"])
    keep = cls.labels >= 0
    timings["classify"] = time.perf_counter() - t0

    positions = traced.positions[keep]
    symbols = np.asarray(species)[cls.labels[keep]]
    precision = np.full((positions.shape[0], 3), np.nan)
    info = {"changes_per_round": list(cls.changes_per_round), "non_atoms": int((~keep).sum()), "pixel_size": ps}
    if refine:
        t0 = time.perf_counter()
        ref = refine_model(positions, symbols, t, a, ps, threads=nthreads, **opts["refine_options"])
        positions, precision = ref.positions, ref.precision
        info.update(r1_before=ref.r1_before, r1_after=ref.r1_after,
                    heights=dict(zip(ref.model.symbols, ref.model.heights.tolist())),
                    b_factors=dict(zip(ref.model.symbols, ref.model.b_factors.tolist())))
        timings["refine"] = time.perf_counter() - t0
    info["timings"] = timings
    atoms = Atoms(symbols=list(symbols), positions=positions)
    atoms.set_array("intensity", cls.intensity[keep].astype(np.float64))
    atoms.set_array("fit_status", traced.status[keep].astype(np.int64))
    atoms.set_array("precision", np.asarray(precision, np.float64))
    atoms.info.update(info)
    return atoms
