"""``aet batch``: many ``aet run`` s at once with ``dask.distributed``.

A *manifest* (TOML) lists the datasets -- many particles, time points of one particle, or a parameter
sweep over one tilt series -- and the settings they share::

    [defaults]
    out = "results"                  # results root; dataset NAME goes to results/NAME/
    pixel_size = 0.4                 # Å per pixel
    species = ["Fe", "Pt"]           # or "Fe,Pt"
    frames = 1                       # frames per angle
    config_file = "base.toml"        # an `aet run --config` file
    [defaults.config]                # inline overrides of that file
    reconstruct.iterations = 50

    [[dataset]]
    name = "particle1"
    tilts = "particle1/tilts.npy"    # relative paths resolve against the manifest's folder
    angles = "particle1/angles.txt"

    [[dataset]]
    name = "particle1-more-iterations"
    tilts = "particle1/tilts.npy"
    angles = "particle1/angles.txt"
    config = { reconstruct = { iterations = 200 } }

:func:`load_manifest` checks the whole manifest before anything runs and reports every problem at
once (:class:`ManifestError`). :func:`batch` runs one :func:`aetcore.app.folder.run` per dataset on a
``dask.distributed`` cluster (a ``LocalCluster`` unless a scheduler is given), retries a failed
dataset (once by default), never lets one failure stop the others, and gathers one row per
dataset into ``<out>/batch.csv`` and ``<out>/batch.json``; ``aet batch`` (:mod:`aetcore.app.cli`)
calls them. See ``docs/batch.md`` for laptops, existing schedulers and SLURM.
"""
from __future__ import annotations

import logging
import math
import os
import re
import socket
import sys
import threading
import time
import traceback
import types
from dataclasses import dataclass, field
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python < 3.11
    import tomli as tomllib  # type: ignore

log = logging.getLogger("aetcore.batch")

__all__ = ["batch", "load_manifest", "Manifest", "DatasetSpec", "BatchResult", "ManifestError",
           "MANIFEST_DEFAULT_KEYS", "MANIFEST_DATASET_KEYS"]

#: keys of ``[defaults]`` and what they hold
MANIFEST_DEFAULT_KEYS = {
    "out": "results root folder (default: <manifest stem>_results next to the manifest)",
    "pixel_size": "Å per pixel",
    "species": "element symbols, a list or \"Fe,Pt\"",
    "frames": "frames per angle (default 1)",
    "config_file": "an `aet run --config` TOML file",
    "config": "inline configuration overrides, {section: {key: value}}",
    "seed": "random seed (default: reconstruct.seed of the configuration)",
    "hdf5_dataset": "the HDF5 dataset holding the images",
    "angle_convention": "the angle file's convention: aetcore (default), genfire or resire (docs/angles.md)",
}
#: keys of each ``[[dataset]]`` and what they hold
MANIFEST_DATASET_KEYS = {
    "name": "unique name; also the dataset's output folder <out>/<name> (letters, digits, . _ -)",
    "tilts": "tilt-series file",
    "angles": "angles file",
    **{k: v for k, v in MANIFEST_DEFAULT_KEYS.items() if k != "out"},
}
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_CSV_FIELDS = ("name", "status", "attempts", "error", "atoms", "r1_before", "r1_after", "r1_holdout", "time_s",
               "out", "results_h5")
#: What a dataset's run reports (None until it does): one list for the records, rows and CSV.
_SCORES = ("atoms", "counts", "r1_before", "r1_after", "r1_holdout", "time_s")
_MAX_ERROR = 600  # characters of an error message kept in the table
_CONNECT_TIMEOUT = "30s"  # to reach an existing scheduler
_RESERVED = ("batch.csv", "batch.json")  # the table files in the results root


class ManifestError(ValueError):
    """A manifest that cannot run; ``problems`` lists every problem found (one line each)."""

    def __init__(self, path, problems):
        self.path = Path(path)
        self.problems = list(problems)
        n = len(self.problems)
        head = f"{self.path}: {n} problem{'s' if n != 1 else ''} in the batch manifest"
        super().__init__(head + ":\n" + "\n".join(f"  - {p}" for p in self.problems))


