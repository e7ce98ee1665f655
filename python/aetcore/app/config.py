"""The TOML configuration of ``aet run``: every parameter of every step with its default.

``aet config --defaults`` prints :func:`default_config_toml`; a user file holds only what it
changes and is merged over the defaults by :func:`load_config`. Unknown sections or keys and values
of the wrong type are refused with a message naming them. The string ``"auto"`` / ``"none"`` stand
for Python's None where a parameter takes it.
"""
from __future__ import annotations

import copy
import inspect
import json
import math
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python < 3.11
    import tomli as tomllib  # type: ignore

from .. import _core
from ..steps.chain import holdout_step
from ..steps.chain import EXTENDED_EVIDENCE, EXTENDED_REFINE_POSITIONS
from ..steps.evidence import decide_atoms
from ..steps.extended import HALF_SET_ITERATIONS, detect_extended, padded_resire, slab_extent
from ..steps.trace import DEFAULT_FIT

__all__ = ["DEFAULTS", "default_config", "default_config_toml", "config_toml", "toml_value", "load_config",
           "merge_config", "read_toml", "step_options"]

# The defaults of the steps that run in the C++ core live once, in its options structs
# (aet::GenfireOptions, aet::TraceOptions, aet::RefineOptions); the step functions' signatures read
# them from the same place.
_G, _T, _R = _core.GenfireOptions(), _core.TraceOptions(), _core.RefineOptions()
# the evidence step's defaults: the signature of decide_atoms
_E = {k: p.default for k, p in inspect.signature(decide_atoms).parameters.items()}
# the k-fold validation of the refine step: the signature of holdout_step
_HOLDOUT_FOLDS = inspect.signature(holdout_step).parameters["holdout_folds"].default
# the extended-object defaults: the signatures of detect_extended and slab_extent
_X = {k: p.default for f in (detect_extended, slab_extent, padded_resire)
      for k, p in inspect.signature(f).parameters.items()}

