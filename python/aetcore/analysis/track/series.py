"""A time series of models tracked end to end (:func:`track_series`): registration onto the first
model, correspondence, nuclei, their events, tracks and fates (the rules are in
:mod:`aetcore.analysis.track`).
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..._util.validate import as_positions, at_least, one_of, positive, resolve_threads
from .correspondence import correspond
from .nuclei import _size_change_kind, find_nuclei, link_nuclei
from .registration import Registration, _fraction, icp

__all__ = ["TrackResult", "track_series", "FATES"]


FATES = ("growth", "fluctuation", "dissolution", "merging", "division", "undetermined")


# ----------------------------------------------------------------------------------------------
# A series of models
# ----------------------------------------------------------------------------------------------

class TrackResult(NamedTuple):
    """Everything :func:`track_series` found, in the frame of the first model (Å).

    Attributes
    ----------
    positions : list of (n_t, 3) float64
        Registered positions of each time.
    species : list of (n_t,) str arrays
    order : list of (n_t,) float64
        Order parameter of each atom.
    nuclei_labels : list of (n_t,) int64
        Global nucleus id of each atom (``-1`` none); ids run on across times.
    registrations : list of Registration
        Model ``t`` in its own frame -> frame of model 0 (identity for t = 0).
    correspondences : list of Correspondence
        Atom pairs ``t -> t+1`` (T - 1 of them).
    atoms : dict of column arrays
        Per-atom changes ``t -> t+1`` (see :func:`track_series`).
    nuclei : dict of column arrays
        One row per nucleus and time.
    events : list of dict
        Nucleus events between consecutive times.
    tracks : dict
        ``track id -> {"nuclei", "times", "sizes", "parents", "children", "fate"}``.
    """
    positions: list
    species: list
    order: list
    nuclei_labels: list
    registrations: list
    correspondences: list
    atoms: dict
    nuclei: dict
    events: list
    tracks: dict


def _as_models(models, species, orders):
    if isinstance(models, np.ndarray) or not hasattr(models, "__len__"):
        raise TypeError(f"models: expected a sequence of (n_t, 3) position arrays, got {type(models).__name__}")
    if len(models) < 1:
        raise ValueError("models: expected at least one model, got none")
    xs = [as_positions(m, f"models[{k}]") for k, m in enumerate(models)]
    for k, x in enumerate(xs):
        if len(x) < 4:
            raise ValueError(f"models[{k}]: expected at least 4 atoms, got {len(x)}")
    sps, ods = [], []
    for name, seq, out in (("species", species, sps), ("orders", orders, ods)):
        if seq is None:
            out.extend([None] * len(xs))
            continue
        if len(seq) != len(xs):
            raise ValueError(f"{name}: expected one entry per model ({len(xs)}), got {len(seq)}")
        for k, (s, x) in enumerate(zip(seq, xs)):
            a = np.asarray(s, dtype=str if name == "species" else np.float64)
            if a.shape != (len(x),):
                raise ValueError(f"{name}[{k}]: expected one value per atom, shape ({len(x)},), got shape {a.shape}")
            if name == "orders" and not np.isfinite(a).all():
                raise ValueError(f"{name}[{k}]: expected finite values, got NaN or Inf")
            out.append(a)
    return xs, sps, ods


def _check_options(register, trim, search_angle, match_cutoff, method, neighbour_cutoff, threshold,
                   core_threshold, min_size, min_core, min_coordination, min_overlap, min_change, rel_change,
                   threads):
    """Refuse bad options of :func:`track_series` before any work; return the normalised numbers."""
    if not isinstance(register, bool):
        raise TypeError(f"register: expected a bool, got {type(register).__name__}")
    trim = _fraction(trim, "trim")
    search_angle = at_least(search_angle, 0, "search_angle")
    resolve_threads(threads)
    one_of(method, ("hungarian", "mutual"), "method")
    match_cutoff = None if match_cutoff is None else positive(match_cutoff, "match_cutoff")
    neighbour_cutoff = None if neighbour_cutoff is None else positive(neighbour_cutoff, "neighbour_cutoff")
    # the nucleus options, checked by find_nuclei itself on a 4-atom dummy
    find_nuclei(np.eye(4, 3), np.zeros(4), threshold=threshold, core_threshold=core_threshold, min_size=min_size,
                min_core=min_core, min_coordination=min_coordination, cutoff=1.0, threads=1)
    _fraction(min_overlap, "min_overlap")
    min_change = at_least(min_change, 0, "min_change", integer=True)
    rel_change = at_least(rel_change, 0, "rel_change")
    return trim, search_angle, match_cutoff, neighbour_cutoff, min_change, rel_change


def track_series(models, species=None, *, orders=None, register=True, trim=0.9, search_angle=30.0,
                 match_cutoff=None, method="hungarian", neighbour_cutoff=None, threshold=0.5, core_threshold=0.7, min_size=13,
                 min_core=3, min_coordination=7, min_overlap=0.3, min_change=3, rel_change=0.1,
                 threads=None) -> TrackResult:
    """Register, pair and compare a time series of atomic models of one particle; find and follow nuclei.

    Parameters
    ----------
    models : sequence of (n_t, 3) arrays
        Atom positions at successive times, Å, each in its own frame.
    species : sequence of (n_t,) str arrays, optional
        Element symbols per model (species changes are reported if given).
    orders : sequence of (n_t,) arrays, optional
        Per-atom order parameter per model. Default: the normalised bond-orientational order
        :attr:`aetcore.analysis.bond_order.BondOrder.order` (1 fcc, ~0.36 amorphous).
    register : bool
        Register model t onto registered model t-1 by :func:`icp` (default). False: the models are
        already in one frame.
    trim, search_angle
        ICP fraction of pairs kept and largest turn searched (degrees), see :func:`icp`.
    match_cutoff : float, optional
        Largest distance of an atom pair, Å (default half the median nearest-neighbour distance).
    method : {"hungarian", "mutual"}
        Pairing, see :func:`correspond`.
    neighbour_cutoff : float, optional
        Neighbour distance for the bond order and nuclei, Å (default 1.207 × median nn distance).
    threshold, core_threshold, min_size, min_core, min_coordination
        Nuclei, see :func:`find_nuclei`.
    min_overlap, min_change, rel_change
        Events, see :func:`link_nuclei`.
    threads : int, optional
        Worker threads of the nearest-neighbour queries (None: every core the process may use);
        the result does not depend on it.

    Returns
    -------
    TrackResult
        ``atoms`` columns: ``time_from, time_to, atom_from, atom_to`` (-1 where the atom has no
        partner), ``species_from, species_to, species_changed``, ``x, y, z`` (at ``time_from``, or at
        ``time_to`` for atoms that appeared), ``dx, dy, dz, displacement`` (Å, NaN without partner),
        ``order_from, order_to, order_change``, ``nucleus_from, nucleus_to``.
        ``nuclei`` columns: ``nucleus, time, track, size, core_size, x, y, z`` (centroid, Å),
        ``radius_of_gyration`` (Å), ``mean_order, fate``.
    """
    xs, sps, ods = _as_models(models, species, orders)
    trim, search_angle, match_cutoff, neighbour_cutoff, min_change, rel_change = _check_options(
        register, trim, search_angle, match_cutoff, method, neighbour_cutoff, threshold, core_threshold, min_size,
        min_core, min_coordination, min_overlap, min_change, rel_change, threads)

    T = len(xs)
    regs = [Registration(np.eye(3), np.zeros(3), 0.0, len(xs[0]), 0, True)]
    pos = [xs[0]]
    for k in range(1, T):
        if register:
            reg = icp(xs[k], pos[k - 1], trim=trim, search_angle=search_angle, threads=threads)
        else:
            reg = Registration(np.eye(3), np.zeros(3), float("nan"), 0, 0, True)
        regs.append(reg)
        pos.append(xs[k] @ reg.rotation.T + reg.translation)
    sps = [np.full(len(x), "", dtype="<U1") if s is None else s for s, x in zip(sps, pos)]
    if any(o is None for o in ods):
        from ..bond_order import bond_order
        ods = [bond_order(x, cutoff=neighbour_cutoff, threads=threads).order if o is None else o
               for o, x in zip(ods, pos)]

    # nuclei per time, with global ids
    local = [find_nuclei(x, o, threshold=threshold, core_threshold=core_threshold, min_size=min_size,
                         min_core=min_core, min_coordination=min_coordination, cutoff=neighbour_cutoff,
                         threads=threads) for x, o in zip(pos, ods)]
    offsets = np.cumsum([0] + [int(lab.max()) + 1 for lab in local])
    labels = [np.where(lab >= 0, lab + offsets[t], -1) for t, lab in enumerate(local)]

    corrs = [correspond(pos[t], pos[t + 1], cutoff=match_cutoff, method=method, threads=threads)
             for t in range(T - 1)]
    atoms = _atom_table(pos, sps, ods, labels, corrs)

    events = []
    for t, c in enumerate(corrs):
        for e in link_nuclei(labels[t], labels[t + 1], c, min_overlap=min_overlap, min_change=min_change,
                             rel_change=rel_change):
            events.append({"time_from": t, "time_to": t + 1, **e})
    tracks, track_of = _tracks(labels, events, T, min_change, rel_change)
    nuclei = _nucleus_table(pos, ods, labels, core_threshold, track_of, tracks)
    return TrackResult(pos, sps, list(ods), labels, regs, corrs, atoms, nuclei, events, tracks)


def _atom_table(pos, sps, ods, labels, corrs) -> dict:
    cols = {k: [] for k in ("time_from", "time_to", "atom_from", "atom_to", "species_from", "species_to",
                            "species_changed", "x", "y", "z", "dx", "dy", "dz", "displacement", "order_from",
                            "order_to", "order_change", "nucleus_from", "nucleus_to")}
    for t, c in enumerate(corrs):
        ia = np.concatenate([c.index_a, c.unmatched_a, np.full(len(c.unmatched_b), -1)])
        ib = np.concatenate([c.index_b, np.full(len(c.unmatched_a), -1), c.unmatched_b])
        n = len(ia)
        ha, hb = ia >= 0, ib >= 0
        both = ha & hb
        nan3 = np.full((n, 3), np.nan)
        xa = nan3.copy()
        xa[ha] = pos[t][ia[ha]]
        xb = nan3.copy()
        xb[hb] = pos[t + 1][ib[hb]]
        where = np.where(ha[:, None], xa, xb)
        d = xb - xa
        spa = np.where(ha, sps[t][np.maximum(ia, 0)], "")
        spb = np.where(hb, sps[t + 1][np.maximum(ib, 0)], "")
        oa = np.where(ha, ods[t][np.maximum(ia, 0)], np.nan)
        ob = np.where(hb, ods[t + 1][np.maximum(ib, 0)], np.nan)
        cols["time_from"].append(np.full(n, t))
        cols["time_to"].append(np.full(n, t + 1))
        cols["atom_from"].append(ia)
        cols["atom_to"].append(ib)
        cols["species_from"].append(spa)
        cols["species_to"].append(spb)
        cols["species_changed"].append(both & (spa != spb))
        for k, name in enumerate("xyz"):
            cols[name].append(where[:, k])
            cols["d" + name].append(d[:, k])
        cols["displacement"].append(np.linalg.norm(d, axis=1))
        cols["order_from"].append(oa)
        cols["order_to"].append(ob)
        cols["order_change"].append(ob - oa)
        cols["nucleus_from"].append(np.where(ha, labels[t][np.maximum(ia, 0)], -1))
        cols["nucleus_to"].append(np.where(hb, labels[t + 1][np.maximum(ib, 0)], -1))
    if not corrs:
        return {k: np.zeros(0) for k in cols}
    return {k: np.concatenate(v) for k, v in cols.items()}


def _tracks(labels, events, T, min_change, rel_change):
    """Chains of one-to-one links and their fates (rules in the module docstring)."""
    track_of = {}
    tracks = {}

    def new(nucleus, t, size, parents):
        tid = len(tracks)
        tracks[tid] = {"nuclei": [nucleus], "times": [t], "sizes": [size], "parents": parents,
                       "children": [], "steps": [], "end": None}
        track_of[nucleus] = tid
        for p in parents:
            tracks[p]["children"].append(tid)

    size = {int(i): int(c) for lab in labels for i, c in zip(*np.unique(lab[lab >= 0], return_counts=True))}
    for nucleus in np.unique(labels[0][labels[0] >= 0]):
        new(int(nucleus), 0, size[int(nucleus)], [])
    for t in range(1, T):
        for e in (e for e in events if e["time_to"] == t):
            if e["event"] in ("growth", "shrinkage", "stable"):
                tid = track_of[e["from"][0]]
                q = e["to"][0]
                tr = tracks[tid]
                tr["nuclei"].append(q)
                tr["times"].append(t)
                tr["sizes"].append(size[q])
                tr["steps"].append(e["event"])
                track_of[q] = tid
            else:
                parents = sorted({track_of[p] for p in e["from"]})
                for p in parents:
                    tracks[p]["end"] = e["event"]
                for q in e["to"]:
                    new(q, t, size[q], parents)
    for tid, tr in tracks.items():
        if tr["end"] is not None:
            tr["fate"] = tr["end"] if tr["end"] != "merging+division" else "merging"
        elif tr["times"][-1] != T - 1 or len(tr["times"]) == 1:
            tr["fate"] = "undetermined"
        else:
            grew = _size_change_kind(tr["sizes"][0], tr["sizes"][-1], min_change, rel_change) == "growth"
            tr["fate"] = "growth" if grew and "shrinkage" not in tr["steps"] else "fluctuation"
        del tr["end"]
    # events refer to tracks too
    for e in events:
        e["tracks_from"] = sorted({track_of[p] for p in e["from"]})
        e["tracks_to"] = sorted({track_of[q] for q in e["to"]})
    return tracks, track_of


def _nucleus_table(pos, ods, labels, core_threshold, track_of, tracks) -> dict:
    rows = {k: [] for k in ("nucleus", "time", "track", "size", "core_size", "x", "y", "z",
                            "radius_of_gyration", "mean_order", "fate")}
    for t, (x, o, lab) in enumerate(zip(pos, ods, labels)):
        m = lab >= 0
        if not m.any():
            continue
        ids, inv, cnt = np.unique(lab[m], return_inverse=True, return_counts=True)
        c = np.stack([np.bincount(inv, weights=x[m][:, k]) for k in range(3)], axis=1) / cnt[:, None]
        rg = np.sqrt(np.bincount(inv, weights=((x[m] - c[inv]) ** 2).sum(axis=1)) / cnt)
        rows["nucleus"].append(ids)
        rows["time"].append(np.full(len(ids), t))
        rows["track"].append(np.array([track_of[int(i)] for i in ids]))
        rows["size"].append(cnt)
        rows["core_size"].append(np.bincount(inv, weights=o[m] >= core_threshold).astype(np.int64))
        for k, name in enumerate("xyz"):
            rows[name].append(c[:, k])
        rows["radius_of_gyration"].append(rg)
        rows["mean_order"].append(np.bincount(inv, weights=o[m]) / cnt)
        rows["fate"].append(np.array([tracks[track_of[int(i)]]["fate"] for i in ids], dtype=object))
    if not rows["nucleus"]:
        return {k: np.zeros(0, dtype=object if k == "fate" else np.float64) for k in rows}
    return {k: np.concatenate(v) for k, v in rows.items()}
