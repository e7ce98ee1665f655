"""``aet areas``: sub-area AET. The tilt series of overlapping areas of one object (a film), each run
through the chain of ``aet run`` in parallel on Dask, then stitched into one atomic model and one
volume in the frame of the full volume.

``areas(files, crop_table=..., volume_shape=..., ...)``:

1. Each file's trailing number (``Projections_area7.mat`` -> 7) is its 1-based row of the crop table
   (``CropCen``, ``CropHalf``: :func:`read_crop_table`); the file's image size must be that row's
   ``2 · CropHalf + 1`` along ``dim1`` and ``dim2`` (:func:`plan_areas`). Everything is checked
   before any area runs.
2. The areas run as the datasets of one :func:`aetcore.app.batch.batch` (one area per Dask task, a
   ``LocalCluster`` or ``scheduler``; retries; ``DIR/areas/batch.csv``), each the whole
   :func:`aetcore.app.folder.run` into its own results folder ``DIR/areas/area<k>/``.
3. :func:`stitch_folders` reads every finished area's ``atoms.xyz`` and reconstruction and stitches
   them (:mod:`aetcore.steps.stitch`: atoms matched across areas, each kept once by the area that
   owns it; volumes averaged with weights tapering toward each area's edges), and writes the
   results folder ``DIR`` as ``aet run`` does (``atoms.xyz``, ``reconstruction.mrc`` of the covered
   region, ``results.h5``, ``summary.json``, ``report.html`` through :mod:`aetcore.report.run`) plus
   the report's map of the areas (:mod:`aetcore.report.areas`).

Positions in ``DIR/atoms.xyz`` are in Å in the full-volume frame: ``x`` along ``dim1``, ``y`` along
``dim2``, ``z`` along ``dim3``, origin at the 0-based index ``volume_shape // 2``.
"""
from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..steps.stitch import EDGE_TRIM, MERGE_DISTANCE, TAPER

log = logging.getLogger("aetcore.areas")

__all__ = ["areas", "plan_areas", "read_crop_table", "area_number", "stitch_folders", "AreaSpec",
           "parse_volume_shape"]

_NUMBER = re.compile(r"(\d+)$")
AREAS_DIR = "areas"  # DIR/areas/area<k>/: the areas' own results folders (and batch.csv)


@dataclass(frozen=True)
class AreaSpec:
    """One area: its number (1-based row of the crop table), tilt-series file and crop row."""
    number: int
    file: Path
    centre: tuple   # CropCen, 1-based voxel index (dim1, dim2, dim3)
    half: tuple     # CropHalf, voxels (dim1, dim2, dim3)

    @property
    def name(self) -> str:
        return f"area{self.number}"


def area_number(path) -> int:
    """The trailing number of a file's name stem (``Projections_area7.mat`` -> 7).

    Raises
    ------
    ValueError
        Naming the file when its stem does not end in a number.
    """
    m = _NUMBER.search(Path(path).stem)
    if m is None:
        raise ValueError(f"FILES: {path}: no trailing area number in the file name (expected e.g. "
                         f"Projections_area7.mat, area 7 = row 7 of --crop-table)")
    return int(m.group(1))


def parse_volume_shape(text) -> tuple:
    """``"401,351,341"`` (or a sequence of 3 ints) as a tuple of three positive ints, voxels
    ``(dim1, dim2, dim3)``."""
    parts = text.split(",") if isinstance(text, str) else list(text)
    try:
        shape = tuple(int(str(v).strip()) for v in parts)
    except ValueError:
        shape = ()
    if len(shape) != 3 or any(n < 1 for n in shape):
        raise ValueError(f"--volume-shape: expected three positive integers dim1,dim2,dim3 (voxels), got {text!r}")
    return shape


