"""One atomic model scored against another (a published model, another run): ``aet compare``.

The matching is :func:`aetcore.quality.scoring.match_atoms` (best global translation, then a one to
one assignment within a tolerance). With a region, the matching runs on the atoms within the
region grown by the tolerance (so a pair across its border still pairs), and the scores count the
atoms inside it: recall over A's atoms in the region, precision over B's (moved by the
translation), the RMSD and the species confusion over the pairs whose A atom is in the region.
Models are read by :func:`aetcore.io.models.read_model`.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["compare_models", "Comparison", "parse_region"]


def parse_region(text: str) -> np.ndarray:
    """``"x0:x1,y0:y1,z0:z1"`` (Å; an empty bound is unbounded, e.g. ``"-20:20,:,:"``) as a
    ``(3, 2)`` array of bounds."""
    parts = text.split(",")
    if len(parts) != 3:
        raise ValueError(f"--region: expected x0:x1,y0:y1,z0:z1 in Å, got {text!r}")
    out = np.empty((3, 2))
    for i, part in enumerate(parts):
        lo_hi = part.split(":")
        if len(lo_hi) != 2:
            raise ValueError(f"--region: expected lo:hi for axis {'xyz'[i]}, got {part!r}")
        try:
            lo = float(lo_hi[0]) if lo_hi[0].strip() else -np.inf
            hi = float(lo_hi[1]) if lo_hi[1].strip() else np.inf
        except ValueError:
            raise ValueError(f"--region: expected numbers for axis {'xyz'[i]}, got {part!r}") from None
        if not lo < hi:
            raise ValueError(f"--region: axis {'xyz'[i]}: expected lo < hi, got {part!r}")
        out[i] = lo, hi
    return out


def _inside(p: np.ndarray, region: np.ndarray, grow: float = 0.0) -> np.ndarray:
    return np.all((p >= region[:, 0] - grow) & (p <= region[:, 1] + grow), axis=1)


@dataclass(frozen=True)
class Comparison:
    """The outcome of :func:`compare_models` (A is the reference, B the model scored).

    Attributes
    ----------
    recall, precision : float
        Pairs / A atoms (in the region), pairs / B atoms (in the region).
    rmsd_pm : float
        RMSD of the pairs after the translation, pm; ``rmsd_axes_pm`` per axis ``(x, y, z)``.
    translation : (3,) array
        Å added to B's positions.
    n_a, n_b, n_pairs : int
        Atoms of A and B counted (in the region) and pairs.
    confusion : (k, k) int array or None
        Rows A's species, columns B's, over the pairs; `labels` names them.
    """

    recall: float
    precision: float
    rmsd_pm: float
    rmsd_axes_pm: np.ndarray
    translation: np.ndarray
    n_a: int
    n_b: int
    n_pairs: int
    max_distance: float
    confusion: np.ndarray | None
    labels: tuple | None

    def summary(self) -> str:
        ax, t = self.rmsd_axes_pm, self.translation
        lines = [f"{self.n_pairs} pairs within {self.max_distance:g} Å (one to one)",
                 f"  recall    {self.recall:.4f} ({self.n_pairs}/{self.n_a} atoms of A)",
                 f"  precision {self.precision:.4f} ({self.n_pairs}/{self.n_b} atoms of B)",
                 f"  RMSD {self.rmsd_pm:.2f} pm (x {ax[0]:.2f}, y {ax[1]:.2f}, z {ax[2]:.2f} pm)",
                 f"  translation applied to B ({t[0]:.4f}, {t[1]:.4f}, {t[2]:.4f}) Å"]
        if self.confusion is not None:
            w = max([len(s) for s in self.labels] + [len(str(int(self.confusion.max(initial=0)))), 4])
            lines.append("  species (rows A, columns B):")
            lines.append("  " + " " * w + " " + " ".join(s.rjust(w) for s in self.labels))
            for s, row in zip(self.labels, self.confusion):
                lines.append("  " + s.rjust(w) + " " + " ".join(str(int(v)).rjust(w) for v in row))
        return "\n".join(lines)

    def as_dict(self) -> dict:
        d = {k: getattr(self, k) for k in ("recall", "precision", "rmsd_pm", "n_a", "n_b", "n_pairs",
                                           "max_distance")}
        d["rmsd_axes_pm"] = [float(v) for v in self.rmsd_axes_pm]
        d["translation"] = [float(v) for v in self.translation]
        if self.confusion is not None:
            d["species"] = list(self.labels)
            d["confusion"] = self.confusion.tolist()
        return d


def compare_models(a_positions, a_species, b_positions, b_species=None, *, max_distance: float = 1.0,
                   register: bool = True, region=None) -> Comparison:
    """Score model B against model A (:func:`aetcore.quality.scoring.match_atoms`).

    Parameters
    ----------
    a_positions, b_positions : (n, 3) arrays
        Å, in one frame (up to the translation found when `register`).
    a_species, b_species : sequences of str, or None
        Species; the confusion matrix needs both.
    max_distance : float
        Pairing tolerance, Å.
    register : bool
        Find the best global translation of B first.
    region : (3, 2) array or None
        ``[[x0, x1], [y0, y1], [z0, z1]]`` in Å in A's frame (``parse_region``); None: everything.

    Returns
    -------
    Comparison
    """
    from ..quality.scoring import match_atoms
    a = np.asarray(a_positions, np.float64)
    b = np.asarray(b_positions, np.float64)
    sa = None if a_species is None else np.asarray(a_species).astype(str)
    sb = None if b_species is None or sa is None else np.asarray(b_species).astype(str)
    t = np.zeros(3)
    if register and len(b):
        t = match_atoms(a, None, b, max_distance=max_distance).translation
    moved = b + t
    if region is None:
        in_a, in_b = np.ones(len(a), bool), np.ones(len(b), bool)
        near_a, near_b = in_a, in_b
    else:
        region = np.asarray(region, np.float64)
        in_a, in_b = _inside(a, region), _inside(moved, region)
        near_a, near_b = _inside(a, region, max_distance), _inside(moved, region, max_distance)
    ia, ib = np.flatnonzero(near_a), np.flatnonzero(near_b)
    if not len(ia):
        raise ValueError("region: no atom of A lies in it")
    m = match_atoms(a[ia], None, moved[ib], max_distance=max_distance, register=False)
    pa, pb = ia[m.pairs[:, 0]], ib[m.pairs[:, 1]]
    keep = in_a[pa]
    pa, pb = pa[keep], pb[keep]
    n_a, n_b = int(in_a.sum()), int(in_b.sum())
    d = moved[pb] - a[pa]
    if len(pa):
        axes = 100.0 * np.sqrt((d ** 2).mean(axis=0))
        rmsd = float(np.sqrt((axes ** 2).sum()))
    else:
        axes, rmsd = np.full(3, np.nan), float("nan")
    confusion = labels = None
    if sa is not None and sb is not None:
        labels = tuple(sorted(set(sa.tolist()) | set(sb.tolist())))
        index = {s: i for i, s in enumerate(labels)}
        k = len(labels)
        ca = np.array([index[s] for s in sa[pa]], np.intp)
        cb = np.array([index[s] for s in sb[pb]], np.intp)
        confusion = np.bincount(ca * k + cb, minlength=k * k).reshape(k, k).astype(np.int64)
    return Comparison(recall=len(pa) / n_a, precision=len(pa) / n_b if n_b else float("nan"),
                      rmsd_pm=rmsd, rmsd_axes_pm=axes, translation=t, n_a=n_a, n_b=n_b,
                      n_pairs=int(len(pa)), max_distance=float(max_distance), confusion=confusion,
                      labels=labels)
