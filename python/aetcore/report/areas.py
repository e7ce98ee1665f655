"""The section ``aet areas`` adds to the report of its stitched results folder: a map of the areas
(:func:`aetcore.report.figures.areas_map_figure`) and a table of every area (atoms traced and kept,
R1, time) with the stitching's counts.
"""
from __future__ import annotations

import html as _html

import numpy as np

from .figures import _fmt, _table, areas_map_figure
from .page import add_section

__all__ = ["write_areas_section", "AREAS_SECTION_ORDER"]

#: after the run's summary (10), before its alignment (20)
AREAS_SECTION_ORDER = 15


def write_areas_section(folder, *, numbers, offsets, halves, pixel_size, rows, stitch, positions=None):
    """Write the "Areas" section of ``folder/report.html`` and rebuild the page.

    Parameters
    ----------
    folder : path
        The stitched results folder.
    numbers : (m,) ints
        The areas' numbers (rows of the crop table).
    offsets : (m, 3) array
        Each area's centre in the full-volume frame, Å.
    halves : (m, 3) ints
        Each area's ``CropHalf``, voxels.
    pixel_size : float
        Å per voxel.
    rows : sequence of dict
        Per area (the ``areas`` of ``summary.json``): ``area``, ``atoms_traced``, ``atoms_kept``,
        ``r1_before``, ``r1_after``, ``time_s``.
    stitch : dict
        The ``stitch`` of ``summary.json`` (:meth:`aetcore.steps.stitch.StitchedAtoms.as_dict` and more).
    positions : (n, 3) array, optional
        The stitched atoms (Å), drawn on the map.

    Returns
    -------
    pathlib.Path
        ``folder/report.html``.
    """
    r1 = np.array([np.nan if r.get("r1_after") is None else float(r["r1_after"]) for r in rows])
    if np.isfinite(r1).any():
        values, label = r1, "R1 of the area's refined model"
    else:
        values, label = np.array([float(r["atoms_kept"]) for r in rows]), "atoms kept from the area"
    fig = areas_map_figure(numbers, offsets, halves, pixel_size, values, value_label=label, positions=positions)
    body = [_table(["area", "atoms traced", "atoms kept", "R1 before", "R1 after", "time"],
                   [[str(int(r["area"])), _fmt(r["atoms_traced"]), _fmt(r["atoms_kept"]), _fmt(r.get("r1_before")),
                     _fmt(r.get("r1_after")), "–" if r.get("time_s") is None else f"{_fmt(r['time_s'], 3)} s"]
                    for r in rows])]
    d = stitch.get("pair_distance_pm") or {}
    facts = [["atoms traced by all areas", _fmt(stitch.get("traced"))],
             ["atoms in the stitched model", _fmt(stitch.get("atoms"))],
             ["of them traced by more than one area (merged)", _fmt(stitch.get("merged"))],
             ["dropped: their owner area did not trace them", _fmt(stitch.get("dropped_not_owned"))],
             ["merge distance", f"{_fmt(stitch.get('merge_distance'))} Å"],
             ["pairs of one atom in two areas: distance median / 95 % / max",
              " / ".join("–" if d.get(k) is None else f"{d[k]:.1f}" for k in ("median", "p95", "max")) + " pm"]]
    body.append("<h3>Stitching</h3>" + _table(["quantity", "value"], facts))
    body.append("<p>" + _html.escape(
        "Each atom is kept once, by the area that owns its position (the one in which it lies deepest); "
        "atoms of two areas closer than the merge distance are one atom, at the mean of their positions "
        "weighted toward each area's interior. The volume is the mean of the areas' volumes with weights "
        "zero on each area's outer voxels and rising toward its interior.") + "</p>")
    return add_section(folder, "areas", "Areas", "\n".join(body),
                       {"map": (fig, "The areas in the dim1-dim2 plane of the full volume, numbered at their "
                                     "centres, each point coloured by the area owning it; dots: the stitched atoms.")},
                       order=AREAS_SECTION_ORDER)
