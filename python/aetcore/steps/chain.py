"""The chain from a tilt series to an atomic model: the one place the order of the steps is written
(:data:`STEPS`), and the atom steps (:func:`trace_step`, :func:`classify_step`, :func:`evidence_step`,
:func:`refine_step` with its validation :func:`holdout_step`, :func:`model_atoms`) that both :func:`atoms_from_tilts` (arrays in memory) and the results-folder
runner :mod:`aetcore.app.folder` (``aet run``, one step file per step) call."""
from __future__ import annotations

import time
from typing import Sequence

import numpy as np
from ase import Atoms

from .._util.validate import as_angles, as_generator, as_tilts, as_volume, positive, resolve_threads, species_symbols
from .classify import classify
from .evidence import atom_evidence, decide_atoms
from .reconstruct import genfire
from .refine import refine as refine_model
from .trace import trace_atoms

__all__ = ["STEPS", "atoms_from_tilts", "atoms_from_volume", "extended_step", "trace_step", "classify_step",
           "evidence_step", "refine_step", "holdout_step", "model_atoms"]

#: The steps of ``aet run``, in order: the products of each are the inputs of the next.
STEPS = ("preprocess", "align", "reconstruct", "trace", "classify", "evidence", "refine")

#: Extended objects (a film): does the evidence step run, and does the refinement move the atoms? On the
#: measured Ta film (area 1, the source's RESIRE volume traced with the slab support: recall 94.4 %,
#: precision 90.8 %, RMSD 27.7 pm against the published model) the evidence step, even counting only
#: the pixels whose rays stay in the box, lowered all three (91.3 %, 85.3 %, 39.3 pm), and so did
#: refining the positions (93.3 %, 89.5 %, 36.3 pm; 75.1 %, 73.4 %, 48.8 pm with every pixel):
#: bench/README.md, real_film. The heights and B-factors are still refined.
EXTENDED_EVIDENCE = False
EXTENDED_REFINE_POSITIONS = False


