"""The ``aet`` command line: ``aet run`` (tilt series to atoms and a report), one command per step
(``aet preprocess``, ``align``, ``reconstruct``, ``trace``, ``classify``, ``evidence``, ``refine``) to redo a step
of a results folder with new settings, ``aet analyze`` (strain, chemical order, grains),
``aet track`` (4D: atoms and nuclei through time), ``aet batch`` (many datasets on Dask),
``aet areas`` (sub-area AET: areas on Dask, stitched), ``aet export`` (POSCAR, CIF), ``aet compare`` (score one atomic model against another),
``aet simulate`` (a test data set), ``aet demo`` (simulate, run the
whole chain and score it) and ``aet config --defaults``.

Errors in arguments or input files end the command with exit status 2 and one line naming the
argument or file and what is wrong; a command that needs an optional dependency that is not
installed ends with exit status 1 and the ``pip install "aetcore[...]"`` that provides it.
"""
from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

import numpy as np

log = logging.getLogger("aetcore.cli")


class _UsageError(Exception):
    pass


def _number(name: str, *, minimum: float, strict: bool, integer: bool = False):
    """An argparse type: a finite number (an integer if asked) above `minimum` (strictly or not)."""
    def parse(s):
        try:
            v = int(s) if integer else float(s)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {'an integer' if integer else 'a number'}, got {s!r}") from None
        if not (np.isfinite(v) and (v > minimum if strict else v >= minimum)):
            what = "a positive number" if (strict and minimum == 0 and not integer) else (
                f"{'an integer' if integer else 'a number'} {'>' if strict else '>='} {minimum:g}")
            raise argparse.ArgumentTypeError(f"expected {what}, got {s!r}")
        return v
    parse.__name__ = name
    return parse


def _positive_float(name):
    return _number(name, minimum=0, strict=True)


def _non_negative_float(name):
    return _number(name, minimum=0, strict=False)


def _int_at_least(minimum):
    return _number("integer", minimum=minimum, strict=False, integer=True)


def _species(s):
    from .._util.validate import species_symbols
    try:
        return species_symbols(s, "species", text=True)
    except (TypeError, ValueError) as e:  # argparse names the option itself
        raise argparse.ArgumentTypeError(str(e).removeprefix("species: ")) from None


# ----------------------------------------------------------------------------------------- config
def cmd_config(args) -> int:
    from .config import default_config_toml, load_config
    if args.defaults:
        sys.stdout.write(default_config_toml())
        return 0
    if args.check:
        load_config(args.check)
        print(f"{args.check}: OK")
        return 0
    raise _UsageError("config: give --defaults (print the default configuration) or --check FILE.toml")


# ------------------------------------------------------------------------------------------ batch
def cmd_batch(args) -> int:
    """``aet batch``: 0 when every dataset succeeded, 1 when some failed, 2 when the manifest or the
    arguments are bad (nothing ran)."""
    from .batch import batch, load_manifest
    try:
        m = load_manifest(args.manifest)
        if args.check:
            print(f"{m.path}: OK, {len(m.datasets)} dataset(s); results into {m.out}")
            return 0
        res = batch(m, scheduler=args.scheduler, workers=args.workers,
                    threads_per_worker=args.threads_per_worker, retries=args.retries,
                    progress=not args.quiet)
    except (ValueError, TypeError) as e:  # ManifestError is a ValueError
        print(f"aet batch: error: {e}", file=sys.stderr)
        return 2
    if not args.quiet:
        print(res.table())
        print(f"{len(res.ok)} of {len(res)} dataset(s) ok in {res.wall_s:.1f} s on {res.scheduler}; "
              f"wrote {res.csv_path} and {res.json_path.name}")
    return 0 if not res.failed else 1


# ------------------------------------------------------------------------------------------- demo
def cmd_demo(args) -> int:
    import contextlib
    import io as _io
    from . import demo
    from ..io.writers import atomic_path
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    buf = _io.StringIO()
    stdout = sys.stdout

    class _Both(_io.TextIOBase):  # print and keep a copy for DIR/demo.txt
        def write(self, s):
            stdout.write(s)
            buf.write(s)
            return len(s)

        def flush(self):
            stdout.flush()

    with contextlib.redirect_stdout(_Both()):
        demo.run_demo(out, size=args.size, pixel_size=args.pixel_size, radius=args.radius, angles=args.angles,
                      frames=args.frames, shift=args.shift, dose=args.dose, threads=args.threads,
                      seed=args.seed, config=args.config)
    with atomic_path(out / "demo.txt") as tmp:
        Path(tmp).write_text(buf.getvalue())
    return 0


