"""Measured data: the amorphous Ta film of Yuan et al., Nat. Mater. 21, 95 (2022) (../shared/data/ta_film).

For each sub-area (default: area 1), the source's own files are read as they are (MATLAB
``Proj_sub [dim1, dim2, k]``, ``angles.mat`` in the RESIRE convention), and:

1. **aetcore chain**: GENFIRE in a box that follows the data (``dim1 x dim2 x dim1`` voxels, the
   source's own box, not a cube of the largest side), box support, then trace, classify and refine
   (``aetcore.atoms_from_tilts``; alignment and pre-processing are off: the series is aligned and
   denoised by the source).
2. **RESIRE volume traced by aetcore**: the source's RESIRE reconstruction of the area
   (``resire_reconstructions/ReconObj_sub{k}.mat``, only areas 1, 5, 10, 17, 20, 25) through the
   same trace and classify, no refinement: a reference for what the tracing gives on a better
   volume.
3. **+ evidence**: rows 1 and 2 followed by the evidence decision of issue 12
   (``aetcore.steps.evidence.decide_atoms``: atoms dropped, and added, by the log-likelihood of the
   measured projections with and without them), which is what makes a single-species model drop
   its noise peaks (the classification's non-atom rule cannot, with one species).
4. **published model**: the source's final model (R1 only).

Scores are against the published model (``aetcore.quality.compare.compare_models``: best global
translation, one-to-one pairs within 1 Å) inside the film: laterally 3 Å inside the area's box, and
along z between the lowest and highest published atom of that box, 1 Å beyond. R1 of every model
against the measured projections is computed the same way for each: the model's atoms inside the
area's box (all z), Gaussian Ta atoms projected by aetcore, height and a constant background fitted
by least squares, B the best of 2–20 Å² (R1 = sum|fit - measured| / sum|measured|).

Run: ``PYTHONPATH=python python bench/real_film.py [--areas 1 5] [--json out.json]``.

``--score-run DIR --areas k`` instead scores the results folder of an ``aet run`` of area k (its
``atoms.xyz``, the same scores and R1, the time per step and the extended-object decision of
``summary.json``).

``--aet-areas 1,5,10 --work DIR`` runs those areas through ``aet areas`` (``aetcore.app.areas.areas``:
every area through the chain of ``aet run`` on Dask, then stitched in the full-volume frame) and scores
the stitched model against the published one (no frame conversion: both are in Å about index n // 2 of
the 401 x 351 x 341 volume; the best translation found by the matching is printed and should be ~0)
in the film and 3 Å inside the covered region's lateral edges (z: the published atoms' extent there,
+-1 Å). Next to it the reference: the source's RESIRE volumes of the same areas (when every chosen
area has one: 1, 5, 10, 17, 20, 25) traced by aetcore as above and stitched by the same
``aetcore.steps.stitch.stitch_atoms``. R1 of the stitched, reference and published models per area
(atoms moved into the area's frame, fitted as above), the time per area and the distances between
the two areas' positions of the atoms traced twice. ``--stitch-only`` re-stitches the areas of an
earlier run of ``DIR`` (``aet areas --resume``: finished steps are kept).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
DATA = HERE.parent.parent / "shared" / "data" / "ta_film"
PIXEL = 0.3216          # Å (README)
FULL_CENTRE = np.array([201.0, 176.0, 171.0])  # 1-based centre of the 401 x 351 x 341 full volume
MARGIN = 3.0            # Å inside the area's lateral edges
TOLERANCE = 1.0         # Å, pairing distance


def load_area(k: int):
    """Tilts (k, dim2, dim1), ZYZ angles, the published model in the area's frame (Å about index
    n // 2 of its box) and the area's half-sizes (voxels)."""
    from aetcore.io import read_angles, read_tilts
    from aetcore.io.matlab import mat_model, read_mat_variable
    from aetcore.model.geometry import angles_from_convention
    tilts = read_tilts(DATA / "projections" / f"Projections_area{k}.mat")
    angles = angles_from_convention(read_angles(DATA / "angles.mat", tilts.shape[0]), "resire")
    centre = read_mat_variable(DATA / "alignPara.mat", "CropCen")[k - 1].astype(float)
    half = read_mat_variable(DATA / "alignPara.mat", "CropHalf")[k - 1].astype(float)
    model, _ = mat_model(DATA / "published_model_rows1-2.mat")
    published = model + (FULL_CENTRE - centre) * PIXEL
    assert tilts.shape[1:] == (2 * half[1] + 1, 2 * half[0] + 1), (tilts.shape, half)
    return tilts, angles, published, half


