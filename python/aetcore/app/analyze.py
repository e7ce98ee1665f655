"""``aet analyze``: the structure analysis of a results folder.

Reads ``FOLDER/atoms.xyz`` (written by ``aet run``), computes neighbours, the RDF, the lattice fit,
displacements and strain, bond order and (for a binary fcc alloy) chemical order, phases, grains
and defects, and writes ``FOLDER/analysis/``:

* ``atoms.csv`` — one row per atom (columns listed in ``summary.json["csv_columns"]``),
* ``grains.csv``, ``antiphase_domains.csv`` — one row per grain / anti-phase domain (binary alloys),
* ``analysis.h5`` — the same per-atom arrays plus the RDF, strain maps, grains and lattice fit,
* ``summary.json`` — the numbers a paper quotes (returned as a dict as well),
* PNG figures (strain maps, phase and order maps, RDF),

and an "Analysis" section in ``FOLDER/report.html`` (:func:`aetcore.report.add_section`). Every
file is written whole or not at all.
"""
from __future__ import annotations

import html
from pathlib import Path

import numpy as np

from .._util.validate import as_folder, at_least, one_of, positive
from ..io.readers import read_atoms
from ..io.tables import write_csv, write_h5
from ..io.writers import atomic_path, write_json
from ..analysis.bond_order import bond_order
from ..analysis.grains import find_grains, site_pairs
from ..analysis.lattice import as_lattice, fit_lattice
from ..analysis.neighbors import coordination, radial_distribution
from ..analysis.order import PHASES, VARIANTS, chemical_order, fcc_shell_offsets, site_neighbours
from ..analysis.strain import VOIGT, displacement_gradient, strain_from_gradient, strain_map, to_crystal_frame, voigt

__all__ = ["analyze_folder", "ANALYSIS_DIR"]

ANALYSIS_DIR = "analysis"


def _folder(folder) -> Path:
    f = as_folder(folder)
    if not (f / "atoms.xyz").is_file():
        raise ValueError(f"folder: {f} has no atoms.xyz (write one with 'aet run')")
    return f


def _stats(values: np.ndarray, mask: np.ndarray) -> dict:
    v = values[mask]
    v = v[np.isfinite(v).all(axis=1)]
    if v.size == 0:
        return {"atoms": 0}
    return {"atoms": int(v.shape[0]),
            "mean": dict(zip(VOIGT, np.round(v.mean(axis=0), 7).tolist())),
            "std": dict(zip(VOIGT, np.round(v.std(axis=0), 7).tolist()))}


