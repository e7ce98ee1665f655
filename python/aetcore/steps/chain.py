"""The chain from a tilt series to an atomic model: the one place the order of the steps is written
(:data:`STEPS`), and the atom steps (:func:`trace_step`, :func:`classify_step`, :func:`refine_step`,
:func:`model_atoms`) that both :func:`atoms_from_tilts` (arrays in memory) and the results-folder
runner :mod:`aetcore.app.folder` (``aet run``, one step file per step) call."""
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

__all__ = ["STEPS", "atoms_from_tilts", "atoms_from_volume", "trace_step", "classify_step", "refine_step",
           "model_atoms"]

#: The steps of ``aet run``, in order: the products of each are the inputs of the next.
STEPS = ("preprocess", "align", "reconstruct", "trace", "classify", "refine")


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
    traced = trace_step(volume, ps, species, threads=nthreads, **opts["trace_options"])
    timings["trace"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    cls = classify_step(volume, traced.positions, species, ps, seed=rng, **opts["classify_options"])
    timings["classify"] = time.perf_counter() - t0

    info = {"changes_per_round": list(cls.changes_per_round)}
    positions = precision = None
    if refine:
        t0 = time.perf_counter()
        ref = refine_step(traced.positions, cls.labels, species, t, a, ps, threads=nthreads, **opts["refine_options"])
        positions, precision = ref.positions, ref.precision
        info.update(r1_before=ref.r1_before, r1_after=ref.r1_after,
                    heights=dict(zip(ref.model.symbols, ref.model.heights.tolist())),
                    b_factors=dict(zip(ref.model.symbols, ref.model.b_factors.tolist())))
        timings["refine"] = time.perf_counter() - t0
    info["timings"] = timings
    return model_atoms(species, ps, traced.positions, traced.status, cls.labels, cls.intensity,
                       positions=positions, precision=precision, info=info)


def trace_step(volume, pixel_size: float, species: Sequence[str], *, threads=None, **options):
    """The trace step: :func:`aetcore.steps.trace.trace_atoms` with `options`, refusing a volume in
    which fewer atoms than species were found (nothing to classify)."""
    traced = trace_atoms(volume, pixel_size, threads=threads, **options)
    if len(traced) < len(species):
        raise ValueError(f"volume: only {len(traced)} atoms were traced, fewer than the {len(species)} species")
    return traced


def classify_step(volume, positions, species: Sequence[str], pixel_size: float, *, seed=None, **options):
    """The classify step: :func:`aetcore.steps.classify.classify` of the traced `positions`."""
    return classify(volume, positions, species, pixel_size=pixel_size, seed=seed, **options)


def _kept(positions, labels, species):
    """The traced atoms the classification kept (label >= 0) and their symbols."""
    labels = np.asarray(labels)
    keep = labels >= 0
    return np.asarray(positions)[keep], np.asarray(species)[labels[keep]]


def refine_step(positions, labels, species: Sequence[str], tilts, angles, pixel_size: float, *, threads=None,
                **options):
    """The refine step: :func:`aetcore.steps.refine.refine` of the atoms the classification kept
    (`positions` are the traced ones, `labels` the classification's, -1 for a non-atom)."""
    kept, symbols = _kept(positions, labels, species)
    return refine_model(kept, symbols, tilts, angles, pixel_size, threads=threads, **options)


def model_atoms(species: Sequence[str], pixel_size: float, traced_positions, status, labels, intensity, *,
                positions=None, precision=None, info: dict | None = None) -> Atoms:
    """The atomic model (``atoms.xyz``) from the products of the trace and classify steps, and of the
    refine step when it ran.

    Parameters
    ----------
    species : sequence of str
        The species, in the order the labels index.
    pixel_size : float
        Å per voxel (stored in ``atoms.info``).
    traced_positions, status : (n, 3), (n,) arrays
        The trace step's positions (Å) and fit status of every traced atom.
    labels, intensity : (n,) arrays
        The classify step's species index (-1: not an atom) and integrated intensity.
    positions, precision : (m, 3) arrays, optional
        The refined positions and their precision (Å) of the m kept atoms; None: the traced positions
        and NaN precision.
    info : dict, optional
        More ``atoms.info`` entries.

    Returns
    -------
    ase.Atoms
        The kept atoms with per-atom arrays ``intensity``, ``fit_status`` and ``precision``;
        ``atoms.info`` has ``pixel_size`` and ``non_atoms`` (atoms the classification dropped).
    """
    keep = np.asarray(labels) >= 0
    kept, symbols = _kept(traced_positions, labels, species)
    if positions is None:
        positions, precision = kept, np.full(kept.shape, np.nan)
    atoms = Atoms(symbols=list(symbols), positions=positions)
    atoms.set_array("intensity", np.asarray(intensity)[keep].astype(np.float64))
    atoms.set_array("fit_status", np.asarray(status)[keep].astype(np.int64))
    atoms.set_array("precision", np.asarray(precision, np.float64))
    atoms.info.update({"pixel_size": float(pixel_size), "non_atoms": int((~keep).sum()), **(info or {})})
    return atoms