def read_crop_table(path) -> tuple:
    """``(CropCen, CropHalf)`` of a crop table (``.mat``, v5 or v7.3), each ``(areas, 3)`` int64.

    ``CropCen[k - 1]`` is the 1-based full-volume voxel index of area ``k``'s centre and
    ``CropHalf[k - 1]`` its half-size (voxels), columns ``(dim1, dim2, dim3)``.
    """
    from ..io.matlab import read_mat_variable
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"--crop-table: {p}: no such file")
    out = []
    for name in ("CropCen", "CropHalf"):
        try:
            a = read_mat_variable(p, name)
        except ValueError as e:
            raise ValueError(f"--crop-table: {e}") from None
        a = np.asarray(a)
        if a.ndim != 2 or a.shape[1] != 3 or a.dtype.kind not in "iuf" or not np.all(np.isfinite(a)) \
                or not np.all(a == np.round(a)):
            raise ValueError(f"--crop-table: {p}: {name}: expected an (areas, 3) array of integer voxel "
                             f"counts, got shape {a.shape} dtype {a.dtype}")
        out.append(a.astype(np.int64))
    cen, half = out
    if cen.shape != half.shape:
        raise ValueError(f"--crop-table: {p}: CropCen {cen.shape} and CropHalf {half.shape} differ in shape")
    if np.any(half < 0) or np.any(cen < 1):
        raise ValueError(f"--crop-table: {p}: expected CropCen >= 1 (1-based) and CropHalf >= 0")
    return cen, half


def plan_areas(files, crop_table, volume_shape) -> list:
    """Check the files against the crop table and the full volume, before anything runs.

    Parameters
    ----------
    files : sequence of paths
        Tilt series, one per area; each file's trailing number is its row of the crop table.
    crop_table : path
        The crop table (:func:`read_crop_table`).
    volume_shape : (3,) ints or "n1,n2,n3"
        The full volume, voxels ``(dim1, dim2, dim3)``.

    Returns
    -------
    list of AreaSpec
        In the order of `files`.

    Raises
    ------
    ValueError
        Naming the file or argument: no trailing number, a number that is not a row of the table, an
        area given twice, a crop row outside the full volume, or images whose size is not the row's
        ``2 · CropHalf + 1`` (dim1 × dim2).
    """
    from ..io.readers import TILT_SUFFIXES, read_tilt_metadata
    shape = np.asarray(parse_volume_shape(volume_shape), np.int64)
    if not files:
        raise ValueError("FILES: expected at least one tilt-series file")
    cen, half = read_crop_table(crop_table)
    specs, seen = [], {}
    for f in files:
        p = Path(f)
        k = area_number(p)
        if not 1 <= k <= cen.shape[0]:
            raise ValueError(f"FILES: {p}: area {k} is not a row of --crop-table {crop_table} "
                             f"(rows 1..{cen.shape[0]})")
        if k in seen:
            raise ValueError(f"FILES: {p}: area {k} is given twice (also {seen[k]})")
        seen[k] = p
        if not p.is_file():
            raise ValueError(f"FILES: {p}: no such file")
        if p.suffix.lower() not in TILT_SUFFIXES:
            raise ValueError(f"FILES: {p}: unknown format; expected one of {', '.join(TILT_SUFFIXES)}")
        c, h = cen[k - 1], half[k - 1]
        if np.any(c - h < 1) or np.any(c + h > shape):
            raise ValueError(f"--crop-table: row {k} ({p.name}): voxels {(c - h).tolist()}..{(c + h).tolist()} "
                             f"(1-based) leave --volume-shape {tuple(shape.tolist())}")
        n, ny, nx = read_tilt_metadata(p)["shape"]
        want = (int(2 * h[0] + 1), int(2 * h[1] + 1))
        if (nx, ny) != want:
            raise ValueError(f"FILES: {p}: images of {nx} x {ny} px (dim1 x dim2), but row {k} of --crop-table "
                             f"gives 2*CropHalf+1 = {want[0]} x {want[1]}")
        specs.append(AreaSpec(k, p, tuple(int(v) for v in c), tuple(int(v) for v in h)))
    return specs


