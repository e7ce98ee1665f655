"""Figures of a tracked time series (:mod:`aetcore.analysis.track`): nucleus size trajectories and per-atom
displacement histograms. Every function returns a matplotlib Figure on an Agg canvas (no display,
no pyplot state); save it with ``fig.savefig(path)``.
"""
from __future__ import annotations

import numpy as np

__all__ = ["nucleus_sizes_figure", "displacements_figure", "FATE_COLORS"]

#: Line colour of each track fate.
FATE_COLORS = {"growth": "tab:green", "fluctuation": "tab:blue", "dissolution": "tab:red",
               "merging": "tab:purple", "division": "tab:orange", "undetermined": "tab:gray"}


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _column(table, key, name):
    if not isinstance(table, dict) or key not in table:
        raise ValueError(f"{name}: expected a dict of columns with {key!r} (TrackResult.{name}), "
                         f"got {type(table).__name__}{'' if not isinstance(table, dict) else ' without it'}")
    return np.asarray(table[key])


def nucleus_sizes_figure(tracks, n_times=None):
    """Size of every nucleus against time, one line per track, coloured by fate.

    Division and merging are drawn as dashed lines from the parent track's last point to each child
    track's first point.

    Parameters
    ----------
    tracks : dict
        :attr:`aetcore.analysis.track.TrackResult.tracks` (``id -> {"times", "sizes", "parents", "fate"}``).
    n_times : int, optional
        Number of time points (x axis range); default from the tracks.

    Returns
    -------
    matplotlib.figure.Figure
    """
    if not isinstance(tracks, dict):
        raise TypeError(f"tracks: expected TrackResult.tracks (a dict), got {type(tracks).__name__}")
    fig = _figure(6.0, 4.0)
    ax = fig.add_subplot()
    seen = set()
    for tid, tr in tracks.items():
        try:
            times, sizes, fate = tr["times"], tr["sizes"], tr["fate"]
        except (TypeError, KeyError):
            raise ValueError(f"tracks[{tid!r}]: expected 'times', 'sizes' and 'fate'") from None
        color = FATE_COLORS.get(fate, "black")
        ax.plot(times, sizes, "o-", color=color, label=fate if fate not in seen else None)
        seen.add(fate)
        ax.annotate(str(tid), (times[-1], sizes[-1]), textcoords="offset points", xytext=(4, 2), fontsize=7)
        for p in tr.get("parents", []):
            par = tracks[p]
            ax.plot([par["times"][-1], times[0]], [par["sizes"][-1], sizes[0]], "--", color=color, lw=1)
    if n_times is None:
        n_times = 1 + max((max(tr["times"]) for tr in tracks.values()), default=0)
    ax.set_xticks(range(int(n_times)))
    ax.set_xlim(-0.3, n_times - 0.7)
    ax.set_xlabel("time point")
    ax.set_ylabel("nucleus size (atoms)")
    ax.set_title(f"{len(tracks)} nucleus tracks")
    if seen:
        ax.legend(title="fate", fontsize=8)
    return fig


def displacements_figure(atoms, *, bins=40):
    """Histogram of the per-atom displacement between consecutive times (paired atoms only).

    Parameters
    ----------
    atoms : dict
        :attr:`aetcore.analysis.track.TrackResult.atoms` (columns ``time_from`` and ``displacement``, Å).
    bins : int
        Number of bins.

    Returns
    -------
    matplotlib.figure.Figure
    """
    t = _column(atoms, "time_from", "atoms")
    d = _column(atoms, "displacement", "atoms").astype(np.float64)
    if isinstance(bins, bool) or not isinstance(bins, (int, np.integer)) or bins < 1:
        raise ValueError(f"bins: expected a positive int, got {bins!r}")
    ok = np.isfinite(d)
    fig = _figure(6.0, 4.0)
    ax = fig.add_subplot()
    if ok.any():
        edges = np.linspace(0.0, max(float(d[ok].max()), 1e-6), bins + 1)
        for k in np.unique(t[ok]):
            sel = ok & (t == k)
            ax.hist(d[sel], bins=edges, histtype="step", lw=1.5,
                    label=f"{k} → {k + 1}: median {np.median(d[sel]):.2f} Å")
        ax.set_yscale("log")
        ax.legend(fontsize=8)
    ax.set_xlabel("displacement (Å)")
    ax.set_ylabel("atoms")
    ax.set_title("per-atom displacement between time points")
    return fig