@dataclass(frozen=True)
class DatasetSpec:
    """One dataset of a manifest, every path absolute and every setting resolved.

    ``config`` is the complete configuration ``{section: {key: value}}`` (the defaults of
    :mod:`aetcore.app.config` with the manifest's layers merged over them).
    """
    name: str
    tilts: Path
    angles: Path
    pixel_size: float
    species: tuple
    frames: int
    config: dict
    seed: int | None
    hdf5_dataset: str | None
    out: Path
    angle_convention: str = "aetcore"


@dataclass(frozen=True)
class Manifest:
    """A checked batch manifest: its file, the results root and the datasets in file order."""
    path: Path
    out: Path
    datasets: tuple

    @property
    def species(self) -> tuple:
        """Every species of every dataset, in order of first appearance."""
        seen = []
        for d in self.datasets:
            seen += [s for s in d.species if s not in seen]
        return tuple(seen)


@dataclass
class BatchResult:
    """The outcome of :func:`batch`: one row per dataset, in manifest order.

    Each row is a dict with ``name``, ``status`` (``"ok"`` or ``"failed"``), ``attempts``,
    ``error`` (``"Type: message"`` of the last failed attempt, None when ok), ``atoms``, ``counts``
    (``{species: n}``), ``r1_before``, ``r1_after``, ``r1_holdout`` (R1 on held-out images, k-fold), ``time_s`` (the last attempt, seconds),
    ``out`` (the dataset's output folder), ``results_h5`` (its ``results.h5`` when ``aet run``
    wrote one), ``worker`` (host:pid of the last attempt) and
    ``errors`` (one ``{"attempt", "error", "where", "worker"}`` per failed attempt).
    """
    rows: list
    csv_path: Path
    json_path: Path
    manifest: Path
    scheduler: str
    threads_per_worker: int | None
    wall_s: float
    species: tuple = field(default=())

    def __len__(self):
        return len(self.rows)

    def __iter__(self):
        return iter(self.rows)

    def __getitem__(self, name):
        for r in self.rows:
            if r["name"] == name:
                return r
        raise KeyError(f"no dataset named {name!r}; datasets: {', '.join(r['name'] for r in self.rows)}")

    @property
    def ok(self) -> list:
        """Names of the datasets that succeeded."""
        return [r["name"] for r in self.rows if r["status"] == "ok"]

    @property
    def failed(self) -> list:
        """Names of the datasets that failed on every attempt."""
        return [r["name"] for r in self.rows if r["status"] != "ok"]

    def table(self) -> str:
        """A plain-text table of the rows (what ``aet batch`` prints)."""
        head = ["name", "status", "tries", "atoms", *self.species, "R1", "time/s"]
        lines = []
        for r in self.rows:
            counts = r.get("counts") or {}
            r1 = r.get("r1_after") if r.get("r1_after") is not None else r.get("r1_before")
            lines.append([r["name"], r["status"], str(r["attempts"]),
                          "" if r["atoms"] is None else str(r["atoms"]),
                          *[str(counts[s]) if s in counts else "" for s in self.species],
                          "" if r1 is None else f"{r1:.4f}",
                          "" if r["time_s"] is None else f"{r['time_s']:.1f}"])
        widths = [max(len(h), *(len(x[i]) for x in lines)) if lines else len(h) for i, h in enumerate(head)]
        fmt = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()  # noqa: E731
        out = [fmt(head)] + [fmt(x) for x in lines]
        for r in self.rows:
            if r["status"] != "ok":
                out.append(f"{r['name']}: {r['error']}")
        return "\n".join(out)


# --------------------------------------------------------------------------------------- manifest
def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _resolve(base: Path, value) -> Path:
    p = Path(value).expanduser()
    return p if p.is_absolute() else (base / p)