# --------------------------------------------------------------------------------------- simulate
def cmd_simulate(args) -> int:
    from ..io.writers import write_angles, write_npy, write_xyz
    from ..model.simulate import angles_range, fept_particle, tilt_series
    from ase import Atoms

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    p = fept_particle(args.radius, orientation="random", antisite=0.02, thermal=0.05, seed=args.seed)
    angles = angles_range(-70, 70, args.angles, seed=args.seed)
    series = tilt_series(p.positions, p.species, angles, (args.size, args.size), args.pixel_size,
                         dose=args.dose if args.dose > 0 else None, n_frames=args.frames,
                         drift=args.drift if args.frames > 1 else 0.0,
                         shifts=None if args.shift == 0 else "random", max_shift=args.shift,
                         seed=args.seed, threads=args.threads)
    tilts = series.tilts
    if tilts.ndim == 4:  # angle-major pages, as a multi-page file holds them
        tilts = tilts.reshape(-1, *tilts.shape[2:])
    name = "tilts." + args.format
    path = out / name
    if args.format == "npy":
        write_npy(path, tilts)
    elif args.format == "tif":
        import tifffile
        from ..io.writers import atomic_path
        with atomic_path(path) as tmp:
            tifffile.imwrite(tmp, tilts)
    else:
        from ..io.writers import write_mrc
        # a tilt series in MRC: the pixel size in the header
        write_mrc(path, tilts, args.pixel_size)
    write_angles(out / "angles.txt", angles)
    truth = Atoms(symbols=list(p.species), positions=p.positions)
    write_xyz(out / "truth.xyz", truth)
    n_fe = int(np.sum(p.species == "Fe"))
    print(f"simulated {len(p.positions)} atoms ({n_fe} Fe, {len(p.positions) - n_fe} Pt); wrote {path} "
          f"({args.angles} angles x {args.frames} frame(s) of {args.size}x{args.size} px at "
          f"{args.pixel_size} Å/px), {out / 'angles.txt'}, {out / 'truth.xyz'}")
    print(f"try: aet run {path} --angles {out / 'angles.txt'} --pixel-size {args.pixel_size} --species Fe,Pt "
          f"--frames {args.frames} --out {out / 'result'}")
    return 0


# -------------------------------------------------------------------------------------------- run
def _print_summary(args, s: dict) -> None:
    if getattr(args, "quiet", False):
        return
    parts = []
    if s.get("atoms") is not None:
        counts = ", ".join(f"{n} {k}" for k, n in s["counts"].items())
        parts.append(f"{s['atoms']} atoms ({counts})")
    if s.get("r1_before") is not None:
        parts.append(f"R1 {s['r1_before']:.4f} -> {s['r1_after']:.4f}")
    if s.get("r1_holdout") is not None:
        parts.append(f"R1 on held-out images {s['r1_holdout']:.4f}")
    if s.get("resolution_A") is not None:
        bound = "≤ " if s.get("resolution_at_nyquist") else ""
        parts.append(f"half-set FSC resolution {bound}{s['resolution_A']:.2f} Å (0.143), "
                     f"{s['resolution_fsc05_A']:.2f} Å (0.5)")
    if s.get("resumed_steps"):
        parts.append("kept from before: " + ", ".join(s["resumed_steps"]))
    parts.append(f"{s['timings_s']['total']:.1f} s")
    print("; ".join(parts))
    out = Path(args.out)
    print("wrote " + ", ".join(str(out / n) for n in s["outputs"]))
    if s.get("report"):
        print(f"report: {s['report']}")


def _add_angle_convention(p) -> None:
    from ..model.geometry import ANGLE_CONVENTIONS
    p.add_argument("--angle-convention", choices=ANGLE_CONVENTIONS, default="aetcore",
                   help="the code whose Euler convention the angle file uses: aetcore (ZYZ, default), "
                        "genfire (MATLAB and Python; the same ZYZ) or resire (Rz(phi) Ry(theta) Rx(psi), "
                        "vector1/2/3 = z, y, x); see docs/angles.md")