def analyze_folder(folder, *, lattice="fcc", lattice_constant=None, strain_sigma: float = 10.0,
                   planes=("z",), map_spacing: float = 1.0, slab_thickness: float = 2.0,
                   chemical: str = "auto", smooth: int = 1,
                   min_grain_size: int = 10, rdf_max: float = 10.0, report: bool = True,
                   threads=None) -> dict:
    """Analyse ``folder/atoms.xyz`` and write ``folder/analysis/`` (module docstring).

    Parameters
    ----------
    folder : str or os.PathLike
        A results folder holding ``atoms.xyz`` (the last frame is analysed).
    lattice : str, Lattice or (3, 3) cell
        Lattice of the fit (:func:`~aetcore.analysis.lattice.fit_lattice`), default fcc.
    lattice_constant : float, optional
        Bulk lattice constant, Å: strain is then absolute. Default: fitted (the mean dilatation is
        absorbed and the strain is relative to the particle's own mean lattice).
    strain_sigma : float
        Gaussian kernel width of the strain, Å (default 10 Å = 1 nm).
    planes : sequence of {"x", "y", "z"}
        Normals of the maps through the particle centre (strain, order, phase).
    map_spacing : float
        Strain-map grid step, Å.
    slab_thickness : float
        Thickness of the atom slabs of the order and phase maps, Å.
    chemical : {"auto", "on", "off"}
        Chemical-order analysis: "auto" runs it for a binary model on an fcc lattice.
    smooth
        Phase classification (:func:`~aetcore.analysis.order.classify_phases`).
    min_grain_size : int
        Smallest grain listed, atoms.
    rdf_max : float
        Largest RDF distance, Å.
    report : bool
        Add an "Analysis" section (order 100) to ``folder/report.html``.
    threads : int, optional
        Workers of the neighbour searches (None = every core the process may use).

    Returns
    -------
    dict
        The summary written to ``folder/analysis/summary.json``.
    """
    root = _folder(folder)
    lat = as_lattice(lattice)
    sigma = positive(strain_sigma, "strain_sigma")
    spacing = positive(map_spacing, "map_spacing")
    thickness = positive(slab_thickness, "slab_thickness")
    chemical = one_of(chemical, ("auto", "on", "off"), "chemical")
    min_grain_size = at_least(min_grain_size, 1, "min_grain_size", integer=True)
    rdf_max = positive(rdf_max, "rdf_max")
    if isinstance(planes, str):
        planes = (planes,)
    planes = tuple(one_of(p, ("x", "y", "z"), "planes") for p in planes)

    from ..analysis import plots  # matplotlib only when figures are made

    atoms = read_atoms(root / "atoms.xyz", min_atoms=4)
    x = np.asarray(atoms.positions, np.float64)
    species = np.asarray(atoms.get_chemical_symbols())
    names, counts = np.unique(species, return_counts=True)
    n = x.shape[0]
    do_chem = (chemical == "on") or (chemical == "auto" and names.size == 2 and lat.name == "fcc")
    if chemical == "on" and (names.size != 2 or lat.name != "fcc"):
        raise ValueError(f"chemical: 'on' needs a binary model on an fcc lattice, got species {names.tolist()} "
                         f"and lattice {lat.name!r}")

    out = root / ANALYSIS_DIR
    out.mkdir(exist_ok=True)

    # structure
    fit = fit_lattice(x, lat, lattice_constant=lattice_constant, threads=threads)
    d_nn = fit.info["nn_distance"]
    cn = coordination(x, d_nn * lat.shell_gap, threads=threads)
    rdf = radial_distribution(x, rdf_max)
    bo = bond_order(x, threads=threads)
    interior = cn >= lat.coordination

    # strain (object frame, and along the crystal axes); atoms far from their site or sharing it
    # (spurious or mis-traced) would pull the local fits, so only the others carry the field
    good = ~fit.outlier
    eps = strain_from_gradient(displacement_gradient(fit.ideal[good], fit.displacement[good], sigma=sigma,
                                                     points=fit.ideal, threads=threads))
    eps_crystal = to_crystal_frame(eps, fit.rotation)
    maps = {p: strain_map(fit.ideal[good], fit.displacement[good], normal=p, spacing=spacing, sigma=sigma,
                          threads=threads) for p in planes}

    columns = {"index": np.arange(n), "species": species, "x": x[:, 0], "y": x[:, 1], "z": x[:, 2],
               "coordination": cn}
    if lat.name == "fcc":
        h = fit.fcc_indices()
        columns.update({"site_h": h[:, 0], "site_k": h[:, 1], "site_l": h[:, 2]})
    columns.update({"ux": fit.displacement[:, 0], "uy": fit.displacement[:, 1], "uz": fit.displacement[:, 2],
                    "duplicate_site": fit.duplicate, "outlier": fit.outlier})
    for name, col in zip(VOIGT, voigt(eps).T):
        columns[f"e{name}"] = col
    columns.update({"q4_avg": bo.q4_avg, "q6_avg": bo.q6_avg, "bond_order": bo.order})

    summary = {
        "input": str(root / "atoms.xyz"),
        "atoms": n,
        "counts": dict(zip(names.tolist(), counts.tolist())),
        "nn_distance_A": d_nn,
        "coordination": {"mean": float(cn.mean()), "interior_atoms": int(interior.sum()),
                         "histogram": {int(k): int(v) for k, v in zip(*np.unique(cn, return_counts=True))}},
        "lattice": {"name": lat.name, "lattice_constant_A": fit.lattice_constant,
                    "lattice_constant_given": lattice_constant is not None,
                    "rotation": fit.rotation.tolist(), "origin_A": fit.origin.tolist(), "rmsd_A": fit.rmsd,
                    "duplicate_sites": int(fit.duplicate.sum()), "outliers": fit.info["outliers"]},
        "strain": {"sigma_A": sigma, "frame": "object (x, y, z); crystal-frame values under 'crystal'",
                   "components": list(VOIGT), "all": _stats(voigt(eps), np.ones(n, bool)),
                   "interior": _stats(voigt(eps), interior),
                   "crystal": {"all": _stats(voigt(eps_crystal), np.ones(n, bool)),
                               "interior": _stats(voigt(eps_crystal), interior)}},
        "bond_order": {"Q4": bo.Q4, "Q6": bo.Q6, "mean_order": float(np.mean(bo.order))},
        "rdf_first_peak_A": float(rdf.r[np.argmax(rdf.g)]),
    }
    groups = {
        "atoms": {"positions": x, "species": species, "coordination": cn, "ideal": fit.ideal,
                  "displacement": fit.displacement, "duplicate_site": fit.duplicate, "outlier": fit.outlier,
                  "cells": fit.cells, "basis_index": fit.basis_index, "strain": eps,
                  "strain_crystal": eps_crystal, "q4_avg": bo.q4_avg, "q6_avg": bo.q6_avg,
                  "bond_order": bo.order},
        "lattice": {"rotation": fit.rotation, "origin": fit.origin,
                    "lattice_constant": np.float64(fit.lattice_constant), "cell": lat.cell, "basis": lat.basis},
        "rdf": {"r": rdf.r, "g": rdf.g, "counts": rdf.counts},
        "strain_maps": {p: {"u": m.u, "v": m.v, "strain": m.strain, "rotation": m.rotation,
                            "inside": m.inside, "axes": m.axes} for p, m in maps.items()},
    }

    figures = {"rdf": (plots.rdf_figure(rdf), "Radial distribution function")}
    for p, m in maps.items():
        figures[f"strain_{p}"] = (plots.strain_map_figure(m), f"Strain through the centre, normal {p} "
                                                             f"(Gaussian sigma {sigma:g} Å)")

    if do_chem:
        # one atom per site: the chemistry of a site is that of the atom closest to it
        keep = ~fit.duplicate
        h = fit.fcc_indices()[keep]
        sub = chemical_order(h, species[keep], smooth=smooth)
        pairs = site_pairs(site_neighbours(h, fcc_shell_offsets(1)))
        vol = fit.lattice_constant ** 3 / 4.0
        sub_grains = find_grains(sub.phase, pairs, min_size=min_grain_size, positions=x[keep], atomic_volume=vol)
        ap_label = np.char.add(np.char.add(sub.phase, ":"), sub.translation.astype(str))
        sub_domains = find_grains(ap_label, pairs, min_size=min_grain_size, ignore=("A1:-1",), positions=x[keep],
                                  atomic_volume=vol)
        co, grains, domains = _expand(sub, sub_grains, sub_domains, keep)
        for k, name in enumerate(VARIANTS):
            columns[f"eta_{name}"] = co.order[:, k]
        columns.update({"phase": co.phase, "grain": grains.label, "antiphase_variant": co.translation,
                        "antiphase_domain": domains.label, "antisite": co.antisite,
                        "antiphase_boundary": co.antiphase_boundary})
        fractions = {p: float(np.mean(co.phase == p)) for p in PHASES}
        summary["chemical_order"] = {
            "species": co.species.tolist(),
            "definition": "eta: Bragg-Williams order of the phase variant on the atom and its 12 first "
                          "neighbours, anti-phase variant chosen on shells 2-3 (aetcore.analysis.order)",
            "mean_eta": dict(zip(VARIANTS, np.nanmean(co.order, axis=0).tolist())),
            "phase_fractions": fractions,
            "warren_cowley": {"pair": co.species.tolist(), "shells": [1, 2, 3],
                              "alpha": co.warren_cowley.tolist()},
            "duplicates_left_out": int(fit.duplicate.sum()),
            "antisites": int(co.antisite.sum()),
            "swap_defects": int(len(co.swaps)),
            "antiphase_boundary_atoms": int(co.antiphase_boundary.sum()),
            "grains": grains.table(),
            "antiphase_domains": [dict(d, phase=d["phase"].split(":")[0], variant=int(d["phase"].split(":")[1]))
                                  for d in domains.table()],
            "smooth": smooth, "min_grain_size": min_grain_size,
        }
        groups["order"] = {"eta": co.order, "eta_averaged": co.averaged, "phase": co.phase,
                           "antiphase_variant": co.translation, "antisite": co.antisite, "swaps": co.swaps,
                           "antiphase_boundary": co.antiphase_boundary, "warren_cowley": co.warren_cowley,
                           "grain": grains.label, "antiphase_domain": domains.label}
        groups["grains"] = {"phase": grains.phase, "atoms": grains.size, "volume_A3": grains.volume,
                            "diameter_A": grains.diameter, "centroid_A": grains.centroid}
        for p in planes:
            figures[f"phase_{p}"] = (plots.phase_map_figure(x, co.phase, normal=p, thickness=thickness,
                                                            antisite=co.antisite),
                                     f"Phases in a {thickness:g} Å slab through the centre, normal {p}")
            figures[f"order_{p}"] = (plots.order_map_figure(x, co.order, normal=p, thickness=thickness),
                                     f"Local order parameters, normal {p}")

    csv_columns = list(columns)
    summary["csv_columns"] = csv_columns
    pngs = [f"{name}.png" for name in figures]
    tables = ["atoms.csv"] + (["grains.csv"] if do_chem else [])
    summary["outputs"] = [f"{ANALYSIS_DIR}/{f}" for f in tables + ["analysis.h5", "summary.json"] + pngs]

    write_csv(out / "atoms.csv", columns)
    if do_chem:
        write_csv(out / "grains.csv", _grain_columns(grains, "grain"))
        write_csv(out / "antiphase_domains.csv", _grain_columns(domains, "domain"))
        summary["outputs"].insert(2, f"{ANALYSIS_DIR}/antiphase_domains.csv")
    write_h5(out / "analysis.h5", groups, attrs={"lattice": lat.name, "strain_sigma_A": sigma,
                                                 "units": "positions, displacements in Å; strain dimensionless"})
    if report:
        # the report renders the PNGs once (and closes the figures); analysis/ gets copies of them
        from ..report.page import REPORT_DIR
        _report(root, summary, figures)
        for name in figures:
            data = (root / REPORT_DIR / f"analysis-{name}.png").read_bytes()
            with atomic_path(out / f"{name}.png") as tmp:
                Path(tmp).write_bytes(data)
    else:
        for name, (fig, _) in figures.items():
            with atomic_path(out / f"{name}.png") as tmp:
                fig.savefig(tmp, dpi=110, format="png")
    write_json(out / "summary.json", summary)
    return summary