def _deep_merge(*layers) -> dict:
    out = {}
    for layer in layers:
        for sec, values in layer.items():
            if isinstance(values, dict) and isinstance(out.get(sec), dict):
                out[sec] = {**out[sec], **values}
            else:
                out[sec] = dict(values) if isinstance(values, dict) else values
    return out


def _check_settings(table: dict, where: str, base: Path, problems: list, config_files: dict) -> dict:
    """Check the shared settings of `table` ([defaults] or one [[dataset]]); return the valid ones
    (config layers as raw {section: {key: value}} dicts under "_layers")."""
    from .._util.validate import species_symbols
    from .config import merge_config

    got = {}
    if "pixel_size" in table:
        v = table["pixel_size"]
        if _is_number(v) and math.isfinite(v) and v > 0:
            got["pixel_size"] = float(v)
        else:
            problems.append(f"{where}: pixel_size: expected a positive number of Å, got {v!r}")
    if "species" in table:
        v = table["species"]
        if not isinstance(v, (str, list)):
            problems.append(f"{where}: species: expected element symbols (a list or \"Fe,Pt\"), got {v!r}")
        else:
            try:
                got["species"] = species_symbols(v, "species", text=True)
            except (TypeError, ValueError) as e:
                problems.append(f"{where}: {e}")
    if "frames" in table:
        v = table["frames"]
        if isinstance(v, int) and not isinstance(v, bool) and v >= 1:
            got["frames"] = v
        else:
            problems.append(f"{where}: frames: expected an integer >= 1, got {v!r}")
    if "seed" in table:
        v = table["seed"]
        if isinstance(v, int) and not isinstance(v, bool):
            got["seed"] = v
        else:
            problems.append(f"{where}: seed: expected an integer, got {v!r}")
    if "hdf5_dataset" in table:
        v = table["hdf5_dataset"]
        if isinstance(v, str) and v:
            got["hdf5_dataset"] = v
        else:
            problems.append(f"{where}: hdf5_dataset: expected the name of an HDF5 dataset, got {v!r}")
    if "angle_convention" in table:
        from ..model.geometry import ANGLE_CONVENTIONS
        v = table["angle_convention"]
        if v in ANGLE_CONVENTIONS:
            got["angle_convention"] = v
        else:
            problems.append(f"{where}: angle_convention: expected one of {', '.join(ANGLE_CONVENTIONS)}, got {v!r}")
    layers = []
    if "config_file" in table:
        v = table["config_file"]
        if not isinstance(v, str) or not v:
            problems.append(f"{where}: config_file: expected the path of a TOML file, got {v!r}")
        else:
            p = _resolve(base, v)
            if p not in config_files:
                try:
                    with open(p, "rb") as f:
                        raw = tomllib.load(f)
                    merge_config(raw, str(p))
                    config_files[p] = raw
                except FileNotFoundError:
                    config_files[p] = f"{where}: config_file: {p}: no such file"
                except (OSError, tomllib.TOMLDecodeError) as e:
                    config_files[p] = f"{where}: config_file: {p}: not a readable TOML file: {e}"
                except ValueError as e:
                    config_files[p] = f"{where}: config_file: {e}"
            if isinstance(config_files[p], str):
                if config_files[p] not in problems:  # a shared file's problem, once
                    problems.append(config_files[p])
            else:
                layers.append(config_files[p])
    if "config" in table:
        v = table["config"]
        if isinstance(v, str):
            problems.append(f"{where}: config: expected a table of overrides such as "
                            f"{{ reconstruct = {{ iterations = 50 }} }}, got the string {v!r} "
                            f"(a configuration file goes in config_file)")
        else:
            try:
                merge_config(v, f"{where}: config")
                layers.append(v)
            except ValueError as e:
                problems.append(str(e))
    got["_layers"] = layers
    return got