def _options(value, name: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise TypeError(f"{name}: expected a dict of keyword options, got {type(value).__name__}")
    return dict(value)


def atoms_from_tilts(tilts, angles, pixel_size: float, species: Sequence[str], *, refine: bool = True,
                     decide: bool = True, genfire_options: dict | None = None, trace_options: dict | None = None,
                     classify_options: dict | None = None, evidence_options: dict | None = None,
                     refine_options: dict | None = None, extended="auto", threads=None, seed=None,
                     progress: bool = True) -> Atoms:
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
    decide : bool
        Drop, relabel and add atoms by the evidence of the tilt series
        (:func:`aetcore.steps.evidence.decide_atoms`) between classification and refinement.
    genfire_options, trace_options, classify_options, evidence_options, refine_options : dict, optional
        Keyword options passed to :func:`aetcore.steps.reconstruct.genfire`,
        :func:`aetcore.steps.trace.trace_atoms`, :func:`aetcore.steps.classify.classify`,
        :func:`aetcore.steps.evidence.decide_atoms` and :func:`aetcore.steps.refine.refine`;
        ``refine_options`` may also hold ``holdout_folds`` (:func:`holdout_step`).
    extended : "auto", True or False
        Extended object (a film): detected from the series ("auto") or forced; see
        :func:`extended_step`. When extended, the slab found from the volume is the tracing support, the
        evidence step runs only if :data:`EXTENDED_EVIDENCE` (or ``evidence_options`` say
        ``extended=True``) and then counts only the pixels whose rays cross the slab inside the box,
        and the refinement moves the atoms only if :data:`EXTENDED_REFINE_POSITIONS` (or
        ``refine_options`` say ``extended_positions=True``), on the same pixels.
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
    if "holdout_folds" in _options(refine_options, "refine_options"):   # refused before the reconstruction
        _holdout_folds(refine_options["holdout_folds"])
    nthreads = resolve_threads(threads)
    rng = as_generator(seed)
    t0 = time.perf_counter()
    rec = genfire(t, a, pixel_size=ps, threads=nthreads, seed=rng, progress=progress, **gopts)
    elapsed = time.perf_counter() - t0
    atoms = atoms_from_volume(rec.volume, t, a, ps, species, refine=refine, decide=decide,
                              trace_options=trace_options, classify_options=classify_options,
                              evidence_options=evidence_options, refine_options=refine_options,
                              extended=extended, threads=nthreads, seed=rng)
    atoms.info["reconstruction_errors"] = rec.errors.tolist()
    atoms.info["timings"] = {"reconstruct": elapsed, **atoms.info["timings"]}
    return atoms


def _check_inputs(tilts, angles, pixel_size, species):
    t = as_tilts(tilts)
    a = as_angles(angles, t.shape[0])
    ps = positive(pixel_size, "pixel_size")
    return t, a, ps, species_symbols(species)


def atoms_from_volume(volume, tilts, angles, pixel_size: float, species: Sequence[str], *, refine: bool = True,
                      decide: bool = True, trace_options: dict | None = None, classify_options: dict | None = None,
                      evidence_options: dict | None = None, refine_options: dict | None = None,
                      extended="auto", threads=None, seed=None) -> Atoms:
    """Trace, classify and refine the atoms of a reconstruction of `tilts`.

    Parameters are those of :func:`atoms_from_tilts`, with ``volume`` the reconstruction
    ``(nz, ny, nx)`` (same voxel size as the pixel size).

    Returns
    -------
    ase.Atoms
        Positions in Å in the object frame (CONVENTIONS.md), symbols per atom, and per-atom arrays
        ``intensity`` (integrated, volume units), ``fit_status`` (0 converged, see
        :data:`aetcore.steps.trace.STATUS`; -1 for an atom the evidence step added),
        ``precision`` ((n, 3) Å, NaN without refinement), ``precision_reliable`` (False where the
        loss around the atom is too far from quadratic for a curvature-based precision, see
        :class:`aetcore.steps.refine.RefinementResult`, and without refinement), ``evidence`` and ``species_evidence``
        (log-likelihood ratios, nats, see :class:`aetcore.steps.evidence.Evidence`; NaN with
        ``decide=False``).
        ``atoms.info`` holds the refinement R1 before and after, unless ``holdout_folds`` is 0 the
        k-fold validation (``r1_holdout``: mean R1 on held-out images, and ``holdout``:
        :meth:`aetcore.quality.holdout.HoldoutResult.as_dict`), the refined heights and
        B-factors, the classification history, ``extended`` (:func:`extended_step`) and the time per
        step (s).
    """
    t, a, ps, species = _check_inputs(tilts, angles, pixel_size, species)
    volume = as_volume(volume)  # the one check of the volume, before any use of it
    opts = {n: _options(v, n) for n, v in [("trace_options", trace_options), ("classify_options", classify_options),
                                          ("evidence_options", evidence_options), ("refine_options", refine_options)]}
    nthreads = resolve_threads(threads)
    rng = as_generator(seed)
    timings = {}
    ext = extended_step(t, volume, ps, extended)
    support, mask, slab = extended_inputs(ext, t.shape, a, ps, np.shape(volume))
    ev_extended = opts["evidence_options"].pop("extended", EXTENDED_EVIDENCE)
    positions_extended = opts["refine_options"].pop("extended_positions", EXTENDED_REFINE_POSITIONS)
    if support is not None:
        opts["trace_options"].setdefault("support", support)
        opts["evidence_options"].setdefault("pixel_mask", mask)
        opts["evidence_options"].setdefault("slab", slab)
        opts["refine_options"].setdefault("pixel_mask", mask)
        decide = decide and bool(ev_extended)
        if not positions_extended:
            opts["refine_options"]["refine_positions"] = False

    t0 = time.perf_counter()
    traced = trace_step(volume, ps, species, threads=nthreads, **opts["trace_options"])
    timings["trace"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    cls = classify_step(volume, traced.positions, species, ps, seed=rng, **opts["classify_options"])
    timings["classify"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    decided, dattrs = evidence_step(traced.positions, cls.labels, species, t, a, ps, intensity=cls.intensity,
                                    volume=volume, enabled=decide, threads=nthreads, **opts["evidence_options"])
    timings["evidence"] = time.perf_counter() - t0

    info = {"changes_per_round": list(cls.changes_per_round), "evidence_history": dattrs.get("history", []),
            "extended": ext}
    positions = precision = reliable = None
    if refine:
        ropts = opts["refine_options"]
        hopts = {"holdout_folds": ropts.pop("holdout_folds")} if "holdout_folds" in ropts else {}
        start = decided
        t0 = time.perf_counter()
        ref, decided = refine_step(start, dattrs, t, a, ps, threads=nthreads, **ropts)
        positions, precision, reliable = ref.positions, ref.precision, ref.precision_reliable
        info.update(r1_before=ref.r1_before, r1_after=ref.r1_after,
                    heights=dict(zip(ref.model.symbols, ref.model.heights.tolist())),
                    b_factors=dict(zip(ref.model.symbols, ref.model.b_factors.tolist())))
        timings["refine"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        hold = None
        if ropts.get("pixel_mask") is None:  # an extended object's masked fit is not validated (no mask there)
            hold = holdout_step(start, dattrs, t, a, ps, threads=nthreads, seed=rng, **hopts, **ropts)
        if hold is not None:
            info.update(r1_holdout=hold.r1_holdout_mean, holdout=hold.as_dict())
            timings["holdout"] = time.perf_counter() - t0
    info["timings"] = timings
    return model_atoms(species, ps, traced.positions, traced.status, cls.labels, cls.intensity, decided,
                       positions=positions, precision=precision, precision_reliable=reliable, info=info)


def extended_step(tilts, volume=None, pixel_size: float = 1.0, mode="auto", *, border=None, threshold=None,
                  level=None, margin=None) -> dict:
    """Whether the series is an extended object, and its slab (:mod:`aetcore.steps.extended`).

    Parameters
    ----------
    tilts : (n_angles, ny, nx) array
        The series (raw: the detection looks for vacuum at the borders).
    volume : (nz, ny, nx) array, optional
        Its reconstruction; None: the detection alone (no ``slab_z``).
    pixel_size : float
        Å.
    mode : "auto", True or False
        "auto": detected (:func:`aetcore.steps.extended.detect_extended`); True/False: forced.
    border, threshold : float, optional
        Options of :func:`~aetcore.steps.extended.detect_extended` (None: its defaults).
    level, margin : float, optional
        Options of :func:`~aetcore.steps.extended.slab_extent` (None: its defaults).

    Returns
    -------
    dict
        ``extended`` (bool), ``how`` ("detected", "not detected", "forced" or "off"), ``border_ratios``
        (the detection's strip ratios) and, when extended, ``slab_z`` ``[z0, z1]`` (Å).
    """
    from .extended import detect_extended, slab_extent
    if not (mode == "auto" or isinstance(mode, bool)):
        raise ValueError(f"mode: expected \"auto\", True or False, got {mode!r}")
    det = detect_extended(tilts, **{k: v for k, v in (("border", border), ("threshold", threshold)) if v is not None})
    if mode == "auto":
        extended, how = det.extended, ("detected" if det.extended else "not detected")
    else:
        extended, how = bool(mode), ("forced" if mode else "off")
    out = {"extended": bool(extended), "how": how, "border_ratios": det.ratios}
    if extended and volume is not None:
        out["slab_z"] = list(slab_extent(volume, pixel_size, **{k: v for k, v in (("level", level), ("margin", margin))
                                                                  if v is not None}))
    return out


def extended_inputs(ext: dict | None, tilts_shape, angles, pixel_size: float, volume_shape):
    """The trace support, the evidence step's pixel mask and slab of an extended object (`ext`: the dict
    of :func:`extended_step`); ``(None, None, None)`` when it is not one."""
    from .extended import ray_mask, slab_support
    if not ext or not ext.get("extended"):
        return None, None, None
    slab = tuple(float(v) for v in ext["slab_z"])
    return (slab_support(volume_shape, pixel_size, slab),
            ray_mask(angles, tuple(tilts_shape)[1:], pixel_size, slab, volume_shape), slab)


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


def evidence_step(positions, labels, species: Sequence[str], tilts, angles, pixel_size: float, *,
                  intensity=None, volume=None, enabled: bool = True, threads=None, log=None,
                  **options) -> tuple[dict, dict]:
    """The evidence step: :func:`aetcore.steps.evidence.decide_atoms` of the atoms the classification
    kept (`positions` are the traced ones, `labels` the classification's, -1 for a non-atom).
    `intensity` (the classification's, per traced atom) and `volume` (the reconstruction) give the
    integrated intensity of every atom, sampled from the volume as the classification does for the
    atoms the evidence added.

    Returns
    -------
    arrays : dict
        ``positions`` (m, 3) Å, ``symbols`` (m,), ``source`` (m,) index into the traced atoms (-1: added
        by the evidence), ``presence`` and ``species_evidence`` (m,) nats (NaN when not `enabled`), and
        with `intensity` and `volume` given, ``intensity`` (m,).
    attrs : dict
        ``enabled``; when enabled also ``history``, ``dropped``, ``added``, the noise model
        (``noise_alpha``, ``noise_beta``), ``heights`` and ``b_factors``.
    """
    source = np.flatnonzero(np.asarray(labels) >= 0)
    kept, symbols = _kept(positions, labels, species)
    if not enabled:
        nan = np.full(source.shape[0], np.nan)
        return ({"positions": kept, "symbols": symbols.astype("U2"), "source": source, "presence": nan,
                 "species_evidence": nan}, {"enabled": False})
    d = decide_atoms(kept, symbols, tilts, angles, pixel_size, threads=threads, log=log, **options)
    src = np.where(d.source >= 0, source[np.maximum(d.source, 0)], -1).astype(np.int64)
    arrays = {"positions": d.positions, "symbols": d.symbols.astype("U2"), "source": src,
              "presence": d.evidence.presence, "species_evidence": d.evidence.species}
    if intensity is not None and volume is not None:
        from .classify import _offsets_sphere, _sample
        vol = np.asarray(volume, np.float32)
        added = src < 0
        value = np.asarray(intensity, np.float64)[np.maximum(src, 0)]
        if added.any():   # the classification's integrated intensity (1 Å sphere) at the added atoms
            centres = d.positions[added][:, ::-1] / pixel_size + np.array(vol.shape) // 2
            value[added] = _sample(vol, centres, _offsets_sphere(1.0, pixel_size)).sum(1)
        arrays["intensity"] = value
    attrs = {"enabled": True, "history": d.history, "dropped": int(kept.shape[0] - np.sum(d.source >= 0)),
             "added": int(d.added.sum()), "noise_alpha": float(d.evidence.noise.alpha),
             "noise_beta": float(d.evidence.noise.beta),
             "heights": dict(zip(d.model.symbols, d.model.heights.tolist())),
             "b_factors": dict(zip(d.model.symbols, d.model.b_factors.tolist())), "blur": float(d.model.blur)}
    return arrays, attrs


def refine_step(decided: dict, decided_attrs: dict, tilts, angles, pixel_size: float, *, threads=None,
                pixel_mask=None, **options):
    """The refine step: :func:`aetcore.steps.refine.refine` of the atoms of the evidence step
    (`decided`, `decided_attrs`: the products of :func:`evidence_step`), then, when that step was
    enabled, the evidence of the refined atoms (:func:`aetcore.steps.evidence.atom_evidence`, with the
    evidence step's noise model). The refinement starts from the evidence step's atom model (heights,
    B-factors, blur) unless `options` give a ``model``.

    With a `pixel_mask` (an extended object: :func:`aetcore.steps.extended.ray_mask`) the pixels outside
    it take the starting model's projections (:func:`aetcore.steps.evidence.impute_series`), so that
    they do not pull the atoms, and the evidence counts only the pixels of the mask.

    Returns
    -------
    RefinementResult, dict
        The refinement and `decided` with the refined ``positions`` and the new evidence.
    """
    from ..model.noise import VarianceModel
    symbols, options = _refine_start(decided, decided_attrs, options)
    series = tilts
    if pixel_mask is not None:
        from .evidence import impute_series
        from .refine import atom_inputs
        pos, lab, t, a, ps, start = atom_inputs(decided["positions"], symbols, tilts, angles, pixel_size,
                                                options.get("model"))
        series = impute_series(t, np.asarray(pixel_mask, bool), pos, lab, start, a, ps, threads)
    ref = refine_model(decided["positions"], symbols, series, angles, pixel_size, threads=threads, **options)
    out = dict(decided, positions=ref.positions)
    if decided_attrs.get("enabled"):
        noise = VarianceModel(float(decided_attrs["noise_alpha"]), float(decided_attrs["noise_beta"]))
        e = atom_evidence(ref.positions, symbols, tilts, ref.angles, pixel_size, model=ref.model, noise=noise,
                          pixel_mask=pixel_mask, threads=threads)
        out.update(presence=e.presence, species_evidence=e.species)
    return ref, out


def _refine_start(decided: dict, decided_attrs: dict, options: dict):
    """The symbols of the atoms of the evidence step, and the refinement `options` with the evidence
    step's atom model (heights, B-factors, blur) as ``model`` when that step ran and `options` give none."""
    from ..model.projection import atom_model
    symbols = np.asarray(decided["symbols"]).astype(str)
    options = dict(options)
    if decided_attrs.get("enabled") and options.get("model") is None:
        options["model"] = atom_model(list(decided_attrs["heights"]), heights=decided_attrs["heights"],
                                      b_factors=decided_attrs["b_factors"], blur=float(decided_attrs["blur"]))
    return symbols, options


def holdout_step(decided: dict, decided_attrs: dict, tilts, angles, pixel_size: float, *, holdout_folds: int = 3,
                 seed=None, threads=None, **options):
    """The validation of the refine step on images it did not fit: :func:`aetcore.quality.holdout.holdout_r1`
    with `holdout_folds` folds, from the same start as :func:`refine_step` (the atoms and atom model of
    the evidence step, `options` as given to :func:`refine_step`).

    Parameters
    ----------
    decided, decided_attrs : dict
        The products of :func:`evidence_step`.
    tilts, angles, pixel_size
        As for :func:`refine_step` (angles in degrees, pixel size in Å).
    holdout_folds : int
        The number of folds (default 3), at least 2; 0 turns the validation off. A series of fewer
        images gets one fold per image (none with a single image). Each fold refines
        on ``(holdout_folds - 1) / holdout_folds`` of the images, so the validation costs about
        ``holdout_folds - 1`` refinements: on the shared multigrain series (bench/README.md, one
        thread, ``aet run`` about 530 s, refinement 12.5 s) 3 folds took 24 s (+5 %) and 5 folds 66 s
        (+12 %).
    seed : None, int or numpy.random.Generator
        The split of the images into folds.
    threads : int, optional
    **options
        The refine step's options (:func:`aetcore.steps.refine.refine`).

    Returns
    -------
    HoldoutResult or None
        None when `holdout_folds` is 0.

    Notes
    -----
    The start (the evidence step's atoms, and the reconstruction they were traced in) was derived
    from every image, so the held-out images are not wholly unseen: ``r1_holdout`` is a lower bound on
    the error for new images. It shows overfitting by the refinement itself.
    """
    from ..quality.holdout import holdout_r1
    folds = min(_holdout_folds(holdout_folds), len(tilts))
    if folds < 2:
        return None
    symbols, options = _refine_start(decided, decided_attrs, options)
    options.pop("progress", None)
    return holdout_r1(decided["positions"], symbols, tilts, angles, pixel_size, folds=folds, seed=seed,
                      threads=threads, **options)


def _holdout_folds(value) -> int:
    """`holdout_folds` checked: 0 (off) or an integer >= 2."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value == 1 or value < 0:
        raise ValueError(f"holdout_folds: expected 0 (off) or an integer >= 2, got {value!r}")
    return int(value)


def model_atoms(species: Sequence[str], pixel_size: float, traced_positions, status, labels, intensity,
                decided: dict | None = None, *, positions=None, precision=None, precision_reliable=None,
                info: dict | None = None) -> Atoms:
    """The atomic model (``atoms.xyz``) from the products of the trace, classify and evidence steps, and
    of the refine step when it ran.

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
    decided : dict, optional
        The evidence step's arrays (:func:`evidence_step`, or :func:`refine_step`'s with the refined
        evidence): the m atoms of the model; None: the atoms the classification kept.
    positions, precision : (m, 3) arrays, optional
        The refined positions and their precision (Å) of the m atoms; None: the positions of the
        evidence step (or the traced ones) and NaN precision.
    precision_reliable : (m,) bool array, optional
        Per atom, whether its precision is reliable
        (:attr:`aetcore.steps.refine.RefinementResult.precision_reliable`); None: False for every atom.
    info : dict, optional
        More ``atoms.info`` entries.

    Returns
    -------
    ase.Atoms
        The atoms with per-atom arrays ``intensity`` (NaN for an added atom), ``fit_status`` (-1 for
        an added atom), ``precision``, ``precision_reliable``, ``evidence`` and ``species_evidence`` (nats, NaN without the
        evidence step); ``atoms.info`` has ``pixel_size`` and ``non_atoms`` (atoms the classification
        dropped).
    """
    keep = np.asarray(labels) >= 0
    if decided is None:
        source = np.flatnonzero(keep)
        kept, symbols = _kept(traced_positions, labels, species)
        presence = species_evidence = np.full(source.shape[0], np.nan)
    else:
        source = np.asarray(decided["source"], np.int64)
        kept, symbols = np.asarray(decided["positions"]), np.asarray(decided["symbols"]).astype(str)
        presence, species_evidence = decided["presence"], decided["species_evidence"]
    if positions is None:
        positions, precision = kept, np.full(kept.shape, np.nan)
    traced = source >= 0
    src = np.maximum(source, 0)
    atoms = Atoms(symbols=list(symbols), positions=positions)
    if decided is not None and "intensity" in decided:
        intensity = np.asarray(decided["intensity"], np.float64)
    else:
        intensity = np.where(traced, np.asarray(intensity)[src], np.nan)
    atoms.set_array("intensity", intensity.astype(np.float64))
    atoms.set_array("fit_status", np.where(traced, np.asarray(status)[src], -1).astype(np.int64))
    atoms.set_array("precision", np.asarray(precision, np.float64))
    reliable = np.zeros(len(atoms), bool) if precision_reliable is None else np.asarray(precision_reliable, bool)
    if reliable.shape != (len(atoms),):
        raise ValueError(f"precision_reliable: expected one entry per atom ({len(atoms)}), got shape {reliable.shape}")
    atoms.set_array("precision_reliable", reliable)
    atoms.set_array("evidence", np.asarray(presence, np.float64))
    atoms.set_array("species_evidence", np.asarray(species_evidence, np.float64))
    atoms.info.update({"pixel_size": float(pixel_size), "non_atoms": int((~keep).sum()), **(info or {})})
    return atoms
