"""Figures of the structure analysis: strain maps, order-parameter and phase maps, the RDF.

Every function returns a :class:`matplotlib.figure.Figure` built without pyplot (no global state,
no display needed: saving renders with Agg). Close nothing; the caller saves or discards it.
"""
from __future__ import annotations

import numpy as np
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure

from .._util.validate import as_positions, positive
from .order import PHASES, VARIANTS
from .strain import VOIGT, StrainMap, plane_axes

__all__ = ["strain_map_figure", "order_map_figure", "phase_map_figure", "rdf_figure", "PHASE_COLOURS"]

#: Colour of each phase label in :func:`phase_map_figure`.
PHASE_COLOURS = {"L10x": "#d62728", "L10y": "#2ca02c", "L10z": "#1f77b4", "L12": "#ff7f0e", "A1": "#7f7f7f"}

_AXIS_NAMES = {"x": ("y", "z"), "y": ("x", "z"), "z": ("x", "y")}


def _plane_labels(axes: np.ndarray):
    for k, (a, b) in _AXIS_NAMES.items():
        if np.allclose(axes[2], np.eye(3)["xyz".index(k)]):
            return f"{a} (Å)", f"{b} (Å)", f"{k} = "
    return "u (Å)", "v (Å)", "offset "


def strain_map_figure(smap: StrainMap, *, components=VOIGT, limit=None, title=None) -> Figure:
    """One panel per strain component of a :func:`~aetcore.analysis.strain.strain_map`, in %.

    Parameters
    ----------
    smap : StrainMap
    components : sequence of str
        Among :data:`~aetcore.analysis.strain.VOIGT` (tensor components, not engineering shear).
    limit : float, optional
        Symmetric colour limit in % (default: the 99th percentile of ``|strain|`` over the panels).
    title : str, optional
    """
    if not isinstance(smap, StrainMap):
        raise TypeError(f"smap: expected a StrainMap, got {type(smap).__name__}")
    comps = list(components)
    for c in comps:
        if c not in VOIGT:
            raise ValueError(f"components: expected names from {VOIGT}, got {c!r}")
    index = {"x": 0, "y": 1, "z": 2}
    data = [100.0 * smap.strain[..., index[c[0]], index[c[1]]] for c in comps]
    if limit is None:
        vals = np.concatenate([np.abs(d[np.isfinite(d)]) for d in data]) if data else np.zeros(1)
        limit = float(np.percentile(vals, 99)) if vals.size else 1.0
        limit = limit if limit > 0 else 1.0
    else:
        limit = positive(limit, "limit")
    ncol = min(3, len(comps))
    nrow = int(np.ceil(len(comps) / ncol))
    fig = Figure(figsize=(3.4 * ncol, 3.0 * nrow), layout="constrained")
    xl, yl, prefix = _plane_labels(smap.axes)
    ext = (smap.u[0], smap.u[-1], smap.v[0], smap.v[-1])
    im = None
    for k, (c, d) in enumerate(zip(comps, data)):
        ax = fig.add_subplot(nrow, ncol, k + 1)
        im = ax.imshow(d, origin="lower", extent=ext, cmap="RdBu_r", vmin=-limit, vmax=limit)
        ax.set_title(f"ε_{c}")
        ax.set_xlabel(xl)
        ax.set_ylabel(yl)
    if im is not None:
        fig.colorbar(im, ax=fig.axes, label="strain (%)", shrink=0.8)
    fig.suptitle(title or f"Strain, plane {prefix}{smap.offset:g} Å")
    return fig


def _slab(positions, normal, offset, thickness, centre):
    x = as_positions(positions)
    axes = plane_axes(normal)
    c = x.mean(axis=0) if centre is None else np.asarray(centre, np.float64)
    rel = x - c
    depth = rel @ axes[2] - float(offset)
    sel = np.abs(depth) <= 0.5 * positive(thickness, "thickness")
    return axes, rel[sel] @ axes[0], rel[sel] @ axes[1], sel