# section -> list of (key, default, comment)
_SPEC = {
    "preprocess": ("Frame registration and clean-up (aetcore.steps.preprocess.preprocess); runs on every series "
                   "unless `always` is false, then only when --frames > 1.", [
        ("always", True, "also pre-process a single-frame tilt series (detector offset and background, "
                         "normalisation): every detector has an offset, and leaving it in cost 12 points of "
                         "recall and 32 of precision on a raw FePt series"),
        ("register", True, "register the frames of each angle before averaging (else a plain mean)"),
        ("shear", True, "correct raster shear between frames"),
        ("reference", "first", "frame registration reference: \"first\" or \"mean\""),
        ("upsample", 20, "sub-pixel upsampling of the registration cross-correlation"),
        ("denoise", "none", "\"none\", \"nlm\", \"tv\", \"wavelet\" or \"bm3d\""),
        ("denoise_strength", 1.0, "denoising strength (multiple of the estimated noise)"),
        ("background", "plane", "background subtraction: \"none\", \"constant\" or \"plane\""),
        ("normalize", True, "scale every image to the same total intensity"),
        ("extended", "auto", "extended object (a film, anything that leaves the field of view): \"auto\" (detected "
                             "on the raw images: their borders are not vacuum), true or false. Extended: no "
                             "background subtraction or normalisation (there is no vacuum, and the projected mass "
                             "grows with the tilt), no centre-of-mass, common-line or tilt-axis alignment, the slab "
                             "found from the volume is the tracing support (aetcore.steps.extended)"),
        ("extended_border", _X["border"], "detection: width of the image border strips, fraction of the side"),
        ("extended_threshold", _X["threshold"], "detection: extended when a border strip's mass above the "
                                                "vacuum is more than this fraction of the centre's"),
    ]),
    "align": ("Tilt-series alignment (aetcore.steps.align.align).", [
        ("enabled", True, "align the tilt series before reconstruction"),
        ("rotation", True, "find the in-plane tilt-axis rotation"),
        ("rotation_search", 5.0, "half-range of the tilt-axis rotation search, degrees"),
        ("com", True, "centre-of-mass alignment along x"),
        ("common_line", True, "common-line alignment along y"),
        ("matching", False, "projection matching (off: on simulated series it moved already-aligned "
                            "images, bench/README.md)"),
        ("reconstruct", "sirt", "projection-matching reconstructor"),
        ("iterations", 5, "projection-matching iterations"),
        ("recon_iterations", 30, "reconstruction iterations inside each projection-matching step"),
        ("upsample", 20, "sub-pixel upsampling of the registrations"),
        ("refine_angles", False, "refine the tilt angles during projection matching (experimental)"),
        ("bin", "auto", "projection-matching binning factor, or \"auto\" (larger side <= 96 px)"),
    ]),
    "reconstruct": ("GENFIRE reconstruction (aetcore.steps.reconstruct.genfire).", [
        ("oversampling", _G.oversampling, "Fourier grid side / volume side (the grid is rounded up to an even 7-smooth size)"),
        ("iterations", _G.iterations, "maximum number of iterations"),
        ("support", "auto", "\"auto\" (thresholded low-resolution reconstruction) or \"box\""),
        ("support_margin", _G.support_margin, "automatic support: dilation beyond the object, Å"),
        ("positivity", _G.positivity, "clip negative voxels every iteration"),
        ("interpolation_radius", _G.interpolation_radius, "Fourier gridding radius, grid steps"),
        ("plane_upsampling", _G.plane_upsampling, "extra zero-padding of the images before their FFT"),
        ("extension", _G.extension, "fraction of the iterations over which the enforced resolution grows"),
        ("momentum", _G.momentum, "momentum of the accelerated alternating projections, in [0, 1)"),
        ("rfree_fraction", _G.rfree_fraction, "fraction of measured points held out for R-free (0 disables)"),
        ("patience", _G.patience, "stop after this many iterations without improvement"),
        ("tol", _G.tol, "relative improvement that counts for `patience`"),
        ("seed", _G.seed, "random seed (R-free points, classification)"),
        ("half_set_fsc", True, "also reconstruct the even and odd images for a half-set FSC resolution estimate"),
        ("half_set_iterations", _G.half_set_iterations, "maximum iterations of each half-set reconstruction (each "
                                                        "from scratch, independent; fewer keep the FSC cheap; at "
                                                        "most `iterations`)"),
        ("half_set_oversampling", _G.half_set_oversampling, "oversampling of each half-set reconstruction of an "
                                                            "object inside the field of view (a coarser grid keeps "
                                                            "the FSC cheap; at most `oversampling`; extended "
                                                            "objects keep `oversampling`)"),
        ("extended_method", "resire", "extended object: \"resire\" (real space, box padded along x and cropped "
                                      "back: the mass outside the field of view has a place to go; on the Ta film "
                                      "86 % recall, 30 pm vs GENFIRE's 76 %, 45 pm) or \"genfire\" (in the box)"),
        ("extended_pad", _X["pad"], "extended object, resire: padding on each side along x, fraction of the width"),
        ("extended_iterations", _X["iterations"], "extended object, resire: iterations of the full reconstruction"),
        ("extended_accelerate", _X["accelerate"], "extended object, resire: accelerated descent (FISTA with "
                                                  "restart; false: plain RESIRE, which needs about 4x the "
                                                  "iterations for the same volume)"),
        ("extended_half_set_iterations", HALF_SET_ITERATIONS, "extended object, resire: iterations of each "
                                                              "half-set reconstruction (each from scratch, "
                                                              "independent; at most `extended_iterations`)"),
        ("slab_level", _X["level"], "slab: the film ends where the z-profile of the occupied voxels falls below "
                                    "this fraction of its range"),
        ("slab_margin", _X["margin"], "slab: margin added beyond each surface, Å"),
    ]),
    "trace": ("Atom tracing (aetcore.steps.trace.trace_atoms).", [
        ("threshold", "auto", "minimum peak value (volume units) or \"auto\""),
        ("min_distance", _T.min_distance, "minimum distance between atoms, Å"),
        ("fit", DEFAULT_FIT, "sub-voxel peak fit: \"polynomial\" (35-term quartic) or \"gaussian\" (slower, "
                              "lower RMSD)"),
        ("max_drift", _T.max_drift, "largest move of a fit from its voxel maximum, voxels"),
        ("fit_radius", _T.fit_radius, "fit window half-width, voxels"),
        ("max_iterations", _T.max_iterations, "Newton steps per fit (status 3 when exhausted)"),
        ("reject_background", False, "reject maxima that look like background"),
    ]),
    "classify": ("Species classification (aetcore.steps.classify.classify).", [
        ("method", "kmeans", "clustering method"),
        ("local", False, "classify against local (neighbourhood) averages"),
        ("local_radius", 10.0, "neighbourhood radius for `local`, Å"),
        ("max_rounds", 50, "maximum reassignment rounds"),
        ("patience", 5, "stop after this many rounds without fewer changes"),
        ("non_atom", True, "allow a non-atom class for spurious peaks"),
    ]),
    "evidence": ("Atoms decided by the tilt series (aetcore.steps.evidence.decide_atoms): drop, relabel and "
                 "add atoms by log-likelihood ratios (nats) of the projections.", [
        ("enabled", True, "decide atoms and species by the evidence of the tilt series"),
        ("extended", EXTENDED_EVIDENCE, "also on an extended object (preprocess.extended), counting only the "
                                        "pixels whose rays cross its slab inside the box (off: on the Ta film "
                                        "it lowered recall, precision and RMSD, bench/README.md)"),
        ("threshold", _E["threshold"], "drop an atom whose evidence (LL with - LL without, nats) is below this"),
        ("add_threshold", _E["add_threshold"], "add an atom where the residual's evidence exceeds this, nats"),
        ("min_distance", _E["min_distance"], "no atom is added closer than this to another, Å"),
        ("radius", _E["radius"], "neighbourhood of the one-at-a-time drop and add, Å"),
        ("fill_rounds", _E["fill_rounds"], "largest number of refine-add rounds before the first drop (0: none)"),
        ("fill_fraction", _E["fill_fraction"], "a filling round adds only when it finds at least this fraction "
                                               "of the atoms missing"),
        ("rounds", _E["rounds"], "largest number of refine-drop-add rounds"),
        ("iterations", _E["iterations"], "refinement iterations per round"),
    ]),
    "refine": ("Refinement against the tilt series (aetcore.steps.refine.refine).", [
        ("enabled", True, "refine positions, heights and B-factors"),
        ("extended_positions", EXTENDED_REFINE_POSITIONS, "on an extended object, refine the positions too "
                                                          "(off: on the Ta film refinement moved the atoms "
                                                          "away from the published model, bench/README.md)"),
        ("max_shift", _R.max_shift, "largest move of an atom per coordinate, Å"),
        ("refine_positions", _R.refine_positions, "refine positions"),
        ("refine_heights", _R.refine_heights, "refine per-species heights"),
        ("refine_b", _R.refine_b, "refine per-species B-factors"),
        ("iterations", _R.iterations, "refinement iterations"),
        ("precondition", _R.precondition, "scale each coordinate by its curvature at the start (same minimiser, "
                                          "fewer iterations to it)"),
        ("cutoff", _R.cutoff, "Gaussian cut-off, in sigmas"),
        ("precision", _R.precision, "per-atom precision estimate: \"sandwich\" (per-pixel noise) or \"curvature\""),
        ("refine_angles", _R.refine_angles, "also refine every image's tilt angle against the atomic model"),
        ("angle_range", _R.angle_range, "largest change of a tilt angle per round, degrees"),
        ("angle_rounds", _R.angle_rounds, "rounds of atoms / angles alternation"),
        ("holdout_folds", _HOLDOUT_FOLDS, "k-fold validation over images: refine on the other images, report R1 "
                                          "on the held-out ones (r1_holdout); 0 = off, else >= 2 folds, costing "
                                          "about holdout_folds - 1 refinements (3 folds: +5 % on the shared multigrain run)"),
    ]),
}