def film_region(published, half):
    """Laterally MARGIN inside the area's box; along z the published atoms' extent there, +-1 Å."""
    lateral = half[:2] * PIXEL - MARGIN
    inside = np.all(np.abs(published[:, :2]) <= lateral, axis=1)
    z = published[inside, 2]
    return np.array([[-lateral[0], lateral[0]], [-lateral[1], lateral[1]], [z.min() - 1.0, z.max() + 1.0]])


def score(published, positions, region) -> dict:
    from aetcore.quality.compare import compare_models
    c = compare_models(published, None, positions, None, max_distance=TOLERANCE, region=region)
    above = np.count_nonzero(positions[:, 2] + c.translation[2] > region[2, 1])
    below = np.count_nonzero(positions[:, 2] + c.translation[2] < region[2, 0])
    return {"recall": c.recall, "precision": c.precision, "rmsd_pm": c.rmsd_pm,
            "rmsd_axes_pm": [float(v) for v in c.rmsd_axes_pm], "n_published": c.n_a, "n_model": c.n_b,
            "n_pairs": c.n_pairs, "outside_film_z": int(above + below), "n_total": int(len(positions))}


def r1(positions, tilts, angles, half) -> dict:
    """R1 of a model against the measured series, height, background and B fitted (module docstring)."""
    from aetcore.model.projection import project_atoms
    box = half[:2] * PIXEL + 0.5 * PIXEL
    pos = positions[np.all(np.abs(positions[:, :2]) <= box, axis=1)]
    y = tilts.astype(np.float64).ravel()
    best = None
    for b in (2.0, 4.0, 6.0, 8.0, 10.0, 12.0, 15.0, 20.0):
        x = project_atoms(pos, ["Ta"] * len(pos), angles, tilts.shape[1:], PIXEL, heights=1.0,
                          b_factors=b).astype(np.float64).ravel()
        A = np.column_stack([x, np.ones_like(x)])
        coef = np.linalg.lstsq(A, y, rcond=None)[0]
        value = float(np.abs(A @ coef - y).sum() / np.abs(y).sum())
        if best is None or value < best["r1"]:
            best = {"r1": value, "b_factor": b, "n_atoms": int(len(pos))}
    return best


def _evidence_row(atoms_positions, tilts, angles, published, region, half, threads) -> dict:
    from aetcore.steps.evidence import decide_atoms
    t0 = time.perf_counter()
    d = decide_atoms(atoms_positions, ["Ta"] * len(atoms_positions), tilts, angles, PIXEL, threads=threads)
    row = score(published, d.positions, region)
    row.update(r1(d.positions, tilts, angles, half), seconds=time.perf_counter() - t0)
    return row


