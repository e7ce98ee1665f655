"""``aet track``: a time series of results folders to tables (CSV and HDF5), a summary and a report
section (:func:`track_folders`).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..analysis.track.nuclei import EVENTS
from ..analysis.track.series import FATES, _check_options, track_series

__all__ = ["track_folders"]


# ----------------------------------------------------------------------------------------------
# Folders of `aet run` results
# ----------------------------------------------------------------------------------------------

def _read_model(path: Path, order_key):
    from ..io.readers import read_atoms
    atoms = read_atoms(path, name="folders")
    f = path / "atoms.xyz" if path.is_dir() else path
    order = None
    if order_key is not None:
        if order_key not in atoms.arrays:
            raise ValueError(f"order_key: {f} has no per-atom array {order_key!r} "
                             f"(it has {sorted(atoms.arrays)})")
        order = np.asarray(atoms.arrays[order_key], np.float64)
    return f, atoms.positions.astype(np.float64), np.asarray(atoms.get_chemical_symbols()), order


def _event_columns(events) -> dict:
    keys = ("time_from", "time_to", "event", "from", "to", "size_from", "size_to", "tracks_from", "tracks_to")
    return {("nuclei_" + k if k in ("from", "to") else k): [e[k] for e in events] for k in keys}


def track_folders(folders, out, *, order_key=None, register=True, trim=0.9, search_angle=30.0,
                  match_cutoff=None, method="hungarian", neighbour_cutoff=None, threshold=0.5, core_threshold=0.7, min_size=13,
                  min_core=3, min_coordination=7, min_overlap=0.3, min_change=3, rel_change=0.1,
                  report=True, threads=None) -> dict:
    """Track the atomic models of one particle at successive times and write tables, figures and a report.

    Parameters
    ----------
    folders : sequence of paths
        One per time point, in time order: `aet run` results folders (``<folder>/atoms.xyz``) or
        extended XYZ files, one model each.
    out : path
        Results folder; written: ``out/track/atoms.csv`` (per-atom changes), ``nuclei.csv`` (one row
        per nucleus and time, with its track and fate), ``events.csv`` (nucleus events),
        ``track.h5`` (the same tables and, per time, the registered positions, species, order,
        nucleus labels, rotation and translation), ``summary.json`` (returned),
        ``nucleus_sizes.png``, ``displacements.png``; and a "Tracking" section in
        ``out/report.html`` if `report`. Every file is written whole or not at all.
    order_key : str, optional
        Take the per-atom order parameter from this array of the XYZ files instead of computing
        the normalised bond-orientational order (:mod:`aetcore.analysis.bond_order`).
    register, trim, search_angle, match_cutoff, method, neighbour_cutoff, threshold, core_threshold, min_size,
    min_core, min_coordination, min_overlap, min_change, rel_change, threads
        See :func:`track_series`.
    report : bool
        Add the "Tracking" section (order 110) to ``out/report.html``.

    Returns
    -------
    dict
        The summary written to ``summary.json``.
    """
    from ..io.tables import write_csv, write_h5
    from ..io.writers import atomic_path, write_json
    if isinstance(folders, (str, Path)) or not hasattr(folders, "__len__"):
        raise TypeError(f"folders: expected a sequence of folders or XYZ files, one per time, got "
                        f"{type(folders).__name__}")
    if len(folders) < 2:
        raise ValueError(f"folders: expected at least 2 time points, got {len(folders)}")
    if not isinstance(out, (str, Path)):
        raise TypeError(f"out: expected a folder path, got {type(out).__name__}")
    if order_key is not None and not isinstance(order_key, str):
        raise TypeError(f"order_key: expected a str or None, got {type(order_key).__name__}")
    if not isinstance(report, bool):
        raise TypeError(f"report: expected a bool, got {type(report).__name__}")
    _check_options(register, trim, search_angle, match_cutoff, method, neighbour_cutoff, threshold, core_threshold,
                   min_size, min_core, min_coordination, min_overlap, min_change, rel_change, threads)
    paths = [Path(f) for f in folders]
    for p in paths:
        if not p.exists():
            raise ValueError(f"folders: {p} does not exist")
    read = [_read_model(p, order_key) for p in paths]
    files = [r[0] for r in read]
    res = track_series([r[1] for r in read], [r[2] for r in read],
                       orders=None if order_key is None else [r[3] for r in read], register=register, trim=trim,
                       search_angle=search_angle,
                       match_cutoff=match_cutoff, method=method, neighbour_cutoff=neighbour_cutoff,
                       threshold=threshold, core_threshold=core_threshold, min_size=min_size,
                       min_core=min_core, min_coordination=min_coordination, min_overlap=min_overlap,
                       min_change=min_change, rel_change=rel_change,
                       threads=threads)

    out = Path(out)
    tdir = out / "track"
    tdir.mkdir(parents=True, exist_ok=True)
    write_csv(tdir / "atoms.csv", res.atoms)
    write_csv(tdir / "nuclei.csv", res.nuclei)
    events = _event_columns(res.events)
    write_csv(tdir / "events.csv", events)
    times = {str(t): {"positions": res.positions[t], "species": np.asarray(res.species[t]), "order": res.order[t],
                      "nucleus": res.nuclei_labels[t], "rotation": res.registrations[t].rotation,
                      "translation": res.registrations[t].translation} for t in range(len(paths))}
    write_h5(tdir / "track.h5", {"atoms": res.atoms, "nuclei": res.nuclei, "events": events, "times": times},
             attrs={"n_times": len(paths), "inputs": json.dumps([str(f) for f in files]),
                    "units": "positions and translations in Å, frame of the first model"})

    from ..analysis.track.plots import displacements_figure, nucleus_sizes_figure
    figs = {"nucleus_sizes": (nucleus_sizes_figure(res.tracks, len(paths)),
                              "Nucleus size against time, one line per track, coloured by fate; dashed: "
                              "division or merging."),
            "displacements": (displacements_figure(res.atoms),
                              "Displacement of each paired atom between consecutive time points, after "
                              "rigid registration.")}
    for name, (fig, _) in figs.items():
        with atomic_path(tdir / f"{name}.png") as tmp:
            fig.savefig(tmp, format="png", dpi=110)

    kinds = [e["event"] for e in res.events]
    fates = [tr["fate"] for tr in res.tracks.values()]
    summary = {
        "inputs": [str(f) for f in files],
        "n_times": len(paths),
        "n_atoms": [len(x) for x in res.positions],
        "order_parameter": order_key or "normalised bond-orientational order (aetcore.analysis.bond_order)",
        "registration": [{"time": t, "rotation_deg": r.angle, "rotation": r.rotation, "translation": r.translation,
                          "rmsd": r.rmsd if np.isfinite(r.rmsd) else None, "n_pairs": r.n_pairs,
                          "iterations": r.iterations,
                          "converged": r.converged} for t, r in enumerate(res.registrations)],
        "correspondence": [{"time_from": t, "time_to": t + 1, "pairs": int(c.index_a.size),
                            "unmatched_from": int(c.unmatched_a.size), "unmatched_to": int(c.unmatched_b.size),
                            "median_displacement": float(np.median(c.distance)) if c.distance.size else None,
                            "cutoff": c.cutoff,
                            "species_changed": int(np.count_nonzero(
                                res.atoms["species_changed"][res.atoms["time_from"] == t]))}
                           for t, c in enumerate(res.correspondences)],
        "nuclei_per_time": [int(np.unique(lab[lab >= 0]).size) for lab in res.nuclei_labels],
        "events": {k: kinds.count(k) for k in EVENTS if k in kinds},
        "fates": {k: fates.count(k) for k in FATES if k in fates},
        "tracks": [{"track": tid, **{k: tr[k] for k in ("fate", "times", "sizes", "nuclei", "parents", "children")}}
                   for tid, tr in res.tracks.items()],
        "parameters": {"register": register, "trim": trim, "search_angle": search_angle,
                       "match_cutoff": match_cutoff, "method": method,
                       "neighbour_cutoff": neighbour_cutoff, "threshold": threshold,
                       "core_threshold": core_threshold, "min_size": min_size, "min_core": min_core,
                       "min_coordination": min_coordination, "min_overlap": min_overlap,
                       "min_change": min_change, "rel_change": rel_change, "order_key": order_key},
        "outputs": [f"track/{n}" for n in ("atoms.csv", "nuclei.csv", "events.csv", "track.h5", "summary.json",
                                           "nucleus_sizes.png", "displacements.png")],
        "report": False,
    }
    if report:
        try:
            from ..report.page import add_section
        except ImportError:  # the report module is optional
            add_section = None
        if add_section is not None:
            add_section(out, "track", "Tracking", _report_html(summary), figs, order=110)
            summary["report"] = True
    write_json(tdir / "summary.json", summary)
    return summary


def _report_html(summary: dict) -> str:
    import html
    def fmt(v):
        return "n/a" if v is None else f"{v:.3f}"

    rows = "".join(
        f"<tr><td>{r['time']}</td><td>{summary['n_atoms'][r['time']]}</td><td>{fmt(r['rotation_deg'])}</td>"
        f"<td>{', '.join(fmt(v) for v in r['translation'])}</td><td>{fmt(r['rmsd'])}</td>"
        f"<td>{summary['nuclei_per_time'][r['time']]}</td></tr>" for r in summary["registration"])
    ev = ", ".join(f"{html.escape(k)}: {v}" for k, v in summary["events"].items()) or "none"
    fa = ", ".join(f"{html.escape(k)}: {v}" for k, v in summary["fates"].items()) or "none"
    return ("<table><tr><th>time</th><th>atoms</th><th>rotation (°)</th><th>translation (Å)</th>"
            "<th>ICP rmsd (Å)</th><th>nuclei</th></tr>" + rows + "</table>"
            f"<p>Nucleus events: {ev}.</p><p>Track fates: {fa}.</p>"
            "<p>Tables: <code>track/atoms.csv</code>, <code>track/nuclei.csv</code>, "
            "<code>track/events.csv</code>, <code>track/track.h5</code>.</p>")