def load_manifest(path) -> Manifest:
    """Read and check a batch manifest; return it with every path absolute.

    Parameters
    ----------
    path : str or Path
        The manifest, a TOML file with an optional ``[defaults]`` table and one ``[[dataset]]``
        table per dataset (keys in :data:`MANIFEST_DEFAULT_KEYS` and :data:`MANIFEST_DATASET_KEYS`).
        Relative paths resolve against the manifest's folder.

    Returns
    -------
    Manifest

    Raises
    ------
    ManifestError
        Listing every problem found: unknown or missing keys, values of the wrong type, missing
        files, duplicate names, bad configuration keys. A file that exists but is corrupt is not
        looked into here; it fails when its dataset runs.
    """
    from .config import merge_config
    from ..io.readers import TILT_SUFFIXES

    path = Path(path).expanduser()
    try:
        with open(path, "rb") as f:
            doc = tomllib.load(f)
    except FileNotFoundError:
        raise ManifestError(path, ["no such file"]) from None
    except IsADirectoryError:
        raise ManifestError(path, ["is a folder, not a manifest file"]) from None
    except tomllib.TOMLDecodeError as e:
        raise ManifestError(path, [f"not valid TOML: {e}"]) from None
    path = path.resolve()
    base = path.parent
    problems = []
    config_files = {}

    unknown = [k for k in doc if k not in ("defaults", "dataset")]
    if unknown:
        problems.append(f"unknown top-level key(s) {', '.join(map(repr, unknown))}; a manifest holds "
                        f"[defaults] and [[dataset]] tables")
    defaults = doc.get("defaults", {})
    if not isinstance(defaults, dict):
        problems.append(f"defaults: expected a table [defaults], got {defaults!r}")
        defaults = {}
    bad = [k for k in defaults if k not in MANIFEST_DEFAULT_KEYS]
    if bad:
        problems.append(f"[defaults]: unknown key(s) {', '.join(map(repr, bad))}; "
                        f"[defaults] takes {', '.join(MANIFEST_DEFAULT_KEYS)}")
    dflt = _check_settings(defaults, "[defaults]", base, problems, config_files)
    out = base / f"{path.stem}_results"
    if "out" in defaults:
        v = defaults["out"]
        if isinstance(v, str) and v:
            out = _resolve(base, v)
        else:
            problems.append(f"[defaults]: out: expected a folder path, got {v!r}")
    if out.exists() and not out.is_dir():
        problems.append(f"[defaults]: out: {out} exists and is not a folder")

    entries = doc.get("dataset", [])
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        problems.append("dataset: expected [[dataset]] tables (an array of tables)")
        entries = []
    if not entries and "dataset" not in unknown:
        problems.append("no [[dataset]] entries: nothing to run")
    datasets, names = [], {}
    for i, entry in enumerate(entries, 1):
        name = entry.get("name")
        where = f"[[dataset]] #{i}" + (f" ({name!r})" if isinstance(name, str) else "")
        bad = [k for k in entry if k not in MANIFEST_DATASET_KEYS]
        if bad:
            problems.append(f"{where}: unknown key(s) {', '.join(map(repr, bad))}; "
                            f"[[dataset]] takes {', '.join(MANIFEST_DATASET_KEYS)}")
        n_before = len(problems)
        if name is None:
            problems.append(f"{where}: name: missing (every dataset needs a unique name)")
        elif not isinstance(name, str) or not _NAME.match(name) or name in (".", ".."):
            problems.append(f"{where}: name: expected letters, digits, '.', '_' or '-' (it names the "
                            f"output folder), got {name!r}")
        elif name.lower() in _RESERVED:
            problems.append(f"{where}: name: {name!r} is the name of the results table; choose another")
        elif name in names:
            problems.append(f"{where}: name: {name!r} is already the name of [[dataset]] #{names[name]}")
        else:
            names[name] = i
        files = {}
        for key in ("tilts", "angles"):
            v = entry.get(key)
            if v is None:
                problems.append(f"{where}: {key}: missing")
            elif not isinstance(v, str) or not v:
                problems.append(f"{where}: {key}: expected a file path, got {v!r}")
            else:
                p = _resolve(base, v)
                if not p.exists():
                    problems.append(f"{where}: {key}: {p}: no such file")
                elif not p.is_file():
                    problems.append(f"{where}: {key}: {p}: not a regular file")
                elif key == "tilts" and p.suffix.lower() not in TILT_SUFFIXES:
                    problems.append(f"{where}: tilts: {p}: unknown format {p.suffix!r}; expected one of "
                                    f"{', '.join(TILT_SUFFIXES)}")
                else:
                    files[key] = p
        own = _check_settings(entry, where, base, problems, config_files)
        s = {**dflt, **{k: v for k, v in own.items() if k != "_layers"}}
        for key in ("pixel_size", "species"):
            if key not in s and key not in entry and key not in defaults:
                problems.append(f"{where}: {key}: missing (give it in [defaults] or in the dataset)")
        if len(problems) > n_before:
            continue
        raw = _deep_merge(*dflt["_layers"], *own["_layers"])
        try:
            config = merge_config(raw, f"{where}: config")
        except ValueError as e:  # each layer was checked; kept for safety
            problems.append(str(e))
            continue
        datasets.append(DatasetSpec(name=name, tilts=files["tilts"], angles=files["angles"],
                                    pixel_size=s["pixel_size"], species=s["species"],
                                    frames=s.get("frames", 1), config=config, seed=s.get("seed"),
                                    hdf5_dataset=s.get("hdf5_dataset"), out=out / name,
                                    angle_convention=s.get("angle_convention", "aetcore")))
    if problems:
        raise ManifestError(path, problems)
    return Manifest(path=path, out=out, datasets=tuple(datasets))