def run_area(k: int, threads=None, iterations: int = 100, evidence: bool = True) -> dict:
    import aetcore
    from aetcore.io.matlab import mat_volume
    from aetcore.steps.chain import atoms_from_volume
    tilts, angles, published, half = load_area(k)
    region = film_region(published, half)
    ny, nx = tilts.shape[1:]
    out = {"area": k, "shape": list(tilts.shape), "region_A": region.tolist()}

    t0 = time.perf_counter()
    atoms = aetcore.atoms_from_tilts(
        tilts, angles, PIXEL, ["Ta"], threads=threads, seed=0, progress=False,
        genfire_options={"volume_shape": (nx, ny, nx), "support": "box", "iterations": iterations})
    seconds = time.perf_counter() - t0
    chain = score(published, atoms.positions, region)
    chain.update(r1(atoms.positions, tilts, angles, half), seconds=seconds,
                 timings={s: float(v) for s, v in atoms.info["timings"].items()},
                 refine_r1=[atoms.info.get("r1_before"), atoms.info.get("r1_after")])
    out["aetcore_chain"] = chain
    print(f"area {k}: aetcore chain {json.dumps(chain)}", flush=True)
    if evidence:
        out["aetcore_chain_evidence"] = _evidence_row(atoms.positions, tilts, angles, published, region, half,
                                                      threads)
        out["aetcore_chain_evidence"]["seconds"] += seconds

    resire = DATA / "resire_reconstructions" / f"ReconObj_sub{k}.mat"
    if resire.exists():
        volume = mat_volume(resire)
        t0 = time.perf_counter()
        ref = atoms_from_volume(volume, tilts, angles, PIXEL, ["Ta"], refine=False, threads=threads, seed=0)
        row = score(published, ref.positions, region)
        row.update(r1(ref.positions, tilts, angles, half), seconds=time.perf_counter() - t0)
        out["resire_volume_traced"] = row
        print(f"area {k}: RESIRE volume traced {json.dumps(row)}", flush=True)
        if evidence:
            out["resire_volume_traced_evidence"] = _evidence_row(ref.positions, tilts, angles, published,
                                                                 region, half, threads)
    out["published"] = r1(published, tilts, angles, half)
    return out


def score_run(k: int, folder) -> dict:
    """The scores and R1 of the ``atoms.xyz`` of an ``aet run`` results folder of area `k`, with its
    time per step and extended-object decision (``summary.json``)."""
    from aetcore.io.readers import read_atoms
    tilts, angles, published, half = load_area(k)
    folder = Path(folder)
    positions = read_atoms(folder / "atoms.xyz").positions
    row = score(published, positions, film_region(published, half))
    row.update(r1(positions, tilts, angles, half))
    summary = json.loads((folder / "summary.json").read_text())
    row.update(seconds=summary["timings_s"].get("total"), timings=summary["timings_s"],
               extended=summary.get("extended"))
    return row


def _covered_region(offsets, halves, published):
    """The film inside the covered region: laterally MARGIN inside the union's bounding box of the
    area boxes (a row of overlapping areas covers it), along z the published atoms' extent there +-1 Å."""
    ext = (np.asarray(halves, float)[:, :2] + 0.5) * PIXEL
    lo = (offsets[:, :2] - ext).min(axis=0) + MARGIN
    hi = (offsets[:, :2] + ext).max(axis=0) - MARGIN
    inside = np.all((published[:, :2] >= lo) & (published[:, :2] <= hi), axis=1)
    z = published[inside, 2]
    return np.array([[lo[0], hi[0]], [lo[1], hi[1]], [z.min() - 1.0, z.max() + 1.0]])