def order_map_figure(positions, order, *, normal="z", offset: float = 0.0, thickness: float = 2.0,
                     centre=None, title=None) -> Figure:
    """Local order parameters of the atoms in a slab, one panel per variant (L10x, L10y, L10z, L12).

    Parameters
    ----------
    positions : (n, 3) array, Å
    order : (n, 4) array
        :func:`~aetcore.analysis.order.local_order`.
    normal : {"x", "y", "z"} or 3-vector
        Slab normal, object frame.
    offset : float
        Slab centre along the normal from `centre`, Å.
    thickness : float
        Slab thickness, Å (default 2 Å: one atomic plane of a ~3.9 Å cubic lattice along <100>).
    centre : (3,) array, optional
        Default: the mean position.
    """
    o = np.asarray(order, np.float64)
    x = as_positions(positions)
    if o.shape != (x.shape[0], 4):
        raise ValueError(f"order: expected shape ({x.shape[0]}, 4), got {o.shape}")
    axes, u, v, sel = _slab(x, normal, offset, thickness, centre)
    xl, yl, prefix = _plane_labels(axes)
    fig = Figure(figsize=(12.0, 3.3), layout="constrained")
    sc = None
    for k, name in enumerate(VARIANTS):
        ax = fig.add_subplot(1, 4, k + 1)
        sc = ax.scatter(u, v, c=o[sel, k], cmap="viridis", vmin=-0.5, vmax=1.0, s=12, edgecolors="none")
        ax.set_aspect("equal")
        ax.set_title(f"η {name}")
        ax.set_xlabel(xl)
        ax.set_ylabel(yl)
    if sc is not None:
        fig.colorbar(sc, ax=fig.axes, label="local order η", shrink=0.8)
    fig.suptitle(title or f"Local order, slab {prefix}{offset:g} ± {thickness / 2:g} Å ({int(sel.sum())} atoms)")
    return fig


def phase_map_figure(positions, phase, *, normal="z", offset: float = 0.0, thickness: float = 2.0,
                     centre=None, antisite=None, title=None) -> Figure:
    """Phase of the atoms in a slab (colours :data:`PHASE_COLOURS`), anti-sites ringed in black.

    Parameters
    ----------
    positions : (n, 3) array, Å
    phase : (n,) str array
        :func:`~aetcore.analysis.order.classify_phases` labels; atoms with other labels are not drawn.
    normal, offset, thickness, centre
        As in :func:`order_map_figure`.
    antisite : (n,) bool array, optional
    """
    x = as_positions(positions)
    ph = np.asarray(phase).astype(str)
    if ph.shape != (x.shape[0],):
        raise ValueError(f"phase: expected one label per atom ({x.shape[0]}), got shape {ph.shape}")
    axes, u, v, sel = _slab(x, normal, offset, thickness, centre)
    known = np.isin(ph[sel], PHASES)  # other labels (e.g. "-" for atoms left out) are not drawn
    u, v = u[known], v[known]
    sel = np.flatnonzero(sel)[known]
    xl, yl, prefix = _plane_labels(axes)
    fig = Figure(figsize=(5.0, 4.4), layout="constrained")
    ax = fig.add_subplot(1, 1, 1)
    cmap = ListedColormap([PHASE_COLOURS[p] for p in PHASES])
    code = np.searchsorted(np.asarray(PHASES), ph[sel], sorter=np.argsort(PHASES))
    code = np.argsort(PHASES)[code]
    ax.scatter(u, v, c=code, cmap=cmap, vmin=-0.5, vmax=len(PHASES) - 0.5, s=18, edgecolors="none")
    if antisite is not None:
        a = np.asarray(antisite, bool)[sel]
        ax.scatter(u[a], v[a], s=40, facecolors="none", edgecolors="k", linewidths=0.8, label="anti-site")
    for p in PHASES:  # legend entries
        ax.scatter([], [], c=PHASE_COLOURS[p], s=18, label=p)
    ax.legend(fontsize=7, loc="upper right", frameon=False)
    ax.set_aspect("equal")
    ax.set_xlabel(xl)
    ax.set_ylabel(yl)
    ax.set_title(title or f"Phases, slab {prefix}{offset:g} ± {thickness / 2:g} Å")
    return fig


def rdf_figure(rdf, *, title=None) -> Figure:
    """``g(r)`` of an :class:`~aetcore.analysis.neighbors.RDF`."""
    fig = Figure(figsize=(5.0, 3.2), layout="constrained")
    ax = fig.add_subplot(1, 1, 1)
    ax.plot(rdf.r, rdf.g, lw=1.0)
    ax.set_xlabel("r (Å)")
    ax.set_ylabel("g(r)")
    ax.set_title(title or "Radial distribution function")
    return fig