DEFAULTS = {sec: {k: v for k, v, _ in items} for sec, (_, items) in _SPEC.items()}

_CHOICES = {
    ("preprocess", "reference"): ("first", "mean"),
    ("preprocess", "denoise"): ("none", "nlm", "tv", "wavelet", "bm3d"),
    ("preprocess", "background"): ("none", "constant", "plane"),
    ("reconstruct", "support"): ("auto", "box"),
    ("reconstruct", "extended_method"): ("resire", "genfire"),
    ("refine", "precision"): ("sandwich", "curvature"),
    ("trace", "fit"): ("polynomial", "gaussian", "none"),
}
_NONE_STRINGS = {("preprocess", "denoise"): "none", ("preprocess", "background"): "none",
                 ("reconstruct", "support"): "auto", ("trace", "threshold"): "auto", ("align", "bin"): "auto"}


def default_config() -> dict:
    """A fresh copy of the defaults, ``{section: {key: value}}``."""
    return copy.deepcopy(DEFAULTS)


def toml_value(v) -> str:
    """One configuration value (bool, int, float, str) as TOML text; TypeError for anything else."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return json.dumps(v)  # a JSON string is a valid TOML basic string
    if isinstance(v, float):
        return repr(v) if math.isfinite(v) else ("nan" if math.isnan(v) else ("inf" if v > 0 else "-inf"))
    if isinstance(v, int):
        return str(v)
    raise TypeError(f"cannot write {type(v).__name__} {v!r} to a configuration file")


def config_toml(config: dict, comment: str) -> str:
    """A complete configuration ``{section: {key: value}}`` as TOML text, headed by `comment`."""
    lines = [f"# {comment}", ""]
    for sec, values in config.items():
        lines.append(f"[{sec}]")
        lines += [f"{k} = {toml_value(v)}" for k, v in values.items()]
        lines.append("")
    return "\n".join(lines)


def default_config_toml() -> str:
    """The defaults as commented TOML (the text ``aet config --defaults`` prints)."""
    lines = ["# aetcore configuration for `aet run --config FILE.toml`.",
             "# Every parameter with its default; a file needs only the ones it changes.", ""]
    for sec, (doc, items) in _SPEC.items():
        lines.append(f"# {doc}")
        lines.append(f"[{sec}]")
        for k, v, comment in items:
            lines.append(f"{k} = {toml_value(v)}  # {comment}")
        lines.append("")
    return "\n".join(lines)


def merge_config(user: dict, source: str = "config") -> dict:
    """Merge `user` ``{section: {key: value}}`` over the defaults, refusing unknown sections or
    keys and values of the wrong type (the message names `source` and the key)."""
    cfg = default_config()
    if not isinstance(user, dict):
        raise ValueError(f"{source}: expected tables of settings, got {type(user).__name__}")
    unknown = [s for s in user if s not in cfg]
    if unknown:
        raise ValueError(f"{source}: unknown section(s) {', '.join(map(repr, unknown))}; "
                         f"expected {', '.join(cfg)}")
    for sec, values in user.items():
        if not isinstance(values, dict):
            raise ValueError(f"{source}: [{sec}] must be a table of settings, got {values!r}")
        bad = [k for k in values if k not in cfg[sec]]
        if bad:
            raise ValueError(f"{source}: unknown key(s) {', '.join(f'{sec}.{k}' for k in bad)}; "
                             f"[{sec}] takes {', '.join(cfg[sec])}")
        for k, v in values.items():
            d = cfg[sec][k]
            name = f"{source}: {sec}.{k}"
            if (sec, k) == ("trace", "threshold"):
                if not (v == "auto" or (isinstance(v, (int, float)) and not isinstance(v, bool))):
                    raise ValueError(f"{name}: expected a number or \"auto\", got {v!r}")
            elif (sec, k) == ("refine", "holdout_folds"):
                if isinstance(v, bool) or not isinstance(v, int) or v == 1 or v < 0:
                    raise ValueError(f"{name}: expected 0 (off) or an integer >= 2 (folds), got {v!r}")
            elif (sec, k) == ("preprocess", "extended"):
                if not (v == "auto" or isinstance(v, bool)):
                    raise ValueError(f"{name}: expected true, false or \"auto\", got {v!r}")
            elif (sec, k) == ("align", "bin"):
                if not (v == "auto" or (isinstance(v, int) and not isinstance(v, bool) and v >= 1)):
                    raise ValueError(f"{name}: expected an integer >= 1 or \"auto\", got {v!r}")
            elif isinstance(d, bool):
                if not isinstance(v, bool):
                    raise ValueError(f"{name}: expected true or false, got {v!r}")
            elif isinstance(d, float):
                if isinstance(v, bool) or not isinstance(v, (int, float)):
                    raise ValueError(f"{name}: expected a number, got {v!r}")
                v = float(v)
            elif isinstance(d, int):
                if isinstance(v, bool) or not isinstance(v, int):
                    raise ValueError(f"{name}: expected an integer, got {v!r}")
            elif isinstance(d, str):
                if not isinstance(v, str):
                    raise ValueError(f"{name}: expected a string, got {v!r}")
                choices = _CHOICES.get((sec, k))
                if choices and v not in choices:
                    raise ValueError(f"{name}: expected one of {', '.join(choices)}, got {v!r}")
            cfg[sec][k] = v
    return cfg


def read_toml(path) -> dict:
    """The raw tables of a TOML file (unknown keys not yet checked: see :func:`merge_config`)."""
    p = Path(path)
    try:
        with open(p, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise ValueError(f"{p}: no such configuration file") from None
    except tomllib.TOMLDecodeError as e:
        raise ValueError(f"{p}: not valid TOML: {e}") from e


def load_config(path=None) -> dict:
    """The defaults, with the TOML file `path` (if given) merged over them."""
    if path is None:
        return default_config()
    return merge_config(read_toml(path), str(path))


def step_options(cfg: dict, section: str, drop=()) -> dict:
    """The keyword options of one step: ``"none"``/``"auto"`` placeholders turned into None and
    the keys in `drop` (switches that are not keyword arguments) removed."""
    out = {}
    for k, v in cfg[section].items():
        if k in drop:
            continue
        if _NONE_STRINGS.get((section, k)) == v:
            v = None
        out[k] = v
    return out