def run_aet_areas(numbers, work, *, workers=None, threads=None, stitch_only=False, config=None) -> dict:
    """``aet areas`` on the areas `numbers` (results in `work`), scored against the published model,
    with the stitched RESIRE reference when every area has a source volume (module docstring)."""
    from aetcore.app.areas import areas, plan_areas, stitch_folders
    from aetcore.io.matlab import mat_model, mat_volume
    from aetcore.io.readers import read_atoms
    from aetcore.steps.chain import atoms_from_volume
    from aetcore.steps.stitch import area_offsets, stitch_atoms
    work = Path(work)
    files = [DATA / "projections" / f"Projections_area{k}.mat" for k in numbers]
    shape = (401, 351, 341)
    t0 = time.perf_counter()
    if stitch_only:
        specs = plan_areas(files, DATA / "alignPara.mat", shape)
        summary = stitch_folders([work / "areas" / s.name for s in specs], specs, shape, PIXEL, ["Ta"], work)
    else:
        summary = areas(files, crop_table=DATA / "alignPara.mat", volume_shape=shape, angles=DATA / "angles.mat",
                        angle_convention="resire", pixel_size=PIXEL, species=["Ta"], out=work, workers=workers,
                        threads_per_worker=threads, resume=True, progress=True, config=config)
    wall = time.perf_counter() - t0
    published = mat_model(DATA / "published_model_rows1-2.mat")[0]
    centres = np.array([a["crop_centre"] for a in summary["areas"]])
    halves = np.array([a["crop_half"] for a in summary["areas"]])
    offsets = area_offsets(centres, shape, PIXEL)
    region = _covered_region(offsets, halves, published)
    stitched = read_atoms(work / "atoms.xyz").positions
    out = {"areas": list(numbers), "region_A": region.tolist(), "wall_s": wall, "stitch": summary["stitch"],
           "time_per_area_s": {a["area"]: a["time_s"] for a in summary["areas"]},
           "atoms_per_area": {a["area"]: [a["atoms_traced"], a["atoms_kept"]] for a in summary["areas"]}}
    row = score(published, stitched, region)
    row.update(seconds=wall, translation_A=_translation(published, stitched, region))
    out["aet_areas"] = row
    print(f"aet areas {numbers}: {json.dumps(row)}", flush=True)
    sources = [DATA / "resire_reconstructions" / f"ReconObj_sub{k}.mat" for k in numbers]
    ref_models = None
    if all(p.exists() for p in sources):
        t1 = time.perf_counter()
        ref_models = []
        for k, p in zip(numbers, sources):
            tilts, angles, _, _ = load_area(k)
            ref_models.append(atoms_from_volume(mat_volume(p), tilts, angles, PIXEL, ["Ta"], refine=False,
                                                threads=threads, seed=0).positions)
        st = stitch_atoms(ref_models, centres, halves, shape, PIXEL)
        ref = score(published, st.positions, region)
        ref.update(seconds=time.perf_counter() - t1, translation_A=_translation(published, st.positions, region),
                   stitch=st.as_dict())
        out["resire_stitched"] = row_ref = ref
        print(f"source's RESIRE volumes traced + stitched: {json.dumps(row_ref)}", flush=True)
        ref_full = st.positions
    r1s = {}
    for k, off in zip(numbers, offsets):
        tilts, angles, _, half = load_area(k)
        r1s[k] = {"aet_areas": r1(stitched - off, tilts, angles, half)["r1"],
                  "published": r1(published - off, tilts, angles, half)["r1"]}
        if ref_models is not None:
            r1s[k]["resire_stitched"] = r1(ref_full - off, tilts, angles, half)["r1"]
    out["r1"] = r1s
    return out


def _translation(published, positions, region) -> list:
    from aetcore.quality.compare import compare_models
    return [round(float(v), 3) for v in compare_models(published, None, positions, None, max_distance=TOLERANCE,
                                                       region=region).translation]


def areas_table(res) -> str:
    lines = ["| areas: model | recall | precision | RMSD pm (x/y/z) | pairs / published | model atoms in the film | "
             "R1 per area | translation Å | time |", "|---|---|---|---|---|---|---|---|---|"]
    names = ",".join(map(str, res["areas"]))
    for key, label in (("aet_areas", "`aet areas`, stitched"), ("resire_stitched",
                                                               "source's RESIRE volumes, traced + stitched")):
        if key not in res:
            continue
        d = res[key]
        ax = d["rmsd_axes_pm"]
        r1s = " / ".join(f"{res['r1'][k][key]:.3f}" for k in res["areas"])
        t = d["translation_A"]
        lines.append(f"| {names}: {label} | {100 * d['recall']:.1f} % | {100 * d['precision']:.1f} % | "
                     f"{d['rmsd_pm']:.1f} ({ax[0]:.0f}/{ax[1]:.0f}/{ax[2]:.0f}) | {d['n_pairs']}/{d['n_published']} | "
                     f"{d['n_model']} (+{d['outside_film_z']} outside the film) | {r1s} | "
                     f"{t[0]:+.2f}, {t[1]:+.2f}, {t[2]:+.2f} | {d['seconds']:.0f} s |")
    r1s = " / ".join(f"{res['r1'][k]['published']:.3f}" for k in res["areas"])
    lines.append(f"| {names}: published model | | | | | | {r1s} | | |")
    per = ", ".join(f"area {k}: {t:.0f} s" for k, t in res["time_per_area_s"].items() if t is not None)
    lines.append("")
    lines.append(f"Time per area (each area's own `aet run`): {per}; wall time of `aet areas` {res['wall_s']:.0f} s.")
    return "\n".join(lines)