def _grain_columns(g, kind: str) -> dict:
    """Columns of a grains table (one row per grain)."""
    cols = {kind: np.arange(len(g.size)), "phase": g.phase, "atoms": g.size, "volume_A3": g.volume,
            "diameter_A": g.diameter, "centroid_x": g.centroid[:, 0], "centroid_y": g.centroid[:, 1],
            "centroid_z": g.centroid[:, 2]}
    if kind == "domain":  # labels are "phase:variant"
        parts = np.char.partition(g.phase.astype(str), ":")
        cols["phase"], cols["variant"] = parts[:, 0], parts[:, 2]
    return cols


def _expand(co, grains, domains, keep):
    """Per-atom results of the kept atoms scattered back to all atoms (left-out atoms: phase "-",
    eta NaN, no grain, no defect flags)."""
    from dataclasses import replace
    n = keep.size
    idx = np.flatnonzero(keep)

    def full(values, fill, dtype=None):
        v = np.asarray(values)
        out = np.full((n,) + v.shape[1:], fill, dtype=dtype or v.dtype)
        out[idx] = v
        return out

    co = replace(co, order=full(co.order, np.nan), averaged=full(co.averaged, np.nan),
                 phase=full(co.phase, "-", "<U4"), translation=full(co.translation, -1),
                 antisite=full(co.antisite, False), antiphase_boundary=full(co.antiphase_boundary, False),
                 swaps=idx[co.swaps] if len(co.swaps) else co.swaps)
    grains = replace(grains, label=full(grains.label, -1))
    domains = replace(domains, label=full(domains.label, -1))
    return co, grains, domains


