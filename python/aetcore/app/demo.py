"""The demo (``aet demo``, ``make demo``, ``python -m aetcore.app.demo``): simulate an FePt nanoparticle
and its ADF-STEM tilt series (several drifting frames per angle, misaligned images, Poisson noise),
write them as a user's files, run the whole chain of ``aet run`` on them (pre-processing,
alignment, GENFIRE, tracing, classification, refinement), and print how close it comes to the
truth: recall, precision, RMSD in pm and species accuracy, with the report's path."""
from __future__ import annotations

import resource
import sys
import time
from pathlib import Path

import numpy as np

__all__ = ["run_demo", "main"]


def run_demo(out="aet-demo", *, size: int = 96, pixel_size: float = 0.4, radius: float | None = None,
             angles: int = 51, frames: int = 3, shift: float = 2.0, dose: float = 5e4, threads=None,
             seed: int = 0, config=None, quiet: bool = False) -> dict:
    """Simulate, run the whole chain, score against the truth.

    Parameters
    ----------
    out : path
        Folder for the simulated data (``out/data``) and the results (``out/result``).
    size : int
        Image side and volume side, pixels.
    pixel_size : float
        Å per pixel.
    radius : float, optional
        Particle radius, Å (default 14 Å, or 30 % of the box side when the box is smaller than
        about 93 Å).
    angles : int
        Projections over -70..+70 degrees (uneven steps).
    frames : int
        Drifting frames per angle (registered and averaged by the pre-processing).
    shift : float
        Largest random image shift, pixels (found again by the alignment).
    dose : float
        Electrons per Å² per image (Poisson noise).
    threads, seed
        As everywhere.
    config : path or dict, optional
        Configuration of the run (see ``aet config --defaults``).
    quiet : bool
        Print nothing.

    Returns
    -------
    dict
        ``recall``, ``precision``, ``rmsd_pm``, ``species_accuracy`` (refined model),
        ``rmsd_tracing_pm`` (before refinement), ``volume_error`` (GENFIRE vs the true volume),
        ``seconds``, ``report`` and the run's summary.
    """
    import h5py
    from ase import Atoms
    from ..io.readers import read_atoms
    from ..io.writers import write_angles, write_npy, write_xyz
    from ..quality.metrics import relative_error
    from ..quality.scoring import match_atoms
    from ..model.simulate import angles_range, fept_particle, ground_truth_volume, tilt_series
    from .folder import run

    say = (lambda *a: None) if quiet else print
    t0 = time.perf_counter()
    out = Path(out)
    data = out / "data"
    data.mkdir(parents=True, exist_ok=True)
    if radius is None:
        radius = min(14.0, 0.3 * size * pixel_size)
    p = fept_particle(radius, orientation="random", antisite=0.02, thermal=0.05, seed=seed)
    ang = angles_range(-70, 70, angles, uneven=0.3, seed=seed)
    series = tilt_series(p.positions, p.species, ang, (size, size), pixel_size, dose=dose, n_frames=frames,
                         drift=0.3 if frames > 1 else 0.0, shifts="random" if shift > 0 else None,
                         max_shift=shift, seed=seed, threads=threads)
    pages = series.tilts.reshape(-1, size, size)
    write_npy(data / "tilts.npy", pages)
    write_angles(data / "angles.txt", ang)
    write_xyz(data / "truth.xyz", Atoms(symbols=list(p.species), positions=p.positions))
    n_fe = int(np.sum(p.species == "Fe"))
    say(f"simulated: {len(p.positions)} atoms ({n_fe} Fe, {len(p.positions) - n_fe} Pt), {angles} projections "
        f"x {frames} frame(s) of {size}x{size} px at {pixel_size} Å/px, dose {dose:g} e/Å², shifts up to "
        f"{shift:g} px ({time.perf_counter() - t0:.1f} s) -> {data}")

    res = out / "result"
    s = run(data / "tilts.npy", data / "angles.txt", pixel_size, ("Fe", "Pt"), res, frames=frames,
            config=config, threads=threads, seed=seed, progress=not quiet)
    atoms = read_atoms(res)
    m = match_atoms(p.positions, p.species, atoms.positions, atoms.get_chemical_symbols())
    with h5py.File(res / "results.h5", "r") as f:
        volume = f["reconstruct/volume"][()]
        traced = f["trace/positions"][()][f["classify/labels"][()] >= 0]
        shifts = f["align/shifts"][()]
    m0 = match_atoms(p.positions, p.species, traced, atoms.get_chemical_symbols())
    truth = ground_truth_volume(p.positions, p.species, volume.shape, pixel_size, threads=threads)
    # the alignment centres the particle up to a common offset: register before comparing voxels
    from scipy.ndimage import shift as nd_shift
    from skimage.registration import phase_cross_correlation
    offset = phase_cross_correlation(truth, volume, upsample_factor=20, normalization=None)[0]
    err = relative_error(nd_shift(volume, offset, order=3, mode="constant"), truth)
    t = s["timings_s"]
    steps = ", ".join(f"{k} {t[k]:.1f} s" for k in ("preprocess", "align", "reconstruct", "trace", "classify",
                                                     "refine") if t.get(k) is not None)
    if series.shifts is not None:
        # the true shifts move the content away from the centre; alignment should undo them
        from ..quality.scoring import alignment_error
        err_px = alignment_error(shifts, series.shifts, ang)
        say(f"alignment: rotation {s['alignment']['rotation_deg']:.2f}°, shift error {err_px:.3f} px RMS "
            "(after removing a translation of the whole particle)")
    say(f"GENFIRE: {s['reconstruction']['iterations_run']} iterations, relative error vs the true volume "
        f"{err:.3f} (after a {np.linalg.norm(offset) * pixel_size:.2f} Å registration), half-set FSC "
        "resolution " + ("n/a" if s["resolution_A"] is None else
                         (f"≤ {s['resolution_A']:.2f} Å (Nyquist: the FSC never fell below 0.143)"
                          if s["resolution_at_nyquist"] else f"{s['resolution_A']:.2f} Å (0.143)")
                         + f", {s['resolution_fsc05_A']:.2f} Å at FSC 0.5"))
    say(f"atoms:   {len(atoms)} traced; recall {100 * m.recall:.2f} %, precision {100 * m.precision:.2f} %, "
        f"RMSD {m.rmsd_pm:.1f} pm, species accuracy {100 * m.species_accuracy:.2f} %, R1 "
        f"{s['r1_before']:.4f} -> {s['r1_after']:.4f} (median precision estimate "
        f"{100 * float(np.nanmedian(atoms.get_array('precision'))):.2f} pm)")
    say(f"         tracing alone (before refinement): RMSD {m0.rmsd_pm:.1f} pm. The refinement fits the same "
        "Gaussian-atom model that simulated the data, so its RMSD is optimistic.")
    seconds = time.perf_counter() - t0
    say(f"time:    {steps}; total {seconds:.1f} s; peak memory "
        f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")
    say(f"report:  {s.get('report') or res / 'report.html'}")
    return {"recall": m.recall, "precision": m.precision, "rmsd_pm": m.rmsd_pm,
            "species_accuracy": m.species_accuracy, "rmsd_tracing_pm": m0.rmsd_pm, "volume_error": err,
            "seconds": seconds, "report": s.get("report"), "summary": s}


def main(argv=None) -> int:
    """``python -m aetcore.app.demo [options]``: the same as ``aet demo [options]`` (one parser, in
    :mod:`aetcore.app.cli`)."""
    from .cli import main as aet
    return aet(["demo", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    raise SystemExit(main())