def _check_tilts_suffix(path) -> None:
    from ..io.readers import TILT_SUFFIXES
    if Path(path).suffix.lower() not in TILT_SUFFIXES:
        raise _UsageError(f"TILTS: {path}: unknown format; expected one of {', '.join(TILT_SUFFIXES)}")


def cmd_run(args) -> int:
    from .folder import run
    _check_tilts_suffix(args.tilts)
    s = run(args.tilts, args.angles, args.pixel_size, args.species, args.out, frames=args.frames,
            config=args.config, threads=args.threads, dataset=args.dataset, seed=args.seed,
            angle_convention=args.angle_convention, extended=True if args.extended_object else None,
            resume=args.resume, progress=not args.quiet)
    _print_summary(args, s)
    return 0


def cmd_areas(args) -> int:
    """``aet areas``: 0 when every area ran and the stitched folder was written, 1 when some areas failed
    (the others are stitched), 2 for bad arguments or files (nothing ran)."""
    from .areas import areas
    kw = {k: getattr(args, k) for k in ("merge_distance", "edge_trim", "taper") if getattr(args, k) is not None}
    try:
        s = areas(args.files, crop_table=args.crop_table, volume_shape=args.volume_shape, angles=args.angles,
                  pixel_size=args.pixel_size, species=args.species, out=args.out,
                  angle_convention=args.angle_convention, config=args.config, scheduler=args.scheduler,
                  workers=args.workers, threads_per_worker=args.threads, retries=args.retries, resume=args.resume,
                  progress=not args.quiet, **kw)
    except RuntimeError as e:  # every area failed (each one's error is in the message)
        print(f"aet areas: error: {e}", file=sys.stderr)
        return 1
    if not args.quiet:
        st = s["stitch"]
        print(f"{len(s['areas'])} area(s) stitched: {s['atoms']} atoms ({st['traced']} traced, {st['merged']} "
              f"seen by more than one area, {st['dropped_not_owned']} dropped by their owner area); "
              f"{s['timings_s']['total']:.1f} s")
        for f in s["failed_areas"]:
            print(f"area {f['area']} ({f['file']}) failed: {f['error']}")
        print("wrote " + ", ".join(str(Path(args.out) / n) for n in s["outputs"]))
        print(f"report: {s['report']}")
    return 1 if s["failed_areas"] else 0


def cmd_step(args) -> int:
    from .folder import run_step
    kw = {}
    if args.command == "preprocess":
        _check_tilts_suffix(args.tilts)
        kw = dict(tilts_path=args.tilts, angles_path=args.angles, pixel_size=args.pixel_size,
                  species=args.species, frames=args.frames, dataset=args.dataset,
                  angle_convention=args.angle_convention)
    s = run_step(args.command, args.out, config=args.config, threads=args.threads, seed=args.seed,
                 progress=not args.quiet, **kw)
    _print_summary(args, s)
    return 0


def cmd_analyze(args) -> int:
    from .analyze import analyze_folder
    s = analyze_folder(args.out, lattice=args.lattice, lattice_constant=args.lattice_constant,
                       strain_sigma=args.strain_sigma, planes=tuple(args.planes), chemical=args.chemical,
                       min_grain_size=args.min_grain_size, threads=args.threads)
    if not args.quiet:
        print(f"analysed {s['atoms']} atoms; wrote {Path(args.out) / 'analysis'} and the report's "
              f"Analysis section ({Path(args.out) / 'report.html'})")
    return 0


def cmd_track(args) -> int:
    from .track import track_folders
    s = track_folders(args.models, args.out, order_key=args.order_key, register=not args.no_register,
                      threshold=args.threshold, core_threshold=args.core_threshold, min_size=args.min_size,
                      threads=args.threads)
    if not args.quiet:
        print(f"tracked {len(args.models)} time points; wrote {Path(args.out) / 'track'} and the report's "
              f"Tracking section ({Path(args.out) / 'report.html'})")
    return 0


def cmd_export(args) -> int:
    from .folder import export
    files = export(args.out, args.format, vacuum=args.vacuum)
    if not args.quiet:
        print("wrote " + ", ".join(map(str, files)))
    return 0