def areas(files, *, crop_table, volume_shape, angles, pixel_size: float, species, out,
          angle_convention: str = "aetcore", config=None, scheduler=None, workers=None, threads_per_worker=None,
          retries: int = 1, merge_distance: float = MERGE_DISTANCE, edge_trim: int = EDGE_TRIM, taper: int = TAPER,
          resume: bool = False, progress: bool = False) -> dict:
    """Sub-area AET: run every area through ``aet run`` on Dask and stitch them; the body of ``aet areas``.

    Parameters
    ----------
    files : sequence of paths
        One tilt series per area (any format of ``aet run``; MATLAB ``[dim1, dim2, k]``); the
        trailing number of each name is the area's 1-based row of `crop_table`.
    crop_table : path
        ``.mat`` with ``CropCen`` and ``CropHalf`` (``(areas, 3)``, voxels, 1-based, ``(dim1, dim2,
        dim3)``): area ``k`` is ``CropCen(k) - CropHalf(k) ... CropCen(k) + CropHalf(k)``.
    volume_shape : (3,) ints or "n1,n2,n3"
        The full volume, voxels ``(dim1, dim2, dim3)``; its origin (index ``n // 2``) is the origin of
        the stitched model.
    angles : path
        The angle file shared by every area, degrees.
    pixel_size : float
        Å per pixel.
    species : sequence of str or "Ta"
        The elements present.
    out : path
        The results folder: the stitched results in ``out``, each area's in ``out/areas/area<k>``.
    angle_convention : {"aetcore", "genfire", "resire"}
        The convention of the angle file (:func:`aetcore.app.folder.run`).
    config : path, dict or None
        The configuration of every area's run (``aet run --config``).
    scheduler, workers, threads_per_worker, retries
        The Dask session, as :func:`aetcore.app.batch.batch` (one area per task; ``threads_per_worker``
        OpenMP threads per running area).
    merge_distance : float
        Å: atoms of two areas closer than this are one atom (:data:`aetcore.steps.stitch.MERGE_DISTANCE`).
    edge_trim, taper : int
        Voxels: an area's volume weight is 0 on its outer `edge_trim` voxels and rises to 1 over
        `taper` voxels (:func:`aetcore.steps.stitch.edge_weights`).
    resume : bool
        Keep every area's finished steps from an earlier run with the same inputs and settings.
    progress : bool
        Progress bar of the areas.

    Returns
    -------
    dict
        The summary also written to ``out/summary.json`` (:func:`stitch_folders`), with the Dask
        session and each area's status, R1, atoms and time.
    """
    from .._util.validate import positive, species_symbols
    from .batch import DatasetSpec, Manifest, batch
    from .folder import _config, _out_folder
    from ..model.geometry import ANGLE_CONVENTIONS
    from ..io.readers import read_angles
    from ..steps.stitch import check_crop_table
    t0 = time.perf_counter()
    out = _out_folder(out).resolve()
    shape = parse_volume_shape(volume_shape)
    specs = plan_areas(files, crop_table, shape)
    pixel_size = positive(pixel_size, "pixel_size")
    species = species_symbols(species, text=True)
    if angle_convention not in ANGLE_CONVENTIONS:
        raise ValueError(f"angle_convention: expected one of {', '.join(ANGLE_CONVENTIONS)}, got {angle_convention!r}")
    ap = Path(angles)
    if not ap.is_file():
        raise ValueError(f"--angles: {ap}: no such file")
    read_angles(ap)  # refused before any work
    positive(merge_distance, "merge_distance")
    check_crop_table(np.array([s.centre for s in specs]), np.array([s.half for s in specs]), np.array(shape))
    cfg = _config(config)

    root = out / AREAS_DIR
    root.mkdir(parents=True, exist_ok=True)
    datasets = tuple(DatasetSpec(name=s.name, tilts=s.file.resolve(), angles=ap.resolve(), pixel_size=pixel_size,
                                 species=species, frames=1, config=cfg, seed=None, hdf5_dataset=None,
                                 out=root / s.name, angle_convention=angle_convention) for s in specs)
    res = batch(Manifest(path=Path(crop_table).resolve(), out=root, datasets=datasets), scheduler=scheduler,
                workers=workers, threads_per_worker=threads_per_worker, retries=retries, progress=progress,
                resume=resume)
    rows = {r["name"]: r for r in res.rows}
    ok = [s for s in specs if rows[s.name]["status"] == "ok"]
    if not ok:
        raise RuntimeError("every area failed: "
                           + "; ".join(f"{s.name}: {rows[s.name]['error']}" for s in specs))
    t_areas = time.perf_counter() - t0
    summary = stitch_folders([root / s.name for s in ok], ok, shape, pixel_size, species, out,
                             merge_distance=merge_distance, edge_trim=edge_trim, taper=taper,
                             runs=[rows[s.name] for s in ok],
                             failed=[{"area": s.number, "file": str(s.file), "error": rows[s.name]["error"]}
                                     for s in specs if s not in ok],
                             extra={"scheduler": res.scheduler, "threads_per_worker": res.threads_per_worker,
                                    "areas_wall_s": t_areas, "angles": str(ap.resolve()),
                                    "angle_convention": angle_convention,
                                    "crop_table": str(Path(crop_table).resolve())},
                             t_start=t0)
    return summary