# ------------------------------------------------------------------------------------ one dataset
_RUN_LOCK = threading.Lock()  # one dataset at a time per worker process (OpenMP threads are per task)


def _describe(exc: BaseException) -> tuple:
    """("Type: first lines of the message", "file.py:line in function" of the innermost frame)."""
    msg = str(exc).strip()
    lines = msg.splitlines()
    if len(lines) > 3:
        msg = "\n".join(lines[:3]) + f"\n... ({len(lines) - 3} more lines)"
    if len(msg) > _MAX_ERROR:
        msg = msg[:_MAX_ERROR] + "..."
    text = f"{type(exc).__name__}: {msg}" if msg else type(exc).__name__
    where = None
    tb = traceback.extract_tb(exc.__traceback__) if exc.__traceback__ is not None else []
    if tb:
        f = tb[-1]
        where = f"{Path(f.filename).name}:{f.lineno} in {f.name}"
    return text, where


def _run_dataset(spec: DatasetSpec, threads, attempt: int, resume: bool = False) -> dict:
    """Run one dataset in a worker; never raises for an error of the dataset itself (the error is
    returned in the record, so the driver decides on retries). `resume`: keep the finished steps of
    an earlier run of the same folder (:func:`aetcore.app.folder.run`)."""
    from ..io.writers import atomic_path
    from .config import config_toml
    from .folder import run

    rec = {"name": spec.name, "attempt": attempt, "worker": f"{socket.gethostname()}:{os.getpid()}",
           "status": "failed", "error": None, "where": None, **dict.fromkeys(_SCORES), "results_h5": None}
    with _RUN_LOCK:
        t0 = time.perf_counter()
        try:
            spec.out.mkdir(parents=True, exist_ok=True)
            cfg_path = spec.out / "config.toml"
            with atomic_path(cfg_path) as tmp:
                Path(tmp).write_text(config_toml(spec.config, f"the complete configuration of batch dataset "
                                                              f"{spec.name!r} (written by aet batch)"))
            s = run(tilts_path=spec.tilts, angles_path=spec.angles, pixel_size=spec.pixel_size,
                    species=spec.species, out=spec.out, frames=spec.frames, config=cfg_path,
                    threads=threads, dataset=spec.hdf5_dataset, seed=spec.seed,
                    angle_convention=spec.angle_convention, resume=resume)
            h5 = spec.out / "results.h5"
            rec.update(status="ok", atoms=None if s.get("atoms") is None else int(s["atoms"]),
                       counts=None if s.get("counts") is None else {k: int(v) for k, v in s["counts"].items()},
                       results_h5=str(h5) if h5.is_file() else None,
                       **{k: None if s.get(k) is None else float(s[k]) for k in ("r1_before", "r1_after", "r1_holdout")})
        except Exception as e:  # noqa: BLE001 - any failure of one dataset is reported, not raised
            rec["error"], rec["where"] = _describe(e)
        rec["time_s"] = time.perf_counter() - t0
    return rec


