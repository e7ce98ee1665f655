"""``aet run`` and its per-step commands as Python: a tilt-series file to an atomic model, a results
folder and a report.

The chain is the list of steps :data:`aetcore.steps.chain.STEPS` (whose trace, classify, evidence
and refine steps are those of :func:`aetcore.atoms_from_tilts`); each reads the products of the step before it
and writes its own into ``DIR/steps/<step>.h5`` (written whole or not at all):

``preprocess`` (read the file; register and average frames; background; normalise) ->
``align`` -> ``reconstruct`` (GENFIRE, plus a half-set FSC for the resolution) -> ``trace`` ->
``classify`` -> ``evidence`` (atoms dropped, relabelled and added by the log-likelihood of the
series) -> ``refine``; then the folder's outputs are assembled: ``atoms.xyz``,
``reconstruction.mrc``, ``results.h5`` (everything, with provenance), ``summary.json`` and
``report.html``.

Every step file records a key: a hash of its own configuration section and of the key of the step
before it (the first step hashes the input files, the pixel size, species and frame count). With
``resume=True`` a step whose file exists with the expected key is loaded instead of recomputed, so
a run that was interrupted (Ctrl-C, a killed job) resumes after the last finished step, and a run
whose settings changed recomputes from the first step they affect. Redoing a step removes the files
of the steps after it.

``DIR/run.json`` holds the inputs and the configuration of the folder, so that the per-step commands
(``aet align --out DIR`` ...) can redo one step with new settings.
"""
from __future__ import annotations

import hashlib
import json
import logging
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Sequence

import numpy as np

from ..io.results import _step_meta, _step_path, load_step, save_step, write_step_group
from ..io.tables import write_group
from ..steps.chain import (STEPS, classify_step, evidence_step, extended_inputs, extended_step, holdout_step,
                           model_atoms, refine_step, trace_step)
from .._util.validate import species_symbols

__all__ = ["run", "run_step", "STEPS", "export"]

log = logging.getLogger("aetcore.cli")

_STEP_ORDER = {s: i for i, s in enumerate(STEPS)}


def _hash(*parts) -> str:
    from ..io.writers import _jsonable
    h = hashlib.sha256()
    for p in parts:
        h.update(json.dumps(p, sort_keys=True, default=_jsonable).encode())
    return h.hexdigest()[:16]