def _area_volume(folder: Path) -> np.ndarray:
    """The reconstruction of an area's results folder (its reconstruct step file)."""
    from ..io.results import _step_path, load_step
    p = _step_path(folder, "reconstruct")
    if not p.is_file():
        raise ValueError(f"{folder}: no reconstruction ({p}); run the area with `aet run` first")
    return load_step(p)[0]["volume"]


def stitch_folders(folders, specs, volume_shape, pixel_size: float, species, out, *,
                   merge_distance: float = MERGE_DISTANCE, edge_trim: int = EDGE_TRIM, taper: int = TAPER,
                   runs=None, failed=(), extra=None, t_start=None) -> dict:
    """Stitch the results folders of areas into the results folder `out`.

    Parameters
    ----------
    folders : sequence of paths
        One ``aet run`` results folder per area (``atoms.xyz`` and ``steps/reconstruct.h5``).
    specs : sequence of AreaSpec
        The areas of `folders`, in the same order (their crop rows).
    volume_shape : (3,) ints
        The full volume, voxels ``(dim1, dim2, dim3)``.
    pixel_size : float
        Å per voxel.
    species : sequence of str
        The species of the runs, in their order.
    out : path
        The stitched results folder (created if needed).
    merge_distance, edge_trim, taper
        As :func:`areas`.
    runs : sequence of dict, optional
        The :func:`aetcore.app.batch.batch` row of each area (status, R1, time); default: read from
        each folder's ``summary.json``.
    failed : sequence of dict
        Areas that did not run (listed in the summary).
    extra : dict, optional
        More entries of the summary's ``input``.
    t_start : float, optional
        ``time.perf_counter()`` at the start of the whole command (for the total time).

    Returns
    -------
    dict
        The summary written to ``out/summary.json``: ``atoms``, ``counts``, ``areas`` (per area: number,
        file, crop row, offset in Å, atoms traced, atoms kept, R1 before and after refinement, time),
        ``stitch`` (:meth:`aetcore.steps.stitch.StitchedAtoms.as_dict` and the volume's start index),
        ``timings_s``, ``outputs``, ``report``.
    """
    import json

    from ase import Atoms

    from .._util.validate import positive, species_symbols
    from ..io.readers import read_atoms
    from ..io.tables import write_group
    from ..io.writers import atomic_path, write_json, write_mrc, write_xyz
    from ..steps.stitch import area_offsets, stitch_atoms, stitch_volumes
    t0 = time.perf_counter()
    t_start = t0 if t_start is None else t_start
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    pixel_size = positive(pixel_size, "pixel_size")
    species = species_symbols(species, text=True)
    folders = [Path(f) for f in folders]
    if len(folders) != len(specs) or not folders:
        raise ValueError(f"folders: expected one results folder per area ({len(specs)}), got {len(folders)}")
    centres = np.array([s.centre for s in specs], np.int64)
    halves = np.array([s.half for s in specs], np.int64)
    shape = np.asarray(volume_shape, np.int64)
    models = [read_atoms(f / "atoms.xyz", min_atoms=0, name=f"area {s.number}") for f, s in zip(folders, specs)]
    if runs is None:
        runs = []
        for f in folders:
            s = json.loads((f / "summary.json").read_text())
            runs.append({"status": "ok", "r1_before": s.get("r1_before"), "r1_after": s.get("r1_after"),
                         "time_s": (s.get("timings_s") or {}).get("total")})

    st = stitch_atoms([m.positions for m in models], centres, halves, shape, pixel_size,
                      merge_distance=merge_distance, edge_trim=edge_trim, taper=taper)
    symbols = [models[a].get_chemical_symbols()[i] for a, i in zip(st.area, st.index)]
    atoms = Atoms(symbols=symbols, positions=st.positions)
    common = set.intersection(*(set(m.arrays) for m in models)) - {"numbers", "positions"}
    for key in sorted(common):
        atoms.set_array(key, np.array([models[a].get_array(key)[i] for a, i in zip(st.area, st.index)])
                        .reshape((len(st),) + models[0].get_array(key).shape[1:]))
    numbers = np.array([s.number for s in specs])
    atoms.set_array("area", numbers[st.area].astype(np.int64))
    atoms.set_array("areas_seen", st.seen)
    atoms.info.update(pixel_size=pixel_size, frame="full volume, origin at index volume_shape // 2",
                      volume_shape=",".join(map(str, shape.tolist())))
    write_xyz(out / "atoms.xyz", atoms)

    volume, start = stitch_volumes([lambda f=f: _area_volume(f) for f in folders], centres, shape,
                                   edge_trim=edge_trim, taper=taper)
    write_mrc(out / "reconstruction.mrc", volume, pixel_size)
    n_v = np.array(volume.shape[::-1])
    # Å of the stitched volume's voxel n // 2 in the full-volume frame (its report's origin)
    volume_centre = (start + n_v // 2 - shape // 2) * pixel_size

    offsets = area_offsets(centres, shape, pixel_size)
    kept = np.bincount(st.area, minlength=len(specs))
    table = []
    for k, (s, f, m, r) in enumerate(zip(specs, folders, models, runs)):
        table.append({"area": s.number, "file": str(s.file), "out": str(f), "crop_centre": list(s.centre),
                      "crop_half": list(s.half), "offset_A": offsets[k].tolist(), "atoms_traced": len(m),
                      "atoms_kept": int(kept[k]), "r1_before": r.get("r1_before"), "r1_after": r.get("r1_after"),
                      "time_s": r.get("time_s")})
    counts = {s: symbols.count(s) for s in species}
    stitch = dict(st.as_dict(), merge_distance=float(merge_distance), edge_trim=int(edge_trim), taper=int(taper),
                  volume_shape=list(volume.shape), volume_start_index=start.tolist(),
                  volume_centre_A=volume_centre.tolist())
    timings = {f"area{s['area']}": s["time_s"] for s in table if s["time_s"] is not None}
    t_stitch = time.perf_counter() - t0
    timings["stitch"] = t_stitch
    summary = {
        "input": {"pixel_size": pixel_size, "species": list(species), "volume_shape": shape.tolist(),
                  "files": [str(s.file) for s in specs], **(extra or {})},
        "atoms": len(atoms), "counts": counts,
        "areas": table, "failed_areas": list(failed), "stitch": stitch,
        "frame": "Å, x along dim1, y along dim2, z along dim3, origin at the full volume's index n // 2",
        "timings_s": timings, "outputs": [],
    }
    with atomic_path(out / "results.h5") as tmp:
        import h5py
        with h5py.File(tmp, "w") as f5:
            write_group(f5.create_group("atoms"), {
                "positions": atoms.positions, "symbols": np.asarray(symbols, dtype=str),
                "area": atoms.get_array("area"), "areas_seen": st.seen,
                **{k: atoms.get_array(k) for k in sorted(common)}})
            write_group(f5.create_group("areas"), {
                "area": numbers, "crop_centre": centres, "crop_half": halves, "offset_A": offsets,
                "atoms_traced": np.array([t["atoms_traced"] for t in table]), "atoms_kept": kept,
                "pair_distances_A": st.pair_distances}, meta={"areas": table, "failed": list(failed)})
            write_group(f5.create_group("stitch"), {"volume": volume}, meta=stitch)
    report = _report(out, volume, pixel_size, species, atoms, summary, specs, offsets, halves, st, shape)
    timings["total"] = time.perf_counter() - t_start
    summary["report"] = None if report is None else str(report)
    summary["outputs"] = ["atoms.xyz", "reconstruction.mrc", "results.h5", "summary.json", "report.html"]
    write_json(out / "summary.json", summary)
    log.info("stitched %d areas: %d atoms (%d traced, %d merged, %d not owned) (%.1f s)", len(specs), len(atoms),
             st.n_traced, st.n_merged, st.n_not_owned, t_stitch)
    return summary


def _report(out, volume, pixel_size, species, atoms, summary, specs, offsets, halves, st, shape):
    """report.html: the sections of ``aet run`` (report.run) on the stitched volume and atoms, and
    the map of the areas (report.areas)."""
    from ..report.areas import write_areas_section
    from ..report.run import write_run_report
    write_run_report(out, volume=volume, pixel_size=pixel_size, species=species,
                     symbols=np.asarray(atoms.get_chemical_symbols()), positions=atoms.positions,
                     intensity=atoms.get_array("intensity") if "intensity" in atoms.arrays
                     else np.full(len(atoms), np.nan), summary=summary)
    return write_areas_section(out, numbers=[s.number for s in specs], offsets=offsets, halves=halves,
                               pixel_size=pixel_size, rows=summary["areas"], stitch=summary["stitch"],
                               positions=atoms.positions)
