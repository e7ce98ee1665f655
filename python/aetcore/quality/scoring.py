"""Scoring a traced atomic model against the ground truth: which atoms were found, how far off they
are and whether their species is right.

:func:`match_atoms` registers the traced model to the truth by a global translation, pairs atoms one
to one within a distance and reports recall, precision, the RMSD of the pairs (overall and per axis),
the species accuracy and the species confusion matrix. :func:`literature_protocol` computes the
numbers the AET literature reports (nearest true atom within 1.5 Å, RMSD from the per-axis standard
deviations), so that results can be set beside published ones.

Positions are in Å in the object frame, species are element symbols; RMSDs are reported in pm
(CONVENTIONS.md).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import min_weight_full_bipartite_matching
from scipy.spatial import cKDTree

from .._util.validate import as_positions, positive

__all__ = ["MatchResult", "LiteratureScore", "match_atoms", "literature_protocol", "alignment_error"]

_MAX_REGISTER_ITERATIONS = 100


@dataclass(frozen=True)
class MatchResult:
    """The outcome of :func:`match_atoms`.

    Attributes
    ----------
    recall : float
        Matched pairs / ``n_truth``.
    precision : float
        Matched pairs / ``n_traced`` (NaN when no atoms were traced).
    rmsd_pm : float
        ``sqrt(mean |r_traced + translation - r_truth|^2)`` over the matched pairs, in pm (NaN with
        no pairs). The mean displacement is not subtracted (beyond the registration translation).
    rmsd_axes_pm : (3,) float array
        The same per axis ``(x, y, z)``, in pm; ``rmsd_pm**2 == sum(rmsd_axes_pm**2)``.
    species_accuracy : float or None
        Fraction of matched pairs whose species agree (None when either species list is None, NaN
        with no pairs).
    confusion : (k, k) int array or None
        ``confusion[a, b]`` = number of matched pairs with true species ``species_labels[a]`` and
        traced species ``species_labels[b]`` (rows truth, columns traced).
    species_labels : tuple of str or None
        Row and column labels of `confusion`.
    recall_by_species : dict or None
        For each true species, the fraction of true atoms of that species that were matched (None
        when `truth_species` was None).
    pairs : (m, 2) int array
        ``(truth index, traced index)`` of each matched pair, sorted by truth index.
    translation : (3,) float array
        Translation in Å added to the traced positions before matching (zeros if ``register=False``).
    n_truth, n_traced : int
        Numbers of true and traced atoms.
    max_distance : float
        The matching distance in Å.
    """

    recall: float
    precision: float
    rmsd_pm: float
    rmsd_axes_pm: np.ndarray
    species_accuracy: float | None
    confusion: np.ndarray | None
    species_labels: tuple | None
    recall_by_species: dict | None
    pairs: np.ndarray
    translation: np.ndarray
    n_truth: int
    n_traced: int
    max_distance: float
    n_matched: int = field(init=False)

    def __post_init__(self):
        object.__setattr__(self, "n_matched", int(self.pairs.shape[0]))

    def summary(self) -> str:
        """A few human-readable lines."""
        t = self.translation
        ax = self.rmsd_axes_pm
        lines = [
            f"matched {self.n_matched} atom pairs within {self.max_distance:g} Å (one to one)",
            f"  recall    {self.recall:.4f} ({self.n_matched}/{self.n_truth} true atoms)",
            f"  precision {self.precision:.4f} ({self.n_matched}/{self.n_traced} traced atoms)",
            f"  RMSD {self.rmsd_pm:.2f} pm (x {ax[0]:.2f}, y {ax[1]:.2f}, z {ax[2]:.2f} pm)",
            f"  translation applied to the traced atoms ({t[0]:.4f}, {t[1]:.4f}, {t[2]:.4f}) Å",
        ]
        if self.recall_by_species is not None:
            per = ", ".join(f"{k} {v:.4f}" for k, v in self.recall_by_species.items())
            lines.append(f"  recall by true species: {per}")
        if self.species_accuracy is not None:
            lines.append(f"  species accuracy {self.species_accuracy:.4f}")
            labels = [str(s) for s in self.species_labels]
            width = max([len(s) for s in labels] + [len(str(int(self.confusion.max(initial=0))))] + [5])
            lines.append("  confusion (rows truth, columns traced):")
            lines.append("  " + " " * width + " " + " ".join(s.rjust(width) for s in labels))
            for s, row in zip(labels, self.confusion):
                lines.append("  " + s.rjust(width) + " " + " ".join(str(int(v)).rjust(width) for v in row))
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()


class LiteratureScore(NamedTuple):
    """The outcome of :func:`literature_protocol`; unpacks as ``(fraction, rmsd_pm)``."""

    fraction: float
    rmsd_pm: float


# ------------------------------------------------------------------------------------------ inputs
def _as_species(species, n: int, name: str) -> np.ndarray:
    """Species as a 1-D array of str, one per atom."""
    if isinstance(species, str) or not hasattr(species, "__len__"):
        raise TypeError(f"{name}: expected a sequence of element symbols, one per atom, "
                        f"got {type(species).__name__}")
    s = np.asarray(species)
    if s.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D sequence of element symbols, got shape {s.shape}")
    if s.shape[0] != n:
        raise ValueError(f"{name}: expected one entry per atom ({n}), got {s.shape[0]}")
    if s.dtype.kind in "US":
        pass
    elif s.dtype.kind in "iu":
        pass  # integer labels are accepted and compared as their decimal strings
    elif s.dtype.kind == "O" and all(isinstance(v, str) for v in s.tolist()):
        pass
    elif s.size == 0:
        pass
    else:
        raise TypeError(f"{name}: expected element symbols (str) or integer labels, got dtype {s.dtype}")
    return s.astype(str)


def _pairs_within(truth: np.ndarray, traced: np.ndarray, radius: float):
    """All (truth i, traced j, distance) with distance <= radius (zero distances included)."""
    rec = cKDTree(truth).sparse_distance_matrix(cKDTree(traced), radius, output_type="ndarray")
    return rec["i"].astype(np.intp), rec["j"].astype(np.intp), rec["v"].astype(np.float64)


# ---------------------------------------------------------------------------------------- matching
def _assign(truth: np.ndarray, traced: np.ndarray, max_distance: float) -> np.ndarray:
    """One-to-one pairs within max_distance: the largest number of pairs and, among those, the least
    sum of squared distances. Returns (m, 2) int indices sorted by truth index.

    Solved as one sparse minimum-weight full bipartite matching (LAPJVsp) on a graph doubled with
    dummy nodes, so that a full matching always exists: rows are the true atoms then one dummy per
    traced atom, columns the traced atoms then one dummy per true atom. Edges: true i - traced j for
    each candidate pair (weight 1 + d^2/max_distance^2, in [1, 2]); true i - its dummy and the dummy
    of traced j - traced j (weight BIG: atom left unmatched); dummy of traced j - dummy of true i for
    each candidate pair (weight 1, the mirror image that lets the dummies of matched atoms pair up).
    A matching with M real pairs costs BIG (n_truth + n_traced - 2M) + (terms < 3M), so with
    BIG > 1.5 (min(n) + 1) more pairs always win, then the least sum of d^2.
    """
    nt, nr = truth.shape[0], traced.shape[0]
    if nt == 0 or nr == 0:
        return np.empty((0, 2), np.intp)
    i, j, d = _pairs_within(truth, traced, max_distance)
    if i.size == 0:
        return np.empty((0, 2), np.intp)
    big = 2.0 * (min(nt, nr) + 2)
    ar_t, ar_r = np.arange(nt), np.arange(nr)
    rows = np.concatenate([i, ar_t, nt + ar_r, nt + j])
    cols = np.concatenate([j, nr + ar_t, ar_r, nr + i])
    vals = np.concatenate([1.0 + (d / max_distance) ** 2, np.full(nt, big), np.full(nr, big),
                           np.ones(i.size)])
    graph = csr_matrix((vals, (rows, cols)), shape=(nt + nr, nr + nt))
    r, c = min_weight_full_bipartite_matching(graph)
    keep = (r < nt) & (c < nr)
    pairs = np.stack([r[keep], c[keep]], axis=1).astype(np.intp)
    return pairs[np.argsort(pairs[:, 0], kind="stable")]


def _mutual_nearest_translation(truth, traced, tree_truth, t, radius):
    """Mean (truth - traced - t) over mutual nearest neighbours closer than radius, or None."""
    moved = traced + t
    d_rt, i_rt = tree_truth.query(moved, distance_upper_bound=radius)  # traced -> nearest truth
    ok = np.isfinite(d_rt)
    if not ok.any():
        return None
    j = np.nonzero(ok)[0]
    i = i_rt[ok]
    _, j_back = cKDTree(moved).query(truth[i])  # truth -> nearest traced
    mutual = j_back == j
    if not mutual.any():
        return None
    return t + (truth[i[mutual]] - moved[j[mutual]]).mean(axis=0)


def _register(truth: np.ndarray, traced: np.ndarray, max_distance: float) -> np.ndarray:
    """The translation t that best aligns traced + t onto truth.

    Coarse stage (from each of two starts, zero and the difference of the centroids): iterate
    "pair mutual nearest neighbours closer than a generous radius, t = mean difference" until t
    moves less than 1e-9 Å. Fine stage from the better start (more one-to-one pairs within
    max_distance): iterate "one-to-one assignment within max_distance, t = mean difference of the
    pairs" until the pairs no longer change, i.e. t is the least-squares translation of its own
    pairs. Atoms without a partner only drop out of the pairs, so a few of them do not bias t.
    """
    tree_truth = cKDTree(truth)
    radius = max(2.0 * max_distance, 2.0)
    starts = [np.zeros(3), truth.mean(axis=0) - traced.mean(axis=0)]
    best, best_count = np.zeros(3), -1
    for t in starts:
        for _ in range(_MAX_REGISTER_ITERATIONS):
            t_new = _mutual_nearest_translation(truth, traced, tree_truth, t, radius)
            if t_new is None:
                break
            moved_by = float(np.abs(t_new - t).max())
            t = t_new
            if moved_by < 1e-9:
                break
        count = _assign(truth, traced + t, max_distance).shape[0]
        if count > best_count:
            best, best_count = t, count
    t = best
    previous = None
    for _ in range(_MAX_REGISTER_ITERATIONS):
        pairs = _assign(truth, traced + t, max_distance)
        if pairs.shape[0] == 0:
            break
        t = (truth[pairs[:, 0]] - traced[pairs[:, 1]]).mean(axis=0)
        if previous is not None and np.array_equal(previous, pairs):
            break
        previous = pairs
    return np.asarray(t, dtype=np.float64)


def match_atoms(truth_positions, truth_species, traced_positions, traced_species=None, *,
                max_distance=1.0, register=True, species_order=None) -> MatchResult:
    """Match a traced atomic model to the ground truth one to one and score it.

    1. If `register`, a global translation ``t`` (Å) is found that aligns ``traced + t`` onto the
       truth: mutual nearest neighbours within a generous radius (``max(2 max_distance, 2 Å)``),
       ``t`` = mean difference, repeated until stable (from a zero start and from the centroid
       difference, keeping the better), then refined as the mean difference of the one-to-one pairs
       of step 2 until those pairs no longer change. Unmatched (missing or spurious) atoms do not
       enter the mean.
    2. One-to-one matching of ``traced + t`` to the truth within `max_distance` Å: the matching with
       the largest number of pairs and, among those, the smallest sum of squared distances
       (an exact sparse assignment; scales to 10^5 atoms). When two traced atoms compete for one true
       atom and neither has another partner, the closer one wins and the other stays unmatched.
    3. Scores: ``recall = m / n_truth``, ``precision = m / n_traced``, RMSD of the ``m`` pairs (in pm,
       overall and per axis, after the translation, mean displacement not subtracted), and, if both
       species lists are given, the fraction of pairs whose species agree and the confusion matrix.

    Parameters
    ----------
    truth_positions : (n_truth, 3) array
        True positions ``(x, y, z)`` in Å (at least one atom).
    truth_species : (n_truth,) sequence of element symbols, or None
        True species (integer labels are accepted and compared as strings).
    traced_positions : (n_traced, 3) array
        Traced positions in Å (may be empty: recall 0, precision NaN).
    traced_species : (n_traced,) sequence of element symbols, optional
        Traced species; without it there is no species accuracy or confusion matrix.
    max_distance : float, keyword-only
        Matching distance in Å (default 1.0).
    register : bool, keyword-only
        Find and apply the global translation first (default True).
    species_order : sequence of str, optional
        Order of the confusion-matrix labels; must name every species present, once. Default: the
        sorted union of the true and traced species.

    Returns
    -------
    MatchResult
    """
    truth = as_positions(truth_positions, "truth_positions")
    traced = as_positions(traced_positions, "traced_positions")
    if truth.shape[0] == 0:
        raise ValueError("truth_positions: expected at least one true atom, got shape (0, 3)")
    max_distance = positive(max_distance, "max_distance")
    if not isinstance(register, (bool, np.bool_)):
        raise TypeError(f"register: expected True or False, got {type(register).__name__}")
    s_truth = None if truth_species is None else _as_species(truth_species, truth.shape[0], "truth_species")
    s_traced = None if traced_species is None else _as_species(traced_species, traced.shape[0],
                                                               "traced_species")
    if s_traced is not None and s_truth is None:
        raise ValueError("truth_species: expected the true species when traced_species is given, got None")
    labels = None
    if s_truth is not None:
        present = set(np.unique(s_truth).tolist())
        if s_traced is not None:
            present |= set(np.unique(s_traced).tolist())
        if species_order is None:
            labels = tuple(sorted(present))
        else:
            if isinstance(species_order, str) or not hasattr(species_order, "__iter__"):
                raise TypeError(f"species_order: expected a sequence of element symbols, "
                                f"got {type(species_order).__name__}")
            labels = tuple(str(s) for s in species_order)
            if len(set(labels)) != len(labels):
                raise ValueError(f"species_order: expected each species once, got {list(labels)}")
            missing = sorted(present - set(labels))
            if missing:
                raise ValueError(f"species_order: expected every species present, missing {missing}")
    elif species_order is not None:
        raise ValueError("species_order: given, but there are no species (truth_species is None)")

    nt, nr = truth.shape[0], traced.shape[0]
    t = _register(truth, traced, max_distance) if (register and nr > 0) else np.zeros(3)
    moved = traced + t
    pairs = _assign(truth, moved, max_distance)
    m = pairs.shape[0]

    if m:
        diff = moved[pairs[:, 1]] - truth[pairs[:, 0]]
        msd_axes = (diff ** 2).mean(axis=0)
        rmsd_axes = 100.0 * np.sqrt(msd_axes)
        rmsd = 100.0 * float(np.sqrt(msd_axes.sum()))
    else:
        rmsd_axes = np.full(3, np.nan)
        rmsd = float("nan")

    accuracy = confusion = by_species = None
    if s_truth is not None:
        code_truth = _codes(s_truth, labels)
        matched = np.zeros(nt, bool)
        matched[pairs[:, 0]] = True
        n_per = np.bincount(code_truth, minlength=len(labels))
        m_per = np.bincount(code_truth[matched], minlength=len(labels))
        by_species = {labels[k]: float(m_per[k] / n_per[k]) for k in range(len(labels)) if n_per[k] > 0}
        if s_traced is not None:
            code_traced = _codes(s_traced, labels)
            a, b = code_truth[pairs[:, 0]], code_traced[pairs[:, 1]]
            k = len(labels)
            confusion = np.bincount(a * k + b, minlength=k * k).reshape(k, k).astype(np.int64)
            accuracy = float(np.count_nonzero(a == b) / m) if m else float("nan")

    return MatchResult(
        recall=m / nt,
        precision=m / nr if nr else float("nan"),
        rmsd_pm=rmsd,
        rmsd_axes_pm=np.asarray(rmsd_axes, np.float64),
        species_accuracy=accuracy,
        confusion=confusion,
        species_labels=labels,
        recall_by_species=by_species,
        pairs=pairs,
        translation=np.asarray(t, np.float64),
        n_truth=nt,
        n_traced=nr,
        max_distance=max_distance,
    )


def _codes(species: np.ndarray, labels: tuple) -> np.ndarray:
    """Index of each species in labels (every species is known to be in labels)."""
    uniq, inverse = np.unique(species, return_inverse=True)
    lookup = np.array([labels.index(s) for s in uniq.tolist()], dtype=np.intp)
    return lookup[inverse.ravel()]


def literature_protocol(truth_positions, traced_positions, *, max_distance=1.5) -> LiteratureScore:
    """The scoring protocol of the AET literature, for comparison with published numbers.

    Exact definition (no registration, not one to one):

    - for each traced atom ``j``, its nearest true atom ``i(j)``; the traced atom counts as found if
      ``|r_j - r_i(j)| <= max_distance`` (1.5 Å by default). Several traced atoms may share one true
      atom, and true atoms without a traced atom nearby are not counted;
    - ``fraction`` = (number of traced atoms found) / (number of traced atoms);
    - over the found traced atoms, the per-axis differences ``d = r_j - r_i(j)`` have sample
      standard deviations ``s_x, s_y, s_z`` (N - 1 normalisation, MATLAB's ``std`` default), and
      ``rmsd_pm = 100 * sqrt(s_x**2 + s_y**2 + s_z**2)`` (pm). Subtracting the per-axis means makes
      it blind to a global shift; it is NaN with fewer than two found atoms.

    Parameters
    ----------
    truth_positions : (n_truth, 3) array
        True positions in Å (at least one atom).
    traced_positions : (n_traced, 3) array
        Traced positions in Å (at least one atom).
    max_distance : float, keyword-only
        Search radius in Å (default 1.5).

    Returns
    -------
    LiteratureScore
        ``(fraction, rmsd_pm)``.
    """
    truth = as_positions(truth_positions, "truth_positions")
    traced = as_positions(traced_positions, "traced_positions")
    if truth.shape[0] == 0:
        raise ValueError("truth_positions: expected at least one true atom, got shape (0, 3)")
    if traced.shape[0] == 0:
        raise ValueError("traced_positions: expected at least one traced atom, got shape (0, 3)")
    max_distance = positive(max_distance, "max_distance")
    # distance_upper_bound is strict; the next float up makes the test <= max_distance
    dist, idx = cKDTree(truth).query(traced, distance_upper_bound=np.nextafter(max_distance, np.inf))
    found = np.isfinite(dist)
    fraction = float(np.count_nonzero(found) / traced.shape[0])
    if np.count_nonzero(found) < 2:
        return LiteratureScore(fraction, float("nan"))
    diff = traced[found] - truth[idx[found]]
    rmsd = 100.0 * float(np.sqrt(diff.var(axis=0, ddof=1).sum()))
    return LiteratureScore(fraction, rmsd)


def alignment_error(shifts, misalignment, angles) -> float:
    """RMS error (pixels) of alignment shifts against a known misalignment.

    Parameters
    ----------
    shifts : (n, 2) array
        ``(dy, dx)`` the alignment applied (:class:`aetcore.steps.align.Alignment`), pixels.
    misalignment : (n, 2) array
        ``(dy, dx)`` that had moved the images (e.g. ``SimulatedSeries.shifts``); perfect alignment
        applies ``-misalignment``.
    angles : (n,) array
        Tilt angles, degrees (single-axis series).

    Returns
    -------
    float
        RMS over images of ``shifts + misalignment`` after removing its least-squares part that a
        translation ``(X, Y, Z)`` of the whole object explains (``dy = -Y``,
        ``dx = -(X cos(theta) - Z sin(theta))``): alignment fixes the object only up to such a
        translation (the centre of mass convention), which moves the reconstruction but not its atoms
        relative to each other.
    """
    s = np.asarray(shifts, np.float64)
    m = np.asarray(misalignment, np.float64)
    th = np.radians(np.asarray(angles, np.float64).reshape(-1))
    if s.ndim != 2 or s.shape[1] != 2 or m.shape != s.shape or th.shape[0] != s.shape[0]:
        raise ValueError(f"shifts, misalignment, angles: expected (n, 2), (n, 2) and (n,), got {s.shape}, "
                         f"{m.shape} and {th.shape}")
    r = s + m
    r[:, 0] -= r[:, 0].mean()
    basis = np.stack([np.cos(th), np.sin(th)], axis=1)
    r[:, 1] -= basis @ np.linalg.lstsq(basis, r[:, 1], rcond=None)[0]
    return float(np.sqrt(np.mean(np.sum(r ** 2, axis=1))))