# ---------------------------------------------------------------------------------------- cluster
def _cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


class _QuietDask:
    """Keep dask's own INFO messages (workers joining, closing) out of the driver's log unless
    aetcore.batch logs at DEBUG level; dask's warnings (e.g. a worker over its memory) still show."""

    def __enter__(self):
        self.logger = logging.getLogger("distributed")
        self.old = self.logger.level
        if not log.isEnabledFor(logging.DEBUG) and self.logger.getEffectiveLevel() < logging.WARNING:
            self.logger.setLevel(logging.WARNING)
        return self

    def __exit__(self, *exc):
        self.logger.setLevel(self.old)
        return False


def _local_shape(n_datasets: int, workers, threads_per_worker) -> tuple:
    """(workers, OpenMP threads per worker) of a LocalCluster on this machine."""
    cores = _cores()
    if workers is None and threads_per_worker is None:
        workers = max(1, min(n_datasets, cores))
        threads_per_worker = max(1, cores // workers)
    elif workers is None:
        workers = max(1, min(n_datasets, cores // threads_per_worker))
    elif threads_per_worker is None:
        threads_per_worker = max(1, cores // workers)
    return workers, threads_per_worker


class _Session:
    """A dask Client on a LocalCluster, on a scheduler address, on a cluster object or a Client."""

    def __init__(self, scheduler, workers, threads_per_worker, n_datasets):
        from .._util.optional import require
        distributed = require("distributed", "batch", "aet batch")
        Client, LocalCluster = distributed.Client, distributed.LocalCluster
        self.cluster = None
        self.own_client = True
        self.threads = threads_per_worker
        if scheduler is None:
            import importlib.util
            workers, self.threads = _local_shape(n_datasets, workers, threads_per_worker)
            dash = ":0" if importlib.util.find_spec("bokeh") is not None else None
            # one dask thread per worker process: a worker runs one dataset at a time, which uses
            # `threads` OpenMP threads
            self.cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                        host="127.0.0.1", dashboard_address=dash,
                                        silence_logs=logging.ERROR)
            self.client = Client(self.cluster)
            self.description = f"LocalCluster({workers} workers x {self.threads} threads)"
            if dash is not None:
                log.info("dask dashboard: %s", self.client.dashboard_link)
        elif isinstance(scheduler, Client):
            self.client, self.own_client = scheduler, False
            self.description = f"Client({scheduler.scheduler.address})"
        else:
            address = getattr(scheduler, "scheduler_address", scheduler)
            if not isinstance(address, str) or not address:
                raise TypeError(f"scheduler: expected an address such as tcp://host:8786, a dask "
                                f"cluster or a distributed.Client, got {type(scheduler).__name__}")
            try:
                self.client = Client(address, timeout=_CONNECT_TIMEOUT)
            except (OSError, TimeoutError) as e:
                raise ValueError(f"scheduler: cannot connect to {address}: {e}") from None
            self.description = address
        if self.cluster is None:
            info = self.client.scheduler_info().get("workers", {})
            multi = sorted(a for a, w in info.items() if w.get("nthreads", 1) > 1)
            if multi:
                log.warning("%d worker(s) have more than one dask thread (e.g. %s): each still runs one "
                            "dataset at a time; start workers with one thread each and give "
                            "--threads-per-worker (see docs/batch.md)", len(multi), multi[0])

    def close(self):
        if self.own_client:
            self.client.close()
        if self.cluster is not None:
            self.cluster.close()


# ------------------------------------------------------------------------------------------ batch
def _row(spec: DatasetSpec) -> dict:
    return {"name": spec.name, "status": "pending", "attempts": 0, "error": None, **dict.fromkeys(_SCORES),
            "out": str(spec.out), "results_h5": None, "worker": None, "errors": []}


def _write_tables(m: Manifest, rows: list, species: tuple, meta: dict):
    from ..io.tables import write_csv
    from ..io.writers import write_json
    columns = {k: [r[k] for r in rows] for k in _CSV_FIELDS[:5]}
    columns.update({f"count_{s}": [(r["counts"] or {}).get(s) for r in rows] for s in species})
    columns.update({k: [r[k] for r in rows] for k in _CSV_FIELDS[5:]})
    columns["time_s"] = [None if t is None else round(t, 3) for t in columns["time_s"]]
    write_csv(m.out / "batch.csv", columns)
    write_json(m.out / "batch.json", {**meta, "datasets": rows})


def batch(manifest, *, scheduler=None, workers=None, threads_per_worker=None, retries=1,
          progress=True, resume=False) -> BatchResult:
    """Run every dataset of a manifest with ``dask.distributed``; the Python form of ``aet batch``.

    Parameters
    ----------
    manifest : str, Path or Manifest
        The batch manifest (see :func:`load_manifest`); it is checked whole before anything runs.
    scheduler : str, dask cluster, distributed.Client or None
        None starts a ``LocalCluster`` of `workers` processes with one dask thread each. An address
        (``"tcp://host:8786"``), a cluster object (e.g. ``dask_jobqueue.SLURMCluster``) or a Client
        uses that cluster's workers; the paths of the manifest must be readable by them.
    workers : int or None
        LocalCluster worker processes (datasets running at once). Default: one per dataset, at
        most one per core. Only without `scheduler`.
    threads_per_worker : int or None
        OpenMP threads of each running dataset (``threads=`` of :func:`aetcore.app.folder.run`).
        Default with a LocalCluster: the cores divided among the workers; with a scheduler: every
        core the worker process may use.
    retries : int
        Further attempts for a dataset that fails (default 1: a failure is retried exactly once).
    progress : bool
        Show a progress bar (tqdm, on stderr) and report failed attempts as they happen.
    resume : bool
        Keep the finished steps of an earlier run of each dataset's folder whose inputs and settings
        are unchanged (``aet run --resume``).

    Returns
    -------
    BatchResult
        One row per dataset in manifest order; also written to ``<out>/batch.csv`` and
        ``<out>/batch.json`` (rewritten atomically as each dataset finishes). Every dataset's own
        results are in ``<out>/<name>/`` (those of ``aet run``, plus ``config.toml``, the complete
        configuration it ran with).

    Raises
    ------
    ManifestError
        The manifest cannot run (nothing has started).
    ValueError, TypeError
        Bad arguments, or the scheduler cannot be reached.

    Notes
    -----
    A failing dataset never stops the others: its error (exception type and message, and where it
    was raised) is recorded, it is resubmitted up to `retries` times, and it ends as ``"failed"``. A
    worker process that dies is replaced and its dataset rescheduled by dask; after dask gives up
    (``KilledWorker``) that counts as one failed attempt.
    """
    from tqdm.auto import tqdm
    from .._util.optional import require
    from .._util.validate import at_least
    as_completed = require("distributed", "batch", "aet batch").as_completed

    m = manifest if isinstance(manifest, Manifest) else load_manifest(manifest)
    retries = at_least(retries, 0, "retries", integer=True)
    resume = bool(resume)
    if workers is not None:
        workers = at_least(workers, 1, "workers", integer=True)
        if scheduler is not None:
            raise ValueError("workers: the number of workers belongs to the cluster behind `scheduler`; "
                             "give workers only to start a LocalCluster")
    if threads_per_worker is not None:
        threads_per_worker = at_least(threads_per_worker, 1, "threads_per_worker", integer=True)
    if scheduler is not None and not isinstance(scheduler, str) and not hasattr(scheduler, "submit") \
            and not isinstance(getattr(scheduler, "scheduler_address", None), str):
        raise TypeError(f"scheduler: expected an address such as tcp://host:8786, a dask cluster or a "
                        f"distributed.Client, got {type(scheduler).__name__}")

    created = not m.out.exists()
    try:
        m.out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ValueError(f"{m.path}: out: cannot create the results folder {m.out}: {e}") from None
    species = m.species
    rows = [_row(d) for d in m.datasets]
    by_name = {d.name: (d, r) for d, r in zip(m.datasets, rows)}
    t_start = time.perf_counter()
    started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    quiet = _QuietDask().__enter__()
    try:
        session = _Session(scheduler, workers, threads_per_worker, len(m.datasets))
    except BaseException:
        quiet.__exit__()
        if created:  # nothing ran: leave no empty results folder behind
            try:
                m.out.rmdir()
            except OSError:
                pass
        raise
    meta = {"manifest": str(m.path), "out": str(m.out), "scheduler": session.description,
            "threads_per_worker": session.threads, "retries": retries, "started": started,
            "finished": None, "wall_s": None}
    bar = tqdm(total=len(rows), desc="aet batch", unit="dataset", disable=not progress, file=sys.stderr)

    def say(msg):
        if progress:
            bar.write(msg, file=sys.stderr)
        else:
            log.warning(msg)

    try:
        _write_tables(m, rows, species, meta)
        client = session.client
        pending = {}

        def submit(spec, attempt):
            fut = client.submit(_run_dataset, spec, session.threads, attempt, resume, pure=False,
                                key=f"aet-batch-{spec.name}-{attempt}-{os.urandom(4).hex()}")
            pending[fut.key] = (spec.name, attempt)
            return fut

        futures = as_completed([submit(d, 1) for d in m.datasets])
        for fut in futures:
            name, attempt = pending.pop(fut.key)
            spec, row = by_name[name]
            try:
                rec = fut.result()
            except Exception as e:  # noqa: BLE001 - KilledWorker, a lost worker, ...
                text, where = _describe(e)
                rec = {"status": "failed", "error": text, "where": where, "worker": None, **dict.fromkeys(_SCORES)}
            fut.release()
            row["attempts"] = attempt
            for k in ("status", "error", *_SCORES, "worker", "results_h5"):
                row[k] = rec.get(k)
            if rec["status"] != "ok":
                row["errors"].append({"attempt": attempt, "error": rec["error"], "where": rec.get("where"),
                                      "worker": rec.get("worker")})
                if attempt <= retries:
                    row["status"] = "retrying"
                    say(f"aet batch: {name}: attempt {attempt} failed ({rec['error']}); retrying")
                    futures.add(submit(spec, attempt + 1))
                else:
                    say(f"aet batch: {name}: failed after {attempt} attempt(s): {rec['error']}")
                    bar.update(1)
            else:
                row["error"] = None
                bar.update(1)
            _write_tables(m, rows, species, meta)
    finally:
        bar.close()
        try:
            session.close()
        finally:
            quiet.__exit__()
    meta["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    meta["wall_s"] = time.perf_counter() - t_start
    _write_tables(m, rows, species, meta)
    return BatchResult(rows=rows, csv_path=m.out / "batch.csv", json_path=m.out / "batch.json",
                       manifest=m.path, scheduler=session.description,
                       threads_per_worker=session.threads, wall_s=meta["wall_s"], species=species)


class _CallableModule(types.ModuleType):
    """This module, callable: ``aetcore.batch(manifest, ...)`` runs :func:`batch` (the module is
    ``aetcore.batch`` since the package layout of issue 11; the call is kept for existing scripts)."""

    def __call__(self, *args, **kwargs):
        return batch(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
