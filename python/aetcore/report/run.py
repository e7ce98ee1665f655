"""The sections ``aet run`` adds to the results folder's report (summary, alignment, reconstruction,
atoms): :func:`run_figures` makes the figures, :func:`write_run_report` writes them.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .._util.validate import as_angles, as_positions, as_volume, positive, real_array
from .figures import (
    _fsc_input,
    _resolution,
    _species_list,
    _symbols,
    _vector,
    atoms_figure,
    convergence_figure,
    fsc_figure,
    intensity_histogram_figure,
    orthoslices_figure,
    projections_figure,
    shifts_figure,
    species_intensity_stats,
    summary_html,
)
from .page import _close, _folder, add_section, build_report, remove_section

__all__ = ["run_figures", "write_run_report", "RUN_SECTIONS"]


RUN_SECTIONS = {"run-summary": 10, "run-alignment": 20, "run-reconstruction": 30, "run-atoms": 40}


def _run_inputs(volume, pixel_size, species, symbols, positions, intensity, errors, rfree, fsc, resolution,
                shifts, rotation, angles):
    """Check every input of run_figures before any figure is drawn."""
    v = as_volume(volume)
    p = positive(pixel_size, "pixel_size")
    sp = _species_list(species)
    pos = as_positions(positions)
    sym = _symbols(symbols, pos.shape[0])
    I = _vector(intensity, "intensity", n=pos.shape[0], allow_empty=True)
    e = None if errors is None else _vector(errors, "errors")
    r = None if rfree is None else _vector(rfree, "rfree")
    f = None if fsc is None else _fsc_input(fsc)
    res = _resolution(resolution)
    if f is not None and res is None and f[2] is not None:
        res = _resolution(f[2], "fsc: resolution")
    if f is not None and res is None:
        from ..quality.metrics import resolution_from_fsc
        res = resolution_from_fsc(f[0], f[1])
    sh = None
    if shifts is not None:
        sh = real_array(shifts, "shifts", 2, "(n_images, 2) of (dy, dx) in pixels")
        if sh.shape[1] != 2:
            raise ValueError(f"shifts: expected shape (n_images, 2) of (dy, dx) in pixels, got {sh.shape}")
    ang = None
    if angles is not None:
        if sh is None:
            ang = as_angles(angles, None, "angles")
        else:
            ang = as_angles(angles, sh.shape[0], "angles")
    if rotation is not None and (isinstance(rotation, bool)
                                 or not isinstance(rotation, (int, float, np.floating, np.integer))
                                 or not np.isfinite(rotation)):
        raise ValueError(f"rotation: expected a finite angle in degrees, got {rotation!r}")
    return v, p, sp, sym, pos, I, e, r, f, res, sh, ang


def run_figures(*, volume, pixel_size, species, symbols, positions, intensity, errors=None, rfree=None,
                fsc=None, resolution=None, shifts=None, rotation=None, angles=None) -> dict:
    """Every figure of ``aet run``'s report, each with its caption.

    Parameters
    ----------
    volume : (nz, ny, nx) array
        The reconstruction, ``vol[z, y, x]``.
    pixel_size : float
        Voxel size, Å.
    species : sequence of str
        The species asked for (e.g. ``("Fe", "Pt")``), fixing the colour of each.
    symbols : (n_atoms,) sequence of str
        Assigned species per atom.
    positions : (n_atoms, 3) array
        Atom positions ``(x, y, z)``, Å.
    intensity : (n_atoms,) array
        Integrated intensity per atom (arb. units).
    errors, rfree : (n_iter,) arrays, optional
        Fourier R-factor and R-free per reconstruction iteration.
    fsc : tuple, optional
        ``(freq in 1/Å, corr)`` or the ``(freq, corr, resolution)`` of
        :func:`aetcore.quality.metrics.half_set_fsc`.
    resolution : float, optional
        FSC resolution in Å to mark; default the one in `fsc` or computed from it (0.143).
    shifts : (n_images, 2) array, optional
        Alignment shifts ``(dy, dx)``, pixels.
    rotation : float, optional
        Tilt-axis rotation, degrees.
    angles : (n_images,) or (n_images, 3) array, optional
        Angles of the aligned images, degrees (the x axis of the shifts figure).

    Returns
    -------
    dict
        ``name -> (Figure, caption)`` for ``orthoslices``, ``projections``, ``convergence``
        (with `errors`), ``fsc`` (with `fsc`), ``histogram`` and ``atoms`` (with at least one
        atom), ``shifts`` (with `shifts`). Missing optional inputs skip their figure.
    """
    return _run_figures(_run_inputs(volume, pixel_size, species, symbols, positions, intensity, errors, rfree,
                                    fsc, resolution, shifts, rotation, angles), rotation)


def _run_figures(checked, rotation) -> dict:
    v, p, sp, sym, pos, I, e, r, f, res, sh, ang = checked
    figs = {}
    try:
        figs["orthoslices"] = (orthoslices_figure(v, p),
                               "Slices through the centre of the reconstruction (origin at voxel n//2), axes in Å.")
        figs["projections"] = (projections_figure(v, p),
                               "Maximum-intensity projections of the reconstruction along z, y and x.")
        if e is not None:
            figs["convergence"] = (convergence_figure(e, r),
                                   "Fourier R-factor" + (" and R-free" if r is not None else "")
                                   + " of the reconstruction per iteration.")
        if f is not None:
            figs["fsc"] = (fsc_figure(f[0], f[1], res),
                           "Fourier shell correlation of the reconstructions from the even and odd images; "
                           "the resolution is where it falls below 0.143.")
        if pos.shape[0]:
            figs["histogram"] = (intensity_histogram_figure(I, sym, sp),
                                 "Integrated intensity of each traced atom, coloured by its assigned species, "
                                 "with a Gaussian of each species' mean and standard deviation.")
            figs["atoms"] = (atoms_figure(pos, sym, sp),
                             "Atom positions coloured by species: 3D view and projections on xy, xz, yz.")
        if sh is not None:
            figs["shifts"] = (shifts_figure(sh, ang, rotation=rotation, pixel_size=p),
                              "Shift applied to each image by the alignment (scipy.ndimage.shift convention).")
    except BaseException:
        _close([(k, fig, c) for k, (fig, c) in figs.items()])
        raise
    return figs


def write_run_report(folder, *, volume, pixel_size, species, symbols, positions, intensity, errors=None,
                     rfree=None, fsc=None, resolution=None, shifts=None, rotation=None, summary=None,
                     angles=None) -> Path:
    """Write the sections of ``aet run`` into ``folder/report.html``.

    Sections (keys and orders in :data:`RUN_SECTIONS`): ``run-summary`` (10, tables of atoms per
    species, R1 before/after, final errors, resolution, time per step), ``run-alignment`` (20,
    shifts per image; removed when `shifts` is None), ``run-reconstruction`` (30, orthoslices,
    maximum-intensity projections, convergence, FSC), ``run-atoms`` (40, intensity histogram
    with the fitted species, 3D scatter). Sections of other commands are kept.

    Parameters
    ----------
    folder : str or os.PathLike
        The results folder (must exist).
    volume, pixel_size, species, symbols, positions, intensity, errors, rfree, fsc, resolution, shifts, rotation, angles
        As in :func:`run_figures`.
    summary : dict, optional
        The run's summary (as written to ``summary.json``), for the tables; see :func:`summary_html`.

    Returns
    -------
    pathlib.Path
        ``folder/report.html``.
    """
    _folder(folder)
    if summary is not None and not isinstance(summary, dict):
        raise TypeError(f"summary: expected a dict (as written to summary.json), got {type(summary).__name__}")
    checked = _run_inputs(volume, pixel_size, species, symbols, positions, intensity, errors, rfree, fsc,
                          resolution, shifts, rotation, angles)
    _, _, sp, sym, pos, I, _, _, _, res, sh, _ = checked
    figs = _run_figures(checked, rotation)
    try:
        n_atoms = pos.shape[0]
        stats = species_intensity_stats(I, sym, sp) if n_atoms else None
        table = summary_html(summary, stats=stats, resolution=res, rotation=rotation)
        pick = lambda *names: {k: figs.pop(k) for k in names if k in figs}  # noqa: E731
        add_section(folder, "run-summary", "Summary of the run", table, order=RUN_SECTIONS["run-summary"],
                    build=False)
        if sh is not None:
            add_section(folder, "run-alignment", "Alignment", "", pick("shifts"),
                        order=RUN_SECTIONS["run-alignment"], build=False)
        else:
            remove_section(folder, "run-alignment", build=False)
        add_section(folder, "run-reconstruction", "Reconstruction", "",
                    pick("orthoslices", "projections", "convergence", "fsc"),
                    order=RUN_SECTIONS["run-reconstruction"], build=False)
        atoms_html = "" if n_atoms else "<p>No atoms were found.</p>"
        add_section(folder, "run-atoms", "Atoms", atoms_html, pick("histogram", "atoms"),
                    order=RUN_SECTIONS["run-atoms"], build=False)
    finally:
        _close([(k, fig, c) for k, (fig, c) in figs.items()])
    return build_report(folder)