def _row(name, d) -> str:
    ax = d["rmsd_axes_pm"]
    return (f"| {name} | {100 * d['recall']:.1f} % | {100 * d['precision']:.1f} % | {d['rmsd_pm']:.1f} "
            f"({ax[0]:.0f}/{ax[1]:.0f}/{ax[2]:.0f}) | {d['n_pairs']}/{d['n_published']} | "
            f"{d['n_model']} (+{d['outside_film_z']} outside the film) | {d['r1']:.3f} | {d.get('seconds', 0):.0f} s |")


def table(results) -> str:
    lines = ["| area: model | recall | precision | RMSD pm (x/y/z) | pairs / published | model atoms in the film | R1 | time |",
             "|---|---|---|---|---|---|---|---|"]
    for r in results:
        lines.append(_row(f"{r['area']}: aetcore chain", r["aetcore_chain"]))
        if "aetcore_chain_evidence" in r:
            lines.append(_row(f"{r['area']}: aetcore chain + evidence", r["aetcore_chain_evidence"]))
        if "resire_volume_traced" in r:
            lines.append(_row(f"{r['area']}: source's RESIRE volume, traced by aetcore", r["resire_volume_traced"]))
        if "resire_volume_traced_evidence" in r:
            lines.append(_row(f"{r['area']}: source's RESIRE volume, traced + evidence",
                              r["resire_volume_traced_evidence"]))
        p = r["published"]
        lines.append(f"| {r['area']}: published model | | | | | | {p['r1']:.3f} | |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--areas", type=int, nargs="+", default=[1])
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--iterations", type=int, default=100, help="GENFIRE iterations")
    ap.add_argument("--json", default=None)
    ap.add_argument("--no-evidence", action="store_true", help="skip the evidence rows")
    ap.add_argument("--score-run", metavar="DIR", help="score the aet run folder DIR of the (one) area instead")
    ap.add_argument("--aet-areas", metavar="K,K,...", help="run these areas through `aet areas` and score the "
                    "stitched model instead (e.g. 1,5,10)")
    ap.add_argument("--work", metavar="DIR", help="--aet-areas: the results folder of `aet areas` (resumed)")
    ap.add_argument("--workers", type=int, default=None, help="--aet-areas: Dask workers (areas at once)")
    ap.add_argument("--stitch-only", action="store_true", help="--aet-areas: re-stitch the areas of --work")
    ap.add_argument("--config", default=None, help="--aet-areas: configuration of the areas' runs (default: none, "
                    "the defaults of aet run)")
    args = ap.parse_args(argv)
    if not DATA.exists():
        print(f"{DATA} is not present", file=sys.stderr)
        return 1
    if args.aet_areas:
        if not args.work:
            print("--aet-areas: give --work DIR", file=sys.stderr)
            return 1
        numbers = [int(v) for v in args.aet_areas.split(",")]
        commit = subprocess.run(["git", "-C", str(HERE), "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True).stdout.strip()
        res = run_aet_areas(numbers, args.work, workers=args.workers, threads=args.threads,
                            stitch_only=args.stitch_only, config=args.config)
        res["commit"] = commit
        print(json.dumps(res, indent=1, default=str))
        print(f"\ncommit {commit}\n")
        print(areas_table(res))
        if args.json:
            Path(args.json).write_text(json.dumps(res, indent=1, default=str))
        return 0
    if args.score_run:
        if len(args.areas) != 1:
            print("--score-run: give one area (--areas k)", file=sys.stderr)
            return 1
        row = score_run(args.areas[0], args.score_run)
        print(json.dumps(row, indent=1))
        print(_row(f"{args.areas[0]}: aet run {args.score_run}", row))
        return 0
    commit = subprocess.run(["git", "-C", str(HERE), "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    results = []
    for k in args.areas:
        results.append(run_area(k, args.threads, args.iterations, evidence=not args.no_evidence))
        print(json.dumps(results[-1], indent=1), flush=True)
    print(f"\ncommit {commit}\n")
    print(table(results))
    if args.json:
        Path(args.json).write_text(json.dumps({"commit": commit, "results": results}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