def _report(root: Path, summary: dict, figures: dict) -> None:
    """The "Analysis" section of the folder's report (figures are passed on and closed there)."""
    from ..report.page import add_section
    lat = summary["lattice"]
    rows = [("Atoms", f"{summary['atoms']} ({', '.join(f'{k} {v}' for k, v in summary['counts'].items())})"),
            ("Lattice", f"{lat['name']}, a = {lat['lattice_constant_A']:.4f} Å"
                        f"{' (given)' if lat['lattice_constant_given'] else ' (fitted)'}, "
                        f"RMS displacement {lat['rmsd_A']:.3f} Å"),
            ("Mean coordination", f"{summary['coordination']['mean']:.2f}")]
    st = summary["strain"]["interior"]
    if st.get("atoms"):
        rows.append(("Strain, interior atoms (mean ± sd, %)",
                     ", ".join(f"{c} {100 * st['mean'][c]:+.2f} ± {100 * st['std'][c]:.2f}" for c in VOIGT)))
    co = summary.get("chemical_order")
    if co:
        rows.append(("Phases", ", ".join(f"{p} {100 * f:.1f} %" for p, f in co["phase_fractions"].items() if f > 0)))
        rows.append(("Grains", ", ".join(f"{g['phase']} {g['atoms']}" for g in co["grains"])))
        rows.append(("Defects", f"{co['antisites']} anti-sites, {co['swap_defects']} swap pairs, "
                                f"{co['antiphase_boundary_atoms']} atoms at anti-phase boundaries"))
        rows.append(("Warren–Cowley α (shells 1–3)", ", ".join(f"{a:+.3f}" for a in co["warren_cowley"]["alpha"])))
    body = "<table>" + "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in rows)
    body += "</table><p>Tables: analysis/atoms.csv, analysis/analysis.h5, analysis/summary.json.</p>"
    add_section(root, "analysis", "Analysis", body, {k: v for k, v in figures.items()}, order=100)
