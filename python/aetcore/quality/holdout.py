"""Validation of an atom refinement on projections it did not fit: k-fold cross-validation over the
images of a tilt series.

The images are split into `folds` groups (:func:`image_folds`). For every fold the atomic model is
refined (:func:`aetcore.steps.refine.refine`) on the other images only, from the same starting
positions, heights and B-factors each time; the refined positions, heights, B-factors and scale are
then projected at the held-out angles and compared with the held-out images. Nothing the held-out
images contain enters the fit of their fold, so ``R1_holdout`` measures what the model predicts,
while ``R1_fit`` (the R1 of the training images after refinement) also rewards fitting noise. On a
well-posed fit the two agree; a held-out R1 well above the fit R1 says the refinement has more
freedom than the data constrain (too many parameters, too few images, too much noise).

What it validates is the refinement given its start. If the starting positions were themselves
derived from every image (a reconstruction of the whole series, or the evidence step of ``aet run``,
which refines on all images), the held-out images are not wholly unseen: ``R1_holdout`` is then a lower
bound on the error for new images, and ``r1_start`` (the start on the held-out images) is close to an
in-sample R1. It still shows overfitting by the refinement itself.

R1 of a set of images ``b`` against the model ``s P`` is ``sum |s P - b| / sum |b|`` (the R1 of
:class:`aetcore.steps.refine.RefinementResult`), dimensionless.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass

import numpy as np

from .._util.validate import as_generator, at_least, resolve_threads
from ..model.projection import project_atoms

__all__ = ["HoldoutResult", "image_folds", "holdout_r1"]


@dataclass(frozen=True)
class HoldoutResult:
    """Outcome of :func:`holdout_r1`.

    Attributes
    ----------
    folds : tuple of (m_k,) int64 arrays
        The indices of the held-out images of every fold (ascending); together they are every image
        exactly once.
    r1_fit : (folds,) float64
        Per fold, R1 of the refined model on its training images (all images but the fold's).
    r1_holdout : (folds,) float64
        Per fold, R1 of the same model on the fold's held-out images.
    r1_start : (folds,) float64
        Per fold, R1 of the starting model (its global scale fitted on the training images) on the
        held-out images: what the refinement improved upon, if the start did not see those images.
    """

    folds: tuple
    r1_fit: np.ndarray
    r1_holdout: np.ndarray
    r1_start: np.ndarray

    @property
    def r1_fit_mean(self) -> float:
        """Mean over folds of :attr:`r1_fit`."""
        return float(np.mean(self.r1_fit))

    @property
    def r1_holdout_mean(self) -> float:
        """Mean over folds of :attr:`r1_holdout`."""
        return float(np.mean(self.r1_holdout))

    @property
    def gap(self) -> float:
        """``r1_holdout_mean / r1_fit_mean - 1``: how much worse the model predicts unseen images than
        it fits the seen ones (about 0 for a well-posed fit, dimensionless)."""
        return self.r1_holdout_mean / self.r1_fit_mean - 1.0

    def as_dict(self) -> dict:
        """JSON-ready summary: ``folds`` (number), ``r1_fit``, ``r1_holdout`` (means), and the per-fold
        lists ``r1_fit_folds``, ``r1_holdout_folds``, ``r1_start_folds``."""
        return {"folds": len(self.folds), "r1_fit": self.r1_fit_mean, "r1_holdout": self.r1_holdout_mean,
                "r1_fit_folds": self.r1_fit.tolist(), "r1_holdout_folds": self.r1_holdout.tolist(),
                "r1_start_folds": self.r1_start.tolist()}


def image_folds(angles, folds: int, seed=None) -> tuple:
    """Split the images of a tilt series into `folds` held-out groups spread over the tilt range.

    The images are sorted by tilt angle ``theta`` and cut into consecutive blocks of `folds` images;
    within each block the images are dealt to the folds in a random order (the last, shorter block to
    randomly chosen folds). Every fold therefore samples the whole tilt range, fold sizes differ by at
    most one, and the split depends only on the angles, `folds` and `seed`.

    Parameters
    ----------
    angles : (n_angles,) or (n_angles, 3) array
        Degrees (tilt angles about y, or ZYZ Euler angles whose ``theta`` is sorted on).
    folds : int
        Number of folds, 2 <= folds <= n_angles.
    seed : None, int or numpy.random.Generator

    Returns
    -------
    tuple of (m_k,) int64 arrays
        The image indices of every fold, ascending; a partition of ``range(n_angles)``.
    """
    from .._util.validate import as_angles
    a = as_angles(angles)
    n = a.shape[0]
    k = at_least(folds, 2, "folds", integer=True)
    if k > n:
        raise ValueError(f"folds: expected at most one fold per image ({n} images), got {k}")
    rng = as_generator(seed)
    order = np.argsort(a[:, 1], kind="stable")
    owner = np.empty(n, np.int64)
    for start in range(0, n, k):
        block = order[start:start + k]
        owner[block] = rng.permutation(k)[:block.size]
    return tuple(np.flatnonzero(owner == f).astype(np.int64) for f in range(k))


def _r1(model_images: np.ndarray, images: np.ndarray) -> float:
    b = images.astype(np.float64)
    return float(np.abs(model_images.astype(np.float64) - b).sum() / np.abs(b).sum())


def holdout_r1(positions, species, tilts, angles, pixel_size, *, model=None, folds: int = 5, seed=None,
               threads=None, **refine_options) -> HoldoutResult:
    """K-fold cross-validation of :func:`aetcore.steps.refine.refine` over the images of a tilt series.

    For each fold of :func:`image_folds`, refine the atoms on the other images (from `positions` and
    `model` every time, with `refine_options`), then project the refined model — positions, heights,
    B-factors and global scale all fitted on the training images only — at the held-out angles and
    compute its R1 against the held-out images.

    Parameters
    ----------
    positions : (n_atoms, 3) array
        Starting ``(x, y, z)``, Å, object frame (the same start for every fold).
    species : (n_atoms,) sequence
        Element symbols, or integer labels into ``model.symbols``.
    tilts : (n_angles, ny, nx) array
        Aligned tilt series, projection units; at least `folds` images.
    angles : (n_angles,) or (n_angles, 3) array
        Degrees, one per image. Held-out images are projected at these angles (with
        ``refine_angles=True`` only the training images' angles are refined).
    pixel_size : float
        Å per pixel.
    model : AtomModel, optional
        Starting heights, B-factors and blur (default: that of :func:`aetcore.steps.refine.refine`).
    folds : int
        Number of folds (default 5): each refinement sees ``(folds - 1) / folds`` of the images.
    seed : None, int or numpy.random.Generator
        The random part of the split into folds (:func:`image_folds`).
    threads : int, optional
    **refine_options
        Passed to :func:`aetcore.steps.refine.refine` (``max_shift``, ``iterations``, ``scale``,
        ``refine_heights`` ...); ``cutoff`` is also used for the held-out projections.

    Returns
    -------
    HoldoutResult
        Per-fold and mean ``r1_fit`` (training images) and ``r1_holdout`` (held-out images),
        dimensionless.

    Examples
    --------
    >>> from aetcore.model import simulate
    >>> from aetcore.quality.holdout import holdout_r1
    >>> p = simulate.fept_particle(6.0, orientation="random", seed=1)
    >>> s = simulate.tilt_series(p.positions, p.species, simulate.angles_range(-70, 70, 15), (40, 40), 0.4,
    ...                          dose=2e4, seed=2, threads=1)
    >>> h = holdout_r1(p.positions, p.species, s.tilts, s.angles, 0.4, folds=3, seed=0, threads=1)
    >>> len(h.folds), h.r1_holdout.shape
    (3, (3,))
    >>> bool(h.r1_holdout_mean >= h.r1_fit_mean * 0.9)
    True
    """
    from ..steps.refine import atom_inputs, refine
    if "progress" in refine_options:
        raise TypeError("refine_options: 'progress' is not supported by holdout_r1 (one refinement per fold)")
    pos, labels, t, a, ps, mdl = atom_inputs(positions, species, tilts, angles, pixel_size, model)
    parts = image_folds(a, folds, seed)
    nt = resolve_threads(threads)
    cutoff = refine_options.get("cutoff", inspect.signature(refine).parameters["cutoff"].default)
    fixed_scale = refine_options.get("scale")
    shape = t.shape[1:]
    start_proj = project_atoms(pos, labels, a, shape, ps, model=mdl, cutoff=cutoff, threads=nt)
    r1_fit, r1_hold, r1_start = [], [], []
    for test in parts:
        train = np.setdiff1d(np.arange(t.shape[0]), test)
        r = refine(pos, labels, t[train], a[train], ps, model=mdl, threads=nt, **refine_options)
        pred = project_atoms(r.positions, r.labels, a[test], shape, ps, model=r.model, cutoff=cutoff,
                             threads=nt).astype(np.float64) * r.scale
        # the starting model with its own best scale on the training images (or the fixed scale)
        tr = start_proj[train].astype(np.float64)
        s0 = float((tr * t[train]).sum() / (tr * tr).sum()) if fixed_scale is None else float(fixed_scale)
        r1_fit.append(r.r1_after)
        r1_hold.append(_r1(pred, t[test]))
        r1_start.append(_r1(s0 * start_proj[test], t[test]))
    return HoldoutResult(folds=parts, r1_fit=np.asarray(r1_fit), r1_holdout=np.asarray(r1_hold),
                         r1_start=np.asarray(r1_start))