def _file_sha256(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


# ------------------------------------------------------------------------------------- run state
class _Run:
    """A results folder: its inputs, configuration and step files."""

    def __init__(self, out: Path, state: dict, cfg: dict, threads, seed, progress: bool):
        self.out = out
        self.state = state
        self.cfg = cfg
        self.threads = threads
        self.seed = seed
        self.progress = progress
        self.timings: dict = {}
        self.resumed: list = []
        self.t_start = time.perf_counter()
        self.memory_estimate = None  # RunEstimate of `aet run` (aetcore.app.estimate)

    @property
    def pixel_size(self) -> float:
        return float(self.state["pixel_size"])

    @property
    def species(self) -> tuple:
        return tuple(self.state["species"])

    def key(self, step: str) -> str:
        """The key a valid file of `step` must carry under the current inputs and configuration."""
        i = _STEP_ORDER[step]
        upstream = self.state["input_key"] if i == 0 else self.key(STEPS[i - 1])
        return _hash(step, upstream, self.cfg[step], self.seed)

    def valid(self, step: str) -> bool:
        p = _step_path(self.out, step)
        if not p.exists():
            return False
        try:
            return _step_meta(p).get("key") == self.key(step)
        except ValueError:
            return False

    def load(self, step: str) -> tuple[dict, dict]:
        p = _step_path(self.out, step)
        if not self.valid(step):
            raise ValueError(f"{self.out}: the {step} step has not been run with the current inputs and "
                             f"configuration (no valid {p}); run `aet {step} --out {self.out}` or `aet run`")
        return load_step(p)

    def save(self, step: str, arrays: dict, attrs: dict, seconds: float) -> None:
        attrs = dict(attrs, key=self.key(step), seconds=seconds, step=step)
        save_step(_step_path(self.out, step), arrays, attrs)
        self.timings[step] = seconds
        # the steps after this one were computed from other data: remove them
        for later in STEPS[_STEP_ORDER[step] + 1:]:
            p = _step_path(self.out, later)
            if p.exists():
                p.unlink()

    def write_state(self) -> None:
        from ..io.writers import write_json
        write_json(self.out / "run.json", dict(self.state, config=self.cfg))


def _new_state(tilts_path, angles_path, pixel_size, species, frames, dataset,
               angle_convention="aetcore") -> dict:
    from ..io.readers import read_angles
    from ..model.geometry import ANGLE_CONVENTIONS
    tp = Path(tilts_path)
    ap = tp if angles_path is None else Path(angles_path)  # None: the tilt file's own metadata
    for p, name in ((tp, "TILTS"), (ap, "--angles")):
        if not p.is_file():
            raise ValueError(f"{name}: {p}: no such file")
    read_angles(ap, dataset=dataset if ap == tp else None)  # refuse bad angles before any work
    if not (np.isfinite(pixel_size) and pixel_size > 0):
        raise ValueError(f"pixel_size: expected a positive number of Å, got {pixel_size}")
    species = species_symbols(species, text=True)
    if int(frames) != frames or frames < 1:
        raise ValueError(f"frames: expected an integer >= 1, got {frames}")
    if angle_convention not in ANGLE_CONVENTIONS:
        raise ValueError(f"angle_convention: expected one of {', '.join(ANGLE_CONVENTIONS)}, "
                         f"got {angle_convention!r}")
    hashes = {"tilts": _file_sha256(tp), "angles": _file_sha256(ap)}
    state = {"tilts": str(tp.resolve()), "angles": str(ap.resolve()), "dataset": dataset,
             "pixel_size": float(pixel_size), "species": list(species), "frames": int(frames),
             "sha256": hashes}
    key = [hashes, state["pixel_size"], state["species"], state["frames"], dataset]
    if angle_convention != "aetcore":  # folders made before the option keep their key
        state["angle_convention"] = angle_convention
        key.append(angle_convention)
    state["input_key"] = _hash(*key)
    return state


def _open_run(out, *, config=None, threads=None, seed=None, progress=False) -> _Run:
    """A folder made by an earlier ``aet run`` / ``aet preprocess``; `config` (a TOML path or a dict
    of overrides), if given, replaces the stored configuration."""
    from .config import merge_config, read_toml
    out = Path(out)
    p = out / "run.json"
    if not p.is_file():
        raise ValueError(f"--out: {out} is not an aetcore results folder (no run.json); start it with "
                         "`aet run` or `aet preprocess`")
    try:
        stored = json.loads(p.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{p}: corrupt ({e})") from e
    cfg_stored = stored.pop("config")
    if config is None:
        cfg = merge_config(cfg_stored, str(p))
    else:
        # the new settings are merged over the folder's: a file needs only what it changes
        user, source = (config, "config") if isinstance(config, dict) else (read_toml(config), str(config))
        if not isinstance(user, dict):
            raise TypeError(f"config: expected a TOML path or a dict of tables, got {type(user).__name__}")
        merge_config(user, source)  # unknown sections and keys named against the file
        merged = {s: dict(cfg_stored.get(s, {}), **user.get(s, {})) for s in set(cfg_stored) | set(user)}
        cfg = merge_config(merged, source)
    seed = cfg["reconstruct"]["seed"] if seed is None else seed
    return _Run(out, stored, cfg, threads, seed, progress)


def _out_folder(out) -> Path:
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out: {out} exists and is not a folder")
    return out


def _config(config) -> dict:
    from .config import load_config, merge_config
    if isinstance(config, dict):
        return merge_config(config, "config")
    return load_config(config)


# ----------------------------------------------------------------------------------------- steps
def _do_preprocess(r: _Run) -> None:
    from ..io.readers import check_angles, read_angles, read_tilts
    from .config import step_options
    t0 = time.perf_counter()
    st = r.state
    pages = read_tilts(st["tilts"], dataset=st.get("dataset"))
    angles = read_angles(st["angles"], dataset=st.get("dataset") if st["angles"] == st["tilts"] else None)
    if st.get("angle_convention", "aetcore") != "aetcore":
        from ..model.geometry import angles_from_convention
        angles = angles_from_convention(angles, st["angle_convention"])
    frames = st["frames"]
    if pages.shape[0] % frames:
        raise ValueError(f"{st['tilts']}: {pages.shape[0]} images is not a multiple of --frames {frames}")
    check_angles(angles, pages.shape[0] // frames, st["angles"])
    arrays, attrs = {}, {"image_shape": list(pages.shape[1:]), "n_pages": int(pages.shape[0])}
    c = r.cfg["preprocess"]
    attrs["extended"] = ext = extended_step(pages, mode=c["extended"], border=c["extended_border"],
                                            threshold=c["extended_threshold"])
    log.info("preprocess: extended object %s (border/centre mass ratios %s)", ext["how"],
             ", ".join(f"{k} {v:.2f}" for k, v in ext["border_ratios"].items()))
    if frames > 1 or r.cfg["preprocess"]["always"]:
        from ..steps.preprocess import preprocess, split_pages
        opts = step_options(r.cfg, "preprocess", drop=("always",) + _EXTENDED_KEYS)
        if ext["extended"]:   # no vacuum to take a background from; the projected mass grows with the tilt
            opts.update(background=None, normalize=False)
        if frames > 1:
            res = preprocess(split_pages(pages, frames), frames=True, threads=r.threads, **opts)
        else:
            for k in ("register", "shear", "reference", "upsample"):
                opts.pop(k)
            res = preprocess(pages, frames=False, register=False, threads=r.threads, **opts)
        tilts = res.tilts
        if res.registration is not None:
            arrays["frame_shifts"] = res.registration.shifts
            arrays["frame_residual"] = res.registration.residual
        arrays["background"] = res.background
        arrays["scales"] = res.scales
        attrs["applied"] = [str(s) for s in res.steps]
    else:
        tilts = pages
        attrs["applied"] = []
    arrays.update(tilts=tilts, angles=angles)
    r.save("preprocess", arrays, attrs, time.perf_counter() - t0)
    log.info("preprocess: %d images of %dx%d px (%.1f s)", tilts.shape[0], tilts.shape[1], tilts.shape[2],
             r.timings["preprocess"])


def _do_align(r: _Run) -> None:
    from ..model.geometry import normalize_angles
    from .config import step_options
    pre, pre_attrs = r.load("preprocess")
    t0 = time.perf_counter()
    tilts, angles = pre["tilts"], pre["angles"]
    arrays, attrs = {}, {}
    if r.cfg["align"]["enabled"]:
        from ..steps.align import align
        opts = step_options(r.cfg, "align", drop=("enabled",))
        if pre_attrs.get("extended", {}).get("extended"):
            # centre of mass, common line and the tilt-axis search assume the object inside the field of
            # view; on the Ta film they shifted the aligned images by up to 1600 px (recall 5 %)
            opts.update(com=False, common_line=False, rotation=False)
            attrs["extended_skipped"] = ["rotation", "com", "common_line"]
        al = align(tilts, angles, pixel_size=r.pixel_size, threads=r.threads, **opts)
        tilts, angles = al.tilts, al.angles if al.angles_refined else angles
        arrays.update(shifts=np.asarray(al.shifts, np.float64), residuals=al.residuals,
                      matching_history=np.asarray(al.history, np.float64))
        attrs.update(rotation_deg=float(al.rotation), angles_refined=bool(al.angles_refined),
                     enabled=True)
    else:
        arrays["shifts"] = np.zeros((tilts.shape[0], 2))
        attrs.update(rotation_deg=0.0, angles_refined=False, enabled=False)
    arrays.update(tilts=tilts, angles=np.asarray(angles, np.float64),
                  euler=normalize_angles(angles))
    r.save("align", arrays, attrs, time.perf_counter() - t0)
    log.info("align: rotation %.2f deg, RMS shift %.2f px (%.1f s)", attrs["rotation_deg"],
             float(np.sqrt(np.mean(arrays["shifts"] ** 2))), r.timings["align"])


def _do_reconstruct(r: _Run) -> None:
    from ..io.writers import write_mrc
    from ..quality.metrics import half_set_fsc, resolution_from_fsc
    from ..steps.reconstruct import genfire
    from .config import step_options
    al, _ = r.load("align")
    t0 = time.perf_counter()
    tilts, angles = al["tilts"], al["angles"]
    cfg = r.cfg["reconstruct"]
    opts = step_options(r.cfg, "reconstruct", drop=("seed", "half_set_fsc", "half_set_iterations",
                                                    "half_set_oversampling", "slab_level",
                                                    "slab_margin", "extended_method", "extended_pad",
                                                    "extended_iterations", "extended_accelerate",
                                                    "extended_half_set_iterations"))
    ext = dict(_preprocess_attrs(r).get("extended") or {"extended": False, "how": "off", "border_ratios": {}})
    resire = bool(ext["extended"] and cfg["extended_method"] == "resire")
    if resire:
        from ..steps.extended import padded_resire

        def method(t, a, iterations=cfg["extended_iterations"], **kw):
            return padded_resire(t, a, pixel_size=r.pixel_size, pad=cfg["extended_pad"], iterations=iterations,
                                 accelerate=cfg["extended_accelerate"], threads=r.threads, progress=r.progress)
    else:
        def method(t, a, **kw):
            return genfire(t, a, pixel_size=r.pixel_size, threads=r.threads, seed=r.seed, progress=r.progress,
                           **{**opts, **kw})
    rec = method(tilts, angles)
    arrays = {"volume": rec.volume, "errors": rec.errors, "rfree": rec.rfree}
    attrs = {"method": rec.method, "iterations_run": int(rec.parameters["iterations_run"]),
             "fourier_r": float(rec.errors[-1]),
             "rfree": None if rec.rfree is None else float(rec.rfree[-1]),
             "parameters": {k: v for k, v in rec.parameters.items() if np.isscalar(v) or v is None},
             "resolution": None}
    if cfg["half_set_fsc"] and tilts.shape[0] >= 4:
        # Each half from scratch (no warm start from the full volume: the FSC would then measure the
        # full reconstruction's agreement with itself), cheaper than the full run (bench/fsc_cost.py):
        # RESIRE with fewer iterations; GENFIRE on a coarser grid (objects inside the field of view)
        # with at most the full run's iterations.
        if resire:
            half_opts = {"iterations": min(cfg["extended_half_set_iterations"], cfg["extended_iterations"])}
        else:
            half_opts = {"iterations": min(cfg["half_set_iterations"], opts["iterations"])}
            if not ext["extended"]:
                half_opts["oversampling"] = min(cfg["half_set_oversampling"], opts["oversampling"])

        def half(t, a, **kw):
            return method(t, a, volume_shape=rec.volume.shape, **half_opts)
        t_fsc = time.perf_counter()
        freq, corr, res = half_set_fsc(tilts, angles, half, pixel_size=r.pixel_size, threads=r.threads)
        attrs["seconds_half_set_fsc"] = time.perf_counter() - t_fsc
        attrs["half_set"] = dict(half_opts)
        arrays.update(fsc_freq=freq, fsc_corr=corr)
        attrs["resolution"] = float(res)
        # the 0.143 crossing often lies at Nyquist for atomic-resolution data (the half maps share the
        # positivity and support constraints); the 0.5 crossing is the conservative figure
        attrs["resolution_fsc05"] = float(resolution_from_fsc(freq, corr, 0.5))
        attrs["resolution_at_nyquist"] = bool(np.all(corr >= 0.143))
    if ext["extended"]:
        from ..steps.extended import slab_extent
        ext["method"] = rec.method
        ext["slab_z"] = list(slab_extent(rec.volume, r.pixel_size, level=cfg["slab_level"], margin=cfg["slab_margin"]))
        log.info("reconstruct: extended object, slab z %.1f .. %.1f Å", *ext["slab_z"])
    attrs["extended"] = ext
    r.save("reconstruct", arrays, attrs, time.perf_counter() - t0)
    write_mrc(r.out / "reconstruction.mrc", rec.volume, r.pixel_size)
    log.info("reconstruct: %d %s iterations, R %.4f, half-set FSC resolution %s (%.1f s)",
             attrs["iterations_run"], rec.method.upper(), attrs["fourier_r"],
             "n/a" if attrs["resolution"] is None else f"{attrs['resolution']:.2f} Å", r.timings["reconstruct"])


#: the extended-object keys of [preprocess] (aetcore.steps.chain.extended_step, not pre-processing options)
_EXTENDED_KEYS = ("extended", "extended_border", "extended_threshold")


def _preprocess_attrs(r: _Run) -> dict:
    return r.load("preprocess")[1]


def _extended(r: _Run, rec: dict, rec_attrs: dict, tilts_shape, angles):
    """The trace support, evidence pixel mask and slab of the reconstruct step's extended-object
    decision (all None when the object is not extended)."""
    return extended_inputs(rec_attrs.get("extended"), tilts_shape, angles, r.pixel_size, rec["volume"].shape)


def _do_trace(r: _Run) -> None:
    from .config import step_options
    rec, rec_attrs = r.load("reconstruct")
    al, _ = r.load("align")
    t0 = time.perf_counter()
    opts = step_options(r.cfg, "trace")
    support = _extended(r, rec, rec_attrs, al["tilts"].shape, al["angles"])[0]
    if support is not None:
        opts["support"] = support
    tr = trace_step(rec["volume"], r.pixel_size, r.species, threads=r.threads, **opts)
    left = int(np.sum(tr.status == 4))
    r.save("trace", {"positions": tr.positions, "voxel": tr.voxel, "peak": tr.intensity, "status": tr.status},
           {"n_atoms": len(tr), "left_volume": left}, time.perf_counter() - t0)
    log.info("trace: %d atoms, %d fits left the volume and kept their voxel (%.1f s)", len(tr), left,
             r.timings["trace"])


def _do_classify(r: _Run) -> None:
    from .config import step_options
    rec, _ = r.load("reconstruct")
    tr, _ = r.load("trace")
    t0 = time.perf_counter()
    cls = classify_step(rec["volume"], tr["positions"], r.species, r.pixel_size, seed=r.seed,
                        **step_options(r.cfg, "classify"))
    r.save("classify", {"labels": cls.labels, "symbols": cls.symbols, "intensity": cls.intensity,
                        "initial_labels": cls.initial_labels,
                        "changes_per_round": np.asarray(cls.changes_per_round, np.int64)},
           {"converged": bool(cls.converged), "threshold": float(cls.threshold), "counts": cls.counts(),
            "non_atoms": int(np.sum(cls.labels < 0))}, time.perf_counter() - t0)
    log.info("classify: %s; %d rounds (%.1f s)", cls.counts(), len(cls.changes_per_round), r.timings["classify"])


def _do_evidence(r: _Run) -> None:
    from .config import step_options
    al, _ = r.load("align")
    tr, _ = r.load("trace")
    cl, _ = r.load("classify")
    rec, rec_attrs = r.load("reconstruct")
    t0 = time.perf_counter()
    opts = step_options(r.cfg, "evidence", drop=("enabled", "extended"))
    _, mask, slab = _extended(r, rec, rec_attrs, al["tilts"].shape, al["angles"])
    enabled = bool(r.cfg["evidence"]["enabled"])
    if mask is not None:
        opts.update(pixel_mask=mask, slab=slab)
        enabled = enabled and bool(r.cfg["evidence"]["extended"])
    arrays, attrs = evidence_step(tr["positions"], cl["labels"], r.species, al["tilts"], al["angles"], r.pixel_size,
                                  intensity=cl["intensity"], volume=rec["volume"], enabled=enabled,
                                  threads=r.threads, log=log.info, **opts)
    r.save("evidence", arrays, attrs, time.perf_counter() - t0)
    if attrs["enabled"]:
        log.info("evidence: %d atoms (%d dropped, %d added; %d with negative evidence) (%.1f s)",
                 arrays["positions"].shape[0], attrs["dropped"], attrs["added"],
                 int(np.sum(arrays["presence"] < 0)), r.timings["evidence"])


def _decided(ev: dict) -> dict:
    """The evidence step's arrays as read back (symbols as str)."""
    return dict(ev, symbols=np.asarray(ev["symbols"]).astype(str))


def _do_refine(r: _Run) -> None:
    from .config import step_options
    al, _ = r.load("align")
    ev, ev_attrs = r.load("evidence")
    t0 = time.perf_counter()
    if not r.cfg["refine"]["enabled"]:
        positions = ev["positions"]
        r.save("refine", {"positions": positions, "precision": np.full(positions.shape, np.nan),
                          "precision_reliable": np.zeros(positions.shape[0], bool)},
               {"enabled": False, "r1_before": None, "r1_after": None, "r1_holdout": None}, time.perf_counter() - t0)
        return
    rec, rec_attrs = r.load("reconstruct")
    mask = _extended(r, rec, rec_attrs, al["tilts"].shape, al["angles"])[1]
    opts = step_options(r.cfg, "refine", drop=("enabled", "extended_positions", "holdout_folds"))
    if mask is not None and not r.cfg["refine"]["extended_positions"]:
        opts["refine_positions"] = False
    ref, decided = refine_step(_decided(ev), ev_attrs, al["tilts"], al["angles"], r.pixel_size, threads=r.threads,
                               progress=r.progress, pixel_mask=mask, **opts)
    t_refine = time.perf_counter() - t0
    hold = None
    if mask is None:  # the k-fold validation has no pixel mask: an extended object's masked fit is not validated
        hold = holdout_step(_decided(ev), ev_attrs, al["tilts"], al["angles"], r.pixel_size, threads=r.threads,
                            holdout_folds=r.cfg["refine"]["holdout_folds"], seed=r.seed, **opts)
    hattrs = {"r1_holdout": None}
    if hold is not None:
        hattrs = {"r1_holdout": hold.r1_holdout_mean, "holdout": hold.as_dict(),
                  "holdout_seconds": time.perf_counter() - t0 - t_refine}
    r.save("refine", {"positions": ref.positions, "precision": ref.precision,
                      "precision_reliable": ref.precision_reliable, "loss_history": ref.loss_history,
                      "angles": ref.angles, "presence": decided["presence"],
                      "species_evidence": decided["species_evidence"]},
           {"enabled": True, "r1_before": ref.r1_before, "r1_after": ref.r1_after, **hattrs,
            "angles_refined": bool(r.cfg["refine"]["refine_angles"]), "angle_history": ref.angle_history,
            "heights": dict(zip(ref.model.symbols, ref.model.heights.tolist())),
            "b_factors": dict(zip(ref.model.symbols, ref.model.b_factors.tolist())),
            "iterations": ref.n_iterations, "message": ref.message}, time.perf_counter() - t0)
    log.info("refine: R1 %.4f -> %.4f (%.1f s)", ref.r1_before, ref.r1_after, t_refine)
    if hold is not None:
        log.info("refine: %d-fold validation over images: R1 of the fits %.4f, on held-out images %.4f (%.1f s)",
                 len(hold.folds), hold.r1_fit_mean, hold.r1_holdout_mean, hattrs["holdout_seconds"])


_DO = {"preprocess": _do_preprocess, "align": _do_align, "reconstruct": _do_reconstruct,
       "trace": _do_trace, "classify": _do_classify, "evidence": _do_evidence, "refine": _do_refine}


# ----------------------------------------------------------------------------------------- outputs
def _atoms(r: _Run, steps: dict):
    """The atomic model of the folder (refined if the refine step is valid) as ase.Atoms, from the
    loaded valid `steps` ({step: (arrays, attrs)})."""
    tr, _ = steps["trace"]
    cl, _ = steps["classify"]
    info, positions, precision, reliable = {}, None, None, None
    decided = _decided(steps["evidence"][0]) if "evidence" in steps else None
    if "refine" in steps:
        ref, ref_attrs = steps["refine"]
        positions, precision, reliable = ref["positions"], ref["precision"], ref.get("precision_reliable")
        if decided is not None and "presence" in ref:
            decided.update(presence=ref["presence"], species_evidence=ref["species_evidence"])
        for k in ("r1_before", "r1_after", "r1_holdout"):
            if ref_attrs.get(k) is not None:
                info[k] = float(ref_attrs[k])
    return model_atoms(r.species, r.pixel_size, tr["positions"], tr["status"], cl["labels"], cl["intensity"],
                       decided, positions=positions, precision=precision, precision_reliable=reliable, info=info)


def _provenance(r: _Run) -> dict:
    import aetcore
    return {"aetcore_version": aetcore.__version__, "python": sys.version.split()[0],
            "numpy": np.__version__, "platform": platform.platform(), "host": platform.node(),
            "threads": r.threads, "seed": r.seed, "command": " ".join(sys.argv),
            "written": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "input_sha256": r.state["sha256"], "config": r.cfg}


def _finish(r: _Run) -> dict:
    """Assemble atoms.xyz, results.h5, summary.json and report.html from the valid step files."""
    import h5py

    from ..io.writers import _jsonable, atomic_path, write_json, write_xyz
    t0 = time.perf_counter()
    done = [s for s in STEPS if r.valid(s)]
    steps = {s: load_step(_step_path(r.out, s)) for s in done}
    atoms = _atoms(r, steps) if {"trace", "classify"} <= set(done) else None
    if atoms is not None:
        write_xyz(r.out / "atoms.xyz", atoms)
    elif (r.out / "atoms.xyz").exists():
        (r.out / "atoms.xyz").unlink()  # made from steps that have been redone since: stale
    with atomic_path(r.out / "results.h5") as tmp:
        with h5py.File(tmp, "w") as f:
            for s, (arrays, attrs) in steps.items():
                write_step_group(f.create_group(s), arrays, attrs)
            if atoms is not None:
                write_group(f.create_group("atoms"), {
                    "positions": atoms.positions, "symbols": np.asarray(atoms.get_chemical_symbols()),
                    **{k: atoms.get_array(k) for k in ("intensity", "precision", "precision_reliable", "fit_status",
                                                       "evidence", "species_evidence")}})
            prov = _provenance(r)
            g = f.create_group("provenance")
            for k, v in prov.items():
                g.attrs[k] = json.dumps(v, default=_jsonable) if isinstance(v, (dict, list)) or v is None else v
            g.attrs["timings_s"] = json.dumps({s: steps[s][1].get("seconds") for s in steps})
            g.attrs["input"] = json.dumps({k: r.state[k] for k in ("tilts", "angles", "dataset", "pixel_size",
                                                                   "species", "frames")})
    timings = {s: steps[s][1].get("seconds") for s in steps}
    rec_attrs = steps["reconstruct"][1] if "reconstruct" in steps else {}
    ref_attrs = steps["refine"][1] if "refine" in steps else {}
    al_attrs = steps["align"][1] if "align" in steps else {}
    counts = None
    if atoms is not None:
        symbols = atoms.get_chemical_symbols()
        counts = {s: symbols.count(s) for s in r.species}
    summary = {
        "input": {k: r.state[k] for k in ("tilts", "angles", "dataset", "pixel_size", "species", "frames")},
        "atoms": None if atoms is None else len(atoms),
        "counts": counts,
        "non_atoms": None if atoms is None else atoms.info["non_atoms"],
        "fits_left_volume": steps["trace"][1].get("left_volume") if "trace" in steps else None,
        "evidence": {k: (steps["evidence"][1] if "evidence" in steps else {}).get(k)
                     for k in ("enabled", "dropped", "added", "history", "noise_alpha", "noise_beta")},
        "doubtful_atoms": None if atoms is None else int(np.sum(atoms.get_array("evidence") < 0)),
        # refined atoms whose precision is not a reliable estimate (RefinementResult.precision_reliable)
        "unreliable_precision_atoms": None if atoms is None or not ref_attrs.get("enabled") else
        int(np.sum(~atoms.get_array("precision_reliable"))),
        "r1_before": ref_attrs.get("r1_before"),
        "r1_after": ref_attrs.get("r1_after"),
        "r1_holdout": ref_attrs.get("r1_holdout"),
        "holdout": ref_attrs.get("holdout"),
        "heights": ref_attrs.get("heights"),
        "b_factors": ref_attrs.get("b_factors"),
        "resolution_A": rec_attrs.get("resolution"),
        "resolution_fsc05_A": rec_attrs.get("resolution_fsc05"),
        "resolution_at_nyquist": rec_attrs.get("resolution_at_nyquist"),
        "reconstruction": {k: rec_attrs.get(k) for k in ("iterations_run", "fourier_r", "rfree")},
        "extended": rec_attrs.get("extended"),
        "alignment": {k: al_attrs.get(k) for k in ("rotation_deg", "angles_refined", "enabled")},
        "tilt_angles_refined_by_refine": ref_attrs.get("angles_refined", False),
        "steps": done,
        "resumed_steps": list(r.resumed),
        "timings_s": timings,
        "memory_estimate": None if r.memory_estimate is None else {
            "peak_bytes": r.memory_estimate.peak, "peak_step": r.memory_estimate.peak_step,
            "steps_bytes": r.memory_estimate.steps},
        "outputs": [],
    }
    report = _report(r, steps, atoms, summary)
    summary["outputs"] = [n for n in ("atoms.xyz", "reconstruction.mrc", "results.h5", "summary.json",
                                      "report.html") if (r.out / n).exists() or n == "summary.json"]
    summary["timings_s"]["write"] = time.perf_counter() - t0
    # this invocation's wall time (steps kept from before count their original time above)
    summary["timings_s"]["total"] = time.perf_counter() - r.t_start
    summary["report"] = None if report is None else str(report)
    write_json(r.out / "summary.json", summary)
    return summary


def _report(r: _Run, steps: dict, atoms, summary: dict):
    """report.html through aetcore.report (figures of every finished step)."""
    from ..report.run import write_run_report
    if "reconstruct" not in steps or atoms is None:
        return None
    rec, rec_attrs = steps["reconstruct"]
    kw = dict(volume=rec["volume"], pixel_size=r.pixel_size, species=r.species,
              errors=rec.get("errors"), rfree=rec.get("rfree"),
              fsc=(rec["fsc_freq"], rec["fsc_corr"]) if "fsc_freq" in rec else None,
              resolution=rec_attrs.get("resolution"), summary=summary)
    if "align" in steps and steps["align"][1].get("enabled"):
        kw.update(shifts=steps["align"][0]["shifts"], rotation=steps["align"][1]["rotation_deg"],
                  angles=steps["align"][0]["euler"][:, 1])
    if atoms is not None:
        kw.update(symbols=np.asarray(atoms.get_chemical_symbols()), positions=atoms.positions,
                  intensity=atoms.get_array("intensity"))
    return write_run_report(r.out, **kw)


# ------------------------------------------------------------------------------------------- API
def _check_memory(state: dict, cfg: dict, threads, progress: bool):
    """The run's memory estimate (:mod:`aetcore.app.estimate`), printed with the progress bars and
    refused (MemoryError naming the option to lower) before any work when it does not fit."""
    from .._util.memory import available_bytes, format_bytes
    from ..io.readers import read_tilt_metadata
    from .estimate import check_run_memory
    n, ny, nx = read_tilt_metadata(state["tilts"], dataset=state["dataset"])["shape"]
    frames = state["frames"]
    est = check_run_memory((max(1, n // frames), ny, nx), cfg, frames=frames, threads=threads)
    line = f"{est.summary()}; {format_bytes(available_bytes())} available"
    log.info(line)
    if progress:
        print(f"aet run: {line}", file=sys.stderr)
    return est


def run(tilts_path, angles_path, pixel_size: float, species: Sequence[str], out, *, frames: int = 1,
        config=None, threads=None, dataset=None, seed=None, resume: bool = False,
        progress: bool = False, angle_convention: str = "aetcore", extended=None) -> dict:
    """Tilt-series file to atoms: the body of ``aet run``.

    Parameters
    ----------
    tilts_path : path
        Tilt series (any format of :func:`aetcore.io.read_tilts`), images angle-major with
        `frames` pages per angle.
    angles_path : path or None
        Tilt angles in degrees (:func:`aetcore.io.read_angles`); None reads them from the tilt
        file's own metadata (:func:`aetcore.io.read_tilt_metadata`).
    pixel_size : float
        Å per pixel.
    species : sequence of str or "Fe,Pt"
        The elements present.
    out : path
        The results folder (created if needed).
    frames : int
        Frames per angle.
    config : path, dict or None
        A TOML configuration file, or a dict ``{section: {key: value}}`` of overrides of the defaults
        (``aet config --defaults`` lists them).
    threads : int, optional
        Threads per step (None: all cores).
    dataset : str, optional
        HDF5 dataset (or MATLAB variable) of the images.
    seed : int, optional
        Random seed (default ``reconstruct.seed`` of the configuration).
    resume : bool
        Keep every finished step whose inputs and settings are unchanged (see the module docstring).
    progress : bool
        Progress bars on the long steps.
    angle_convention : {"aetcore", "genfire", "resire"}
        The convention the angle file is written in; the angles are converted to aetcore's ZYZ when
        the series is read (:func:`aetcore.model.geometry.angles_from_convention`, docs/angles.md).
    extended : None, "auto", True or False
        Extended object (``aet run --extended-object``: True); None keeps ``preprocess.extended`` of
        the configuration (default "auto": detected, :func:`aetcore.steps.chain.extended_step`).

    Returns
    -------
    dict
        The summary also written to ``out/summary.json``: counts per species, R1 before and after
        refinement, the number of refined atoms whose precision is not reliable
        (``unreliable_precision_atoms``, see ``RefinementResult.precision_reliable``; None without
        refinement), the half-set FSC resolution (Å), time per step (s), the steps resumed.
    """
    cfg = _config(config)
    if extended is not None:
        from .config import merge_config
        cfg = merge_config(dict(cfg, preprocess=dict(cfg["preprocess"], extended=extended)), "extended")
    out = _out_folder(out)
    state = _new_state(tilts_path, angles_path, pixel_size, species, frames, dataset, angle_convention)
    out.mkdir(parents=True, exist_ok=True)
    seed = cfg["reconstruct"]["seed"] if seed is None else seed
    est = _check_memory(state, cfg, threads, progress)
    r = _Run(out, state, cfg, threads, seed, progress)
    r.memory_estimate = est
    r.write_state()
    from tqdm.auto import tqdm
    t0 = time.perf_counter()
    bar = tqdm(STEPS, desc="aet run", disable=None if progress else True, unit="step")
    for step in bar:
        bar.set_postfix_str(step)
        if resume and r.valid(step):
            r.resumed.append(step)
            log.info("%s: finished earlier, kept (resume)", step)
            continue
        _DO[step](r)
    bar.close()
    summary = _finish(r)
    log.info("done in %.1f s", time.perf_counter() - t0)
    return summary


def run_step(step: str, out, *, config=None, threads=None, seed=None, progress: bool = False,
             tilts_path=None, angles_path=None, pixel_size=None, species=None, frames: int = 1,
             dataset=None, angle_convention: str = "aetcore") -> dict:
    """Redo one step of a results folder (``aet <step> --out DIR``) with the folder's configuration,
    and `config` (a TOML file or a dict of tables) merged over it; the steps after it are removed, the
    folder's outputs rewritten from the steps that remain valid.

    ``preprocess`` starts a folder: it takes `tilts_path`, `angles_path`, `pixel_size`, `species`,
    `frames`, `dataset` and `angle_convention` as :func:`run` does. Returns the summary.
    """
    if step not in STEPS:
        raise ValueError(f"step: expected one of {', '.join(STEPS)}, got {step!r}")
    out = _out_folder(out)
    if step == "preprocess":
        if tilts_path is None or angles_path is None or pixel_size is None or species is None:
            raise ValueError("preprocess: needs the tilt series, --angles, --pixel-size and --species")
        cfg = _config(config)
        out.mkdir(parents=True, exist_ok=True)
        state = _new_state(tilts_path, angles_path, pixel_size, species, frames, dataset, angle_convention)
        r = _Run(out, state, cfg, threads, cfg["reconstruct"]["seed"] if seed is None else seed, progress)
    else:
        r = _open_run(out, config=config, threads=threads, seed=seed, progress=progress)
        previous = STEPS[_STEP_ORDER[step] - 1]
        if not r.valid(previous):
            raise ValueError(f"{out}: the {previous} step must be run (with the current settings) before "
                             f"{step}; run `aet {previous} --out {out}`")
    r.write_state()
    _DO[step](r)
    return _finish(r)


def export(out, formats=("poscar", "cif"), *, vacuum: float = 10.0) -> list:
    """Write the folder's atomic model for DFT and visualisation: ``atoms.vasp`` (POSCAR) and
    ``atoms.cif`` through ASE, in a cubic-or-box cell with `vacuum` Å of empty space around the
    particle (the particle's positions are shifted into the cell).

    Parameters
    ----------
    out : path
        A results folder with ``atoms.xyz``.
    formats : sequence of {"poscar", "cif", "xyz", "pdb"}
    vacuum : float
        Empty space on each side, Å.

    Returns
    -------
    list of Path
        The files written.
    """
    from ase.io import write

    from ..io.readers import read_atoms
    from ..io.writers import atomic_path
    out = Path(out)
    src = out / "atoms.xyz"
    if not src.is_file():
        raise ValueError(f"--out: {out} has no atoms.xyz; run `aet run` (or the steps up to classify) first")
    if not (np.isfinite(vacuum) and vacuum >= 0):
        raise ValueError(f"vacuum: expected a non-negative number of Å, got {vacuum}")
    names = {"poscar": ("atoms.vasp", "vasp"), "cif": ("atoms.cif", "cif"), "xyz": ("atoms_plain.xyz", "xyz"),
             "pdb": ("atoms.pdb", "proteindatabank")}
    bad = [f for f in formats if f not in names]
    if bad:
        raise ValueError(f"formats: unknown {', '.join(bad)}; expected some of {', '.join(names)}")
    atoms = read_atoms(src)
    for k in list(atoms.arrays):
        if k not in ("numbers", "positions"):
            del atoms.arrays[k]
    lo, hi = atoms.positions.min(axis=0), atoms.positions.max(axis=0)
    atoms.set_cell(np.diag(hi - lo + 2 * vacuum))
    atoms.positions = atoms.positions - lo + vacuum
    atoms.pbc = True
    atoms.info = {}
    written = []
    for f in formats:
        name, fmt = names[f]
        with atomic_path(out / name) as tmp:
            kw = {"direct": False, "sort": True} if fmt == "vasp" else {}
            write(tmp, atoms, format=fmt, **kw)
        written.append(out / name)
    return written