def cmd_compare(args) -> int:
    from ..io.models import read_model
    from ..quality.compare import compare_models, parse_region
    a, sa = read_model(args.a, variable=args.variable)
    b, sb = read_model(args.b, variable=args.variable)
    if sa is None and args.species_a:
        sa = np.full(len(a), args.species_a)
    if sb is None and args.species_b:
        sb = np.full(len(b), args.species_b)
    if args.shift_b is not None:
        try:
            shift = np.array([float(v) for v in args.shift_b.split(",")])
        except ValueError:
            shift = np.zeros(0)
        if shift.shape != (3,) or not np.isfinite(shift).all():
            raise ValueError(f"--shift-b: expected dx,dy,dz in Å, got {args.shift_b!r}")
        b = b + shift
    region = parse_region(args.region) if args.region else None
    c = compare_models(a, sa, b, sb, max_distance=args.tolerance, register=not args.no_register,
                       region=region)
    if not args.quiet:
        print(f"A: {args.a} ({len(a)} atoms), B: {args.b} ({len(b)} atoms)"
              + (f", region {args.region}" if region is not None else ""))
        print(c.summary())
    if args.json:
        from ..io.writers import write_json
        write_json(args.json, dict(c.as_dict(), a=str(args.a), b=str(args.b), region=args.region))
    return 0


