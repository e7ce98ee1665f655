"""``aet run`` as a Python function: a tilt-series file to an atomic model and its results folder.

:func:`run` reads the tilt series and angles, pre-processes, aligns, reconstructs (GENFIRE), traces,
classifies and refines, and writes ``atoms.xyz``, ``reconstruction.mrc`` and ``summary.json`` into
the output folder (each written whole or not at all).
"""
from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np

log = logging.getLogger("aetcore.cli")

__all__ = ["run"]


def run(tilts_path, angles_path, pixel_size, species, out, *, frames=1, config=None, threads=None,
        dataset=None, seed=None) -> dict:
    """The body of ``aet run``; returns the summary it writes."""
    from .config import load_config, step_options
    from .io import check_angles, read_angles, read_tilts, write_json, write_mrc, write_xyz
    from .pipeline import atoms_from_volume
    from .reconstruct import genfire

    cfg = load_config(config)
    out = Path(out)
    timings = {}
    t_all = time.perf_counter()

    t0 = time.perf_counter()
    pages = read_tilts(tilts_path, dataset=dataset)
    angles = read_angles(angles_path)
    if pages.shape[0] % frames:
        raise ValueError(f"{tilts_path}: {pages.shape[0]} images is not a multiple of --frames {frames}")
    n_angles = pages.shape[0] // frames
    check_angles(angles, n_angles, angles_path)
    timings["read"] = time.perf_counter() - t0
    log.info("read %d images of %dx%d px and %d angles", pages.shape[0], pages.shape[1], pages.shape[2], len(angles))
    rng_seed = cfg["reconstruct"]["seed"] if seed is None else seed
    out.mkdir(parents=True, exist_ok=True)

    steps = []
    if frames > 1 or cfg["preprocess"]["always"]:
        from .preprocess import preprocess, split_pages
        t0 = time.perf_counter()
        opts = step_options(cfg, "preprocess", drop=("always",))
        if frames > 1:
            res = preprocess(split_pages(pages, frames), frames=True, threads=threads, **opts)
        else:
            opts.pop("register"), opts.pop("shear"), opts.pop("reference"), opts.pop("upsample")
            res = preprocess(pages, frames=False, register=False, threads=threads, **opts)
        tilts = res.tilts
        timings["preprocess"] = time.perf_counter() - t0
        steps.append("preprocess")
        log.info("preprocessed in %.1f s", timings["preprocess"])
    else:
        tilts = pages

    alignment = None
    if cfg["align"]["enabled"]:
        from .align import align
        t0 = time.perf_counter()
        al = align(tilts, angles, pixel_size=pixel_size, threads=threads,
                   **step_options(cfg, "align", drop=("enabled",)))
        tilts, angles = al.tilts, al.angles
        alignment = {"rotation_deg": float(al.rotation), "shifts_px": np.asarray(al.shifts).tolist(),
                     "angles_refined": bool(al.angles_refined)}
        timings["align"] = time.perf_counter() - t0
        steps.append("align")
        log.info("aligned in %.1f s (rotation %.2f deg)", timings["align"], al.rotation)

    t0 = time.perf_counter()
    gopts = step_options(cfg, "reconstruct", drop=("seed",))
    rec = genfire(tilts, angles, pixel_size=pixel_size, threads=threads, seed=rng_seed,
                  progress=log.isEnabledFor(logging.INFO), **gopts)
    timings["reconstruct"] = time.perf_counter() - t0
    steps.append("reconstruct")
    log.info("GENFIRE: %d iterations in %.1f s, Fourier R %.4f", rec.parameters["iterations_run"],
             timings["reconstruct"], rec.errors[-1])

    do_refine = cfg["refine"]["enabled"]
    atoms = atoms_from_volume(rec.volume, tilts, angles, pixel_size, species, refine=do_refine,
                              trace_options=step_options(cfg, "trace"),
                              classify_options=step_options(cfg, "classify"),
                              refine_options=step_options(cfg, "refine", drop=("enabled",)) if do_refine else None,
                              threads=threads, seed=rng_seed)
    timings.update(atoms.info["timings"])
    steps += list(atoms.info["timings"])

    t0 = time.perf_counter()
    symbols = atoms.get_chemical_symbols()
    counts = {s: symbols.count(s) for s in species}
    atoms.info["pixel_size"] = float(pixel_size)
    write_xyz(out / "atoms.xyz", atoms)
    write_mrc(out / "reconstruction.mrc", rec.volume, pixel_size)
    timings["write"] = time.perf_counter() - t0
    timings["total"] = time.perf_counter() - t_all
    summary = {
        "input": {"tilts": str(tilts_path), "angles": str(angles_path), "pixel_size": pixel_size,
                  "species": list(species), "frames": frames, "n_angles": n_angles,
                  "image_shape": list(pages.shape[1:]), "config": None if config is None else str(config)},
        "atoms": len(atoms),
        "counts": counts,
        "non_atoms": atoms.info.get("non_atoms"),
        "r1_before": atoms.info.get("r1_before"),
        "r1_after": atoms.info.get("r1_after"),
        "heights": atoms.info.get("heights"),
        "b_factors": atoms.info.get("b_factors"),
        "reconstruction": {"iterations_run": rec.parameters["iterations_run"],
                           "fourier_r": float(rec.errors[-1]),
                           "rfree": None if rec.rfree is None else float(rec.rfree[-1]),
                           "shape": list(rec.volume.shape)},
        "alignment": alignment,
        "steps": steps,
        "timings_s": timings,
        "config": cfg,
        "outputs": ["atoms.xyz", "reconstruction.mrc", "summary.json"],
    }
    write_json(out / "summary.json", summary)
    return summary