# ----------------------------------------------------------------------------------------- parser
def _verbosity(p) -> None:
    g = p.add_mutually_exclusive_group()
    g.add_argument("--quiet", "-q", action="store_true", help="print nothing but errors")
    g.add_argument("--verbose", "-v", action="store_true", help="report every step")


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__
    ap = argparse.ArgumentParser(prog="aet", description="Atomic electron tomography: tilt series to atoms.")
    ap.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = ap.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("run", help="reconstruct a tilt series and trace its atoms",
                       description="Read a tilt series, (pre-process frames), align, reconstruct (GENFIRE), "
                                   "trace, classify and refine the atoms; write atoms.xyz, "
                                   "reconstruction.mrc, results.h5, summary.json and report.html into --out.")
    p.add_argument("tilts", metavar="TILTS", help="tilt series: .npy, .tif/.tiff, .mrc/.st/.ali, .h5/.hdf5, "
                   ".emd (Berkeley, Velox), .dm3/.dm4, .ser, .mat (MATLAB [dim1, dim2, k]) (images angle-major; n_angles*frames pages with --frames)")
    p.add_argument("--angles", metavar="FILE", help="tilt angles in degrees, one per line "
                   "(or phi theta psi per line); .txt, .csv, .rawtlt, .mat (default: the tilt file's own metadata)")
    p.add_argument("--pixel-size", required=True, type=_positive_float("pixel size"), metavar="P",
                   help="Å per pixel")
    p.add_argument("--species", required=True, type=_species, metavar="LIST", help="elements, e.g. Fe,Pt")
    p.add_argument("--out", required=True, metavar="DIR", help="output directory (created if needed)")
    p.add_argument("--frames", type=_int_at_least(1), default=1, metavar="N",
                   help="frames per angle (pre-processing registers and averages them); default 1")
    p.add_argument("--config", metavar="FILE.toml", help="configuration (see `aet config --defaults`)")
    p.add_argument("--dataset", metavar="NAME", help="HDF5 dataset (or MATLAB variable) holding the images")
    _add_angle_convention(p)
    p.add_argument("--extended-object", action="store_true",
                   help="the object extends beyond the field of view (a film): slab support, only the pixels "
                        "whose rays cross it inside the box in evidence and refine (default: detected, "
                        "preprocess.extended = \"auto\")")
    p.add_argument("--threads", type=_int_at_least(1), default=None, metavar="N", help="default: all cores")
    p.add_argument("--seed", type=int, default=None, help="random seed (default: reconstruct.seed of the config)")
    p.add_argument("--resume", action="store_true",
                   help="keep the steps an earlier (interrupted) run in --out finished with the same inputs "
                        "and settings")
    _verbosity(p)
    p.set_defaults(func=cmd_run)

    from ..steps.stitch import EDGE_TRIM, MERGE_DISTANCE, TAPER
    p = sub.add_parser("areas", help="sub-area AET: run overlapping areas on Dask and stitch them",
                       description="Run every area's tilt series through the chain of `aet run` (in parallel, "
                                   "one area per Dask task, each into DIR/areas/area<k>/), then stitch the atoms "
                                   "into one model in the full volume's frame (an atom traced by several areas "
                                   "is kept once) and the volumes into one volume of the covered region; write "
                                   "DIR as `aet run` does, with a map of the areas in the report.")
    p.add_argument("files", nargs="+", metavar="FILE",
                   help="one tilt series per area (as for `aet run`); the trailing number of the name is the "
                        "area's 1-based row of --crop-table (Projections_area7.mat: row 7)")
    p.add_argument("--crop-table", required=True, metavar="FILE.mat",
                   help="CropCen and CropHalf, (areas, 3) voxels along (dim1, dim2, dim3): area k is the 1-based "
                        "range CropCen(k)-CropHalf(k) .. CropCen(k)+CropHalf(k) of the full volume")
    p.add_argument("--volume-shape", required=True, metavar="N1,N2,N3",
                   help="the full volume, voxels along dim1,dim2,dim3; the stitched model's origin is its "
                        "index n//2")
    p.add_argument("--angles", required=True, metavar="FILE", help="the tilt angles of every area, degrees")
    _add_angle_convention(p)
    p.add_argument("--pixel-size", required=True, type=_positive_float("pixel size"), metavar="P",
                   help="Å per pixel")
    p.add_argument("--species", required=True, type=_species, metavar="LIST", help="elements, e.g. Ta")
    p.add_argument("--out", required=True, metavar="DIR", help="results folder (created if needed)")
    p.add_argument("--config", metavar="FILE.toml", help="configuration of every area's run (`aet config --defaults`)")
    p.add_argument("--scheduler", metavar="ADDRESS", default=None,
                   help="address of a running dask scheduler (default: a LocalCluster on this machine)")
    p.add_argument("--workers", type=_int_at_least(1), default=None, metavar="N",
                   help="LocalCluster worker processes = areas at once (default: one per area, at most one "
                        "per core); not with --scheduler")
    p.add_argument("--threads", type=_int_at_least(1), default=None, metavar="T",
                   help="OpenMP threads of each running area (default: the cores divided among the workers)")
    p.add_argument("--retries", type=_int_at_least(0), default=1, metavar="N",
                   help="further attempts for a failing area (default 1)")
    p.add_argument("--merge-distance", type=_positive_float("merge distance"), default=None, metavar="Å",
                   help=f"atoms of two areas closer than this are one atom (default {MERGE_DISTANCE:g} Å)")
    p.add_argument("--edge-trim", type=_int_at_least(0), default=None, metavar="N",
                   help=f"voxels at an area's edges left out of the stitched volume where another area covers "
                        f"them (default {EDGE_TRIM})")
    p.add_argument("--taper", type=_int_at_least(0), default=None, metavar="N",
                   help=f"voxels over which an area's volume weight rises from its trimmed edge to 1 (default {TAPER})")
    p.add_argument("--resume", action="store_true",
                   help="keep every area's steps finished by an earlier run with the same inputs and settings")
    _verbosity(p)
    p.set_defaults(func=cmd_areas)

    step_help = {
        "preprocess": "read the tilt series, register and average frames, background, normalisation",
        "align": "align the pre-processed series (tilt axis, centre of mass, common line, projection matching)",
        "reconstruct": "GENFIRE reconstruction of the aligned series (and the half-set FSC)",
        "trace": "trace atoms in the reconstruction",
        "classify": "classify the traced atoms into the species",
        "evidence": "drop, relabel and add atoms by the evidence (log-likelihood) of the aligned series",
        "refine": "refine positions, heights and B-factors against the aligned series",
    }
    for step, text in step_help.items():
        p = sub.add_parser(step, help=f"redo one step: {text}",
                           description=f"One step of `aet run`: {text}. Reads the previous step's results from "
                                       "DIR/steps, writes its own, removes those of the later steps and "
                                       "rewrites the folder's outputs (atoms.xyz, results.h5, summary.json, "
                                       "report.html) from the steps that remain.")
        if step == "preprocess":
            p.add_argument("tilts", metavar="TILTS", help="tilt series file (as for `aet run`)")
            p.add_argument("--angles", metavar="FILE",
                           help="tilt angles in degrees (default: the tilt file's own metadata)")
            p.add_argument("--pixel-size", required=True, type=_positive_float("pixel size"), metavar="P",
                           help="Å per pixel")
            p.add_argument("--species", required=True, type=_species, metavar="LIST", help="elements, e.g. Fe,Pt")
            p.add_argument("--frames", type=_int_at_least(1), default=1, metavar="N", help="frames per angle")
            p.add_argument("--dataset", metavar="NAME", help="HDF5 dataset (or MATLAB variable) holding the images")
            _add_angle_convention(p)
        p.add_argument("--out", required=True, metavar="DIR", help="the results folder")
        p.add_argument("--config", metavar="FILE.toml",
                       help="new settings, merged over the folder's configuration (the file needs only what "
                            "it changes)")
        p.add_argument("--threads", type=_int_at_least(1), default=None, metavar="N", help="default: all cores")
        p.add_argument("--seed", type=int, default=None, help="random seed")
        _verbosity(p)
        p.set_defaults(func=cmd_step)

    p = sub.add_parser("analyze", help="strain, chemical order, grains and bond order of a results folder",
                       description="Analyse DIR/atoms.xyz: neighbours and RDF, lattice fit, displacement and "
                                   "strain (Gaussian-smoothed), L1_0/L1_2 chemical order, Warren-Cowley, "
                                   "anti-sites and anti-phase boundaries, grains, Steinhardt bond order. "
                                   "Writes DIR/analysis/ (CSV, HDF5, PNG) and an Analysis section of "
                                   "DIR/report.html.")
    p.add_argument("--out", required=True, metavar="DIR", help="a results folder with atoms.xyz")
    p.add_argument("--lattice", default="fcc", choices=("fcc", "bcc", "sc", "diamond", "hcp"),
                   help="lattice of the fit (default fcc)")
    p.add_argument("--lattice-constant", type=_positive_float("lattice constant"), default=None, metavar="A",
                   help="bulk lattice constant in Å for absolute strain (default: fitted, strain relative "
                        "to the particle's mean lattice)")
    p.add_argument("--strain-sigma", type=_positive_float("strain sigma"), default=10.0, metavar="Å",
                   help="Gaussian smoothing of the strain, Å (default 10 = 1 nm)")
    p.add_argument("--planes", nargs="+", choices=("x", "y", "z"), default=["z"],
                   help="normals of the maps through the centre (default z)")
    p.add_argument("--chemical", choices=("auto", "on", "off"), default="auto",
                   help="chemical order analysis (auto: binary alloys on fcc)")
    p.add_argument("--min-grain-size", type=_int_at_least(1), default=10, metavar="N",
                   help="smallest grain listed, atoms (default 10)")
    p.add_argument("--threads", type=_int_at_least(1), default=None, metavar="N")
    _verbosity(p)
    p.set_defaults(func=cmd_analyze)

    p = sub.add_parser("track", help="follow atoms and nuclei through the time points of one particle (4D)",
                       description="Register the models of successive time points (ICP), pair their atoms, "
                                   "find nuclei by bond-orientational order and follow them (growth, "
                                   "fluctuation, dissolution, merging, division). Writes OUT/track/ (CSV, "
                                   "HDF5, PNG) and a Tracking section of OUT/report.html.")
    p.add_argument("models", nargs="+", metavar="MODEL",
                   help="results folders (with atoms.xyz) or .xyz files, one per time, in time order")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    p.add_argument("--order-key", default=None, metavar="NAME",
                   help="per-atom array of the XYZ files to use as the order parameter (default: the "
                        "normalised bond-orientational order)")
    p.add_argument("--threshold", type=float, default=0.5, help="order parameter of a nucleus atom (default 0.5)")
    p.add_argument("--core-threshold", type=float, default=0.7, help="order parameter of a core atom (default 0.7)")
    p.add_argument("--min-size", type=_int_at_least(1), default=13, metavar="N",
                   help="smallest nucleus, atoms (default 13)")
    p.add_argument("--no-register", action="store_true", help="the models are already in one frame")
    p.add_argument("--threads", type=_int_at_least(1), default=None, metavar="N")
    _verbosity(p)
    p.set_defaults(func=cmd_track)

    p = sub.add_parser(
        "batch", help="run many datasets (a manifest) with dask.distributed",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Run `aet run` on every dataset of a TOML manifest with dask.distributed: on a\n"
                    "LocalCluster by default, or on the workers of an existing scheduler. A failing\n"
                    "dataset is reported and retried, and never stops the others. Results:\n"
                    "<out>/<name>/ per dataset, and one table <out>/batch.csv (+ batch.json).",
        epilog="manifest:\n"
               "  [defaults]                     out, pixel_size, species, frames, config_file,\n"
               "                                 [defaults.config] overrides, seed, hdf5_dataset\n"
               "  [[dataset]]                    name, tilts, angles, and any default to override\n"
               "  relative paths resolve against the manifest's folder.\n"
               "exit status: 0 all datasets ok, 1 some failed, 2 bad manifest or arguments.\n"
               "SLURM (dask-jobqueue) and existing schedulers: see docs/batch.md.")
    p.add_argument("manifest", metavar="MANIFEST.toml", help="the batch manifest")
    p.add_argument("--scheduler", metavar="ADDRESS", default=None,
                   help="address of a running dask scheduler, e.g. tcp://10.0.0.5:8786 "
                        "(default: start a LocalCluster on this machine)")
    p.add_argument("--workers", type=_int_at_least(1), default=None, metavar="N",
                   help="LocalCluster worker processes = datasets at once (default: one per "
                        "dataset, at most one per core); not with --scheduler")
    p.add_argument("--threads-per-worker", type=_int_at_least(1), default=None, metavar="N",
                   help="OpenMP threads of each running dataset (default: the cores divided among "
                        "the workers; with --scheduler, all cores of the worker process)")
    p.add_argument("--retries", type=int, default=1, metavar="N",
                   help="further attempts for a failing dataset (default 1)")
    p.add_argument("--check", action="store_true", help="check the manifest and exit")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--quiet", "-q", action="store_true", help="no progress bar and no table")
    g.add_argument("--verbose", "-v", action="store_true", help="log more")
    p.set_defaults(func=cmd_batch)

    p = sub.add_parser("export", help="write the atomic model as POSCAR and CIF (for DFT)",
                       description="Write DIR/atoms.xyz as DIR/atoms.vasp (POSCAR) and DIR/atoms.cif through "
                                   "ASE, in a box cell with --vacuum Å of empty space around the particle.")
    p.add_argument("--out", required=True, metavar="DIR", help="the results folder")
    p.add_argument("--format", nargs="+", choices=("poscar", "cif", "xyz", "pdb"), default=["poscar", "cif"],
                   help="formats to write (default: poscar cif)")
    p.add_argument("--vacuum", type=float, default=10.0, help="empty space around the particle, Å (default 10)")
    _verbosity(p)
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("simulate", help="write a simulated FePt tilt series to try `aet run` on",
                       description="Simulate an FePt nanoparticle and its ADF-STEM tilt series; write "
                                   "tilts.<format>, angles.txt and truth.xyz into --out.")
    p.add_argument("--out", required=True, metavar="DIR")
    p.add_argument("--size", type=_int_at_least(16), default=64, metavar="N", help="image side in pixels (default 64)")
    p.add_argument("--pixel-size", type=_positive_float("pixel size"), default=0.4, metavar="P", help="Å per pixel (default 0.4)")
    p.add_argument("--radius", type=_positive_float("radius"), default=8.0, help="particle radius in Å (default 8)")
    p.add_argument("--angles", type=_int_at_least(2), default=31, metavar="N", help="projections over -70..+70 degrees (default 31)")
    p.add_argument("--frames", type=_int_at_least(1), default=1, metavar="N", help="frames per angle (default 1)")
    p.add_argument("--drift", type=float, default=0.3, help="frame drift in px per frame (with --frames > 1)")
    p.add_argument("--shift", type=float, default=0.0, help="largest random image shift in px (default 0: aligned)")
    p.add_argument("--dose", type=_non_negative_float("dose"), default=5e4,
                   help="electrons per Å^2; 0 for noise-free (default 5e4)")
    p.add_argument("--format", choices=("npy", "tif", "mrc"), default="npy", help="tilt-series file format")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=_int_at_least(1), default=None, metavar="N")
    p.set_defaults(func=cmd_simulate)

    p = sub.add_parser("demo", help="simulate FePt, run the whole chain and score it against the truth",
                       description="Simulate an FePt particle and a drifting, misaligned, noisy tilt series; "
                                   "run the whole chain of `aet run` on it and print recall, precision, "
                                   "RMSD (pm) and species accuracy against the truth, and the report's path.")
    p.add_argument("--out", default="aet-demo", metavar="DIR",
                   help="folder for the data, the results and demo.txt (default ./aet-demo)")
    p.add_argument("--size", type=_int_at_least(16), default=96, metavar="N", help="volume side in voxels (default 96)")
    p.add_argument("--angles", type=_int_at_least(4), default=51, metavar="N", help="projections (default 51)")
    p.add_argument("--frames", type=_int_at_least(1), default=3, metavar="N", help="frames per angle (default 3)")
    p.add_argument("--shift", type=float, default=2.0, help="largest random image shift, px (default 2)")
    p.add_argument("--dose", type=_positive_float("dose"), default=5e4, help="electrons per Å^2 (default 5e4)")
    p.add_argument("--pixel-size", type=_positive_float("pixel size"), default=0.4, metavar="P",
                   help="Å per pixel (default 0.4)")
    p.add_argument("--radius", type=_positive_float("radius"), default=None,
                   help="particle radius in Å (default: 14, or 30%% of the box for small sizes)")
    p.add_argument("--config", metavar="FILE.toml", help="configuration of the run")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=_int_at_least(1), default=None, metavar="N")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("config", help="print the default configuration or check a file",
                       description="Print every parameter of every step with its default as TOML, or "
                                   "check a configuration file.")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--defaults", action="store_true", help="print the default configuration (TOML)")
    g.add_argument("--check", metavar="FILE.toml", help="check a configuration file")
    p.set_defaults(func=cmd_config)

    p = sub.add_parser("compare", help="score one atomic model against another",
                       description="Score model B against model A (e.g. a published model): best global "
                                   "translation, one-to-one pairs within a tolerance, recall, precision, "
                                   "RMSD per axis and the species confusion. Models: .xyz, .mat (a (3, n) "
                                   "positions variable and a species variable), .csv/.txt (x y z [species]).")
    p.add_argument("a", metavar="A", help="the reference model")
    p.add_argument("b", metavar="B", help="the model scored")
    p.add_argument("--tolerance", type=_positive_float("tolerance"), default=1.0, metavar="Å", help="pairing distance (default 1 Å)")
    p.add_argument("--region", default=None, metavar="x0:x1,y0:y1,z0:z1",
                   help="count only atoms inside this box, Å in A's frame (an empty bound is open; write "
                        "--region=-20:20,:,: when it starts with a minus sign)")
    p.add_argument("--no-register", action="store_true", help="the models are already in one frame")
    p.add_argument("--shift-b", default=None, metavar="dx,dy,dz",
                   help="add this offset (Å) to B's positions first (e.g. a sub-area's centre; "
                        "--shift-b=-1,0,0 for a leading minus sign)")
    p.add_argument("--species-a", default=None, metavar="S", help="species of every atom of A when its file has none")
    p.add_argument("--species-b", default=None, metavar="S", help="species of every atom of B when its file has none")
    p.add_argument("--variable", default=None, metavar="NAME", help=".mat: the positions variable (both files)")
    p.add_argument("--json", default=None, metavar="FILE", help="also write the scores as JSON")
    _verbosity(p)
    p.set_defaults(func=cmd_compare)
    return ap


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.WARNING
    if getattr(args, "verbose", False):
        level = logging.INFO
    if getattr(args, "quiet", False):
        level = logging.ERROR
    logging.basicConfig(level=level, format="aet: %(message)s")
    log.setLevel(level)
    from .._util.optional import MissingExtraError
    try:
        return args.func(args)
    except (_UsageError, ValueError, TypeError, FileNotFoundError, PermissionError) as e:
        print(f"aet {args.command}: error: {e}", file=sys.stderr)
        return 2
    except MemoryError as e:  # an estimate refused before the work: the message names the option to lower
        print(f"aet {args.command}: error: not enough memory: {e}", file=sys.stderr)
        return 1
    except MissingExtraError as e:  # an optional dependency: the message names the extra to install
        print(f"aet {args.command}: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("aet: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
