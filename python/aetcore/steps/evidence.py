"""Atoms decided by the evidence in the tilt series (issue 12).

Whether a traced peak is an atom, and which species it is, is decided by the measured projections,
not by a threshold on the reconstruction. With the atomic model ``M`` (the exact projections of the
Gaussian atoms of :mod:`aetcore.model.projection` at the fitted heights and B-factors) and a
variance model of every pixel ``v = alpha * max(M, 0) + beta`` estimated from the series
(:func:`aetcore.model.noise.fit_variance`: Poisson counts and read noise, in the series' units),
the Gaussian log-likelihood of the series is ``LL = -1/2 sum w (b - M)^2`` with ``w = 1 / v``.

**Per-atom log-likelihood ratios, in batch.** Removing atom ``i`` of species ``l`` changes the model
by its footprint ``f_il`` (its projection in every image, a small window), so with the residual
``r = b - M``, exactly (the weights held fixed):

* presence ``E_i = LL(with i) - LL(without i) = sum w r f_il + 1/2 sum w f_il^2``;
* relabelling to species ``t``: ``LL_t - LL_l = -sum w r (f_il - f_it) - 1/2 sum w (f_il - f_it)^2``.

The sums run over the footprint windows of all atoms in all images at once: the pixel-averaged
Gaussian footprint is separable (erf differences along x and along y), so the window sums are
row-by-row contractions in the C++ core (:func:`aetcore._core.footprint_sums`, parallel over
atoms; the NumPy version it replaced took 46 of the 200 s of the evidence step on 17 549 atoms at
288 px). The model ``M`` comes from the
C++ projector (:func:`aetcore._core.project_atoms`). Positive evidence says the series prefers the
atom; an isolated spurious atom has ``E ~ -1/2 sum w f^2`` and a real one ``+1/2 sum w f^2``, each
with a standard deviation ``sqrt(sum w f^2)``.

**Decision** (:func:`decide_atoms`). First the model is completed: up to `fill_rounds` rounds of
refinement (1 below) and adding (3 below), with no drop, while a round finds at least `fill_fraction`
of the atoms missing; the evidence of an atom is only as good as the model of its neighbours, and the residual of
missing atoms made the drop passes remove real atoms (bench/README.md, ``scale.py`` at 384 px).
Then rounds of:

1. refine positions, heights and B-factors (:func:`aetcore.steps.refine.refine`), so that the model
   the evidence is computed with is the best one for the current atoms. The model's instrument blur
   is folded into the B-factors first (same widths, blur 0), so that each species' width is fitted
   down to what the data show: with the default blur of 0.5 Å as a floor, the Pt atoms of the shared
   FePt series (sigma 0.45 Å) were modelled too wide, and the misfit around them hid a quarter of the
   Fe atoms (negative evidence at the true positions; none with the widths free);
2. drop atoms whose presence evidence is below `threshold` and relabel atoms to the species with
   the highest likelihood, repeated until nothing changes. Only the least supported of the doubtful
   atoms within `radius` of each other is dropped in one pass (two atoms fitted to one true atom
   each look superfluous while the other is there), then the evidence is recomputed;
3. add atoms where the residual says one is missing: the weighted residual ``w r`` is
   back-projected (the adjoint of the projector), smoothed by the atom width, and its local maxima
   at least `min_distance` from every atom are candidates; a candidate is added, as the species of
   highest likelihood, when ``LL(with) - LL(without) = sum w r f - 1/2 sum w f^2`` exceeds
   `add_threshold` (the largest in its `radius` neighbourhood);

until a round drops, relabels and adds nothing (or `rounds`). The evidence of the final atoms is
returned per atom, for ``atoms.xyz``.

With one species the same step decides atom against no atom (the relabelling is skipped): the API
serves single-species films (issue 13) unchanged.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree

from .. import _core
from .._util.validate import as_angles, at_least, positive, resolve_threads
from ..model.noise import VarianceModel, fit_variance
from ..model.projection import AtomModel
from .refine import atom_inputs

__all__ = ["Evidence", "Decision", "atom_evidence", "propose_atoms", "decide_atoms", "footprint_sums",
           "free_widths", "impute_series"]

_PREFILTER_MARGIN = 10.0  # nats: candidates of the approximate gain map evaluated exactly
_CUTOFF = 4.0       # footprint half-width in sigmas (the projector's own cutoff is 5; 4 keeps 1 - 6e-5)


@dataclass(frozen=True)
class Evidence:
    """Per-atom log-likelihood ratios of a model against a tilt series (natural log units).

    Attributes
    ----------
    presence : (n,) float64
        ``LL(with the atom, as labelled) - LL(without it)``: negative means the series is better
        explained without the atom.
    species : (n,) float64
        ``LL(as labelled) - LL(best other species)`` (+inf with one species): negative means another
        species explains the series better.
    relabel : (n, n_species) float64
        ``LL(as species t) - LL(as labelled)`` for every species t of ``model.symbols`` (0 at the
        label).
    noise : VarianceModel
        The pixel variance model used for the weights.
    """

    presence: np.ndarray
    species: np.ndarray
    relabel: np.ndarray
    noise: VarianceModel


@dataclass(frozen=True)
class Decision:
    """The outcome of :func:`decide_atoms`.

    Attributes
    ----------
    positions : (n, 3) float64
        Atoms kept and added, Å, object frame (refined in the last round).
    labels : (n,) int32
        Species labels into ``model.symbols``.
    symbols : (n,) str array
    model : AtomModel
        Heights and B-factors of the last refinement (blur 0, see :func:`free_widths`).
    evidence : Evidence
        Evidence of the final atoms.
    added : (n,) bool
        True for atoms the decision added (not traced).
    source : (n,) int64
        Index of each atom into the `positions` given to :func:`decide_atoms`, -1 for an added atom.
    history : list of dict
        Per round: ``dropped``, ``relabelled``, ``added``, ``atoms`` (and ``fill`` True for the
        rounds that only add, before the first drop).
    """

    positions: np.ndarray
    labels: np.ndarray
    symbols: np.ndarray
    model: AtomModel
    evidence: Evidence
    added: np.ndarray
    source: np.ndarray
    history: list = field(default_factory=list)


# ----------------------------------------------------------------------------------- footprints

def _amplitudes(model: AtomModel, pixel_size: float):
    """Integrated intensity (pixel units) and sigma (pixels) of each species' footprint."""
    sig = np.asarray(model.sigmas, np.float64) / pixel_size
    return np.asarray(model.heights, np.float64) * (2.0 * np.pi) ** 1.5 * sig ** 3, sig


def footprint_sums(positions, angles, shape, pixel_size, model: AtomModel, images, weights, threads=None):
    """Window sums of every atom's footprint, for every species of `model`.

    With ``f_is`` the projections (all images, pixel-averaged, CONVENTIONS.md geometry) of an atom
    of species ``s`` at position ``i``:

    * ``a[i, s] = sum images * weights * f_is``
    * ``c[i, s, t] = sum weights * f_is * f_it``

    Parameters
    ----------
    positions : (n, 3) array
        Å, object frame.
    angles : (n_angles,) or (n_angles, 3) array
        Degrees.
    shape : (ny, nx)
        Detector size, pixels.
    pixel_size : float
        Å.
    model : AtomModel
    images, weights : (n_angles, ny, nx) arrays
    threads : int, optional
        OpenMP threads of the kernel (``aet::footprint_sums`` of the C++ core, parallel over atoms).

    Returns
    -------
    a : (n, n_species) float64
    c : (n, n_species, n_species) float64
    """
    ny, nx = shape
    amp, sig = _amplitudes(model, pixel_size)
    K = np.asarray(images).shape[0]
    a_rad = np.radians(as_angles(angles, K))
    p = np.ascontiguousarray(np.asarray(positions, np.float64).reshape(-1, 3) / pixel_size)
    return _core.footprint_sums(p, a_rad, np.ascontiguousarray(amp), np.ascontiguousarray(sig),
                                int(np.ceil(_CUTOFF * sig.max())),
                                np.ascontiguousarray(images, np.float32).reshape(K, ny, nx),
                                np.ascontiguousarray(weights, np.float32).reshape(K, ny, nx),
                                resolve_threads(threads))


# ----------------------------------------------------------------------------------- evidence

def _project(positions, labels, model: AtomModel, angles_deg, shape, pixel_size, threads) -> np.ndarray:
    pos = np.ascontiguousarray(np.asarray(positions, np.float64).reshape(-1, 3) / pixel_size)
    return _core.project_atoms(pos, np.ascontiguousarray(labels, np.int32),
                               np.ascontiguousarray(model.heights, np.float64),
                               np.ascontiguousarray(model.sigmas / pixel_size, np.float64),
                               np.radians(angles_deg), shape[0], shape[1], 5.0, threads)


def _weights(M, r, noise, mask):
    """The variance model (fitted to the pixels of `mask` when not given) and the weights ``1 / v``,
    zero outside `mask` (None: every pixel)."""
    if noise is None:
        noise = fit_variance(M, r) if mask is None else fit_variance(M[mask], r[mask])
    w = 1.0 / noise.variance(M)
    if mask is not None:
        w = np.where(mask, w, 0.0)
    return noise, w


def impute_series(tilts, mask, positions, labels, model: AtomModel, angles, pixel_size, threads=None):
    """The series with the pixels outside `mask` replaced by the model's projections (`tilts` itself
    when `mask` is None).

    The refinement (:func:`aetcore.steps.refine.refine`) has no pixel weights; fitting the imputed
    series is one step of expectation-maximisation for the least-squares fit of the pixels of `mask`
    alone (the missing pixels take the current model's values, where their residual and gradient are
    zero), and repeated imputation (every round of :func:`decide_atoms`) converges to it.
    """
    if mask is None:
        return tilts
    M = _project(positions, np.asarray(labels, np.int32), model, as_angles(angles, tilts.shape[0]), tilts.shape[1:],
                 pixel_size, resolve_threads(threads))
    mm = M[mask].astype(np.float64)
    den = float(mm @ mm)
    scale = float(mm @ tilts[mask].astype(np.float64)) / den if den > 0 else 0.0  # the refinement's scale
    return np.where(mask, tilts, scale * M).astype(tilts.dtype)


def _check_mask(pixel_mask, shape):
    """`pixel_mask` checked: None, or a bool array of the series' `shape` with at least 100 pixels."""
    if pixel_mask is None:
        return None
    mask = np.asarray(pixel_mask)
    if mask.dtype != bool or mask.shape != tuple(shape):
        raise ValueError(f"pixel_mask: expected a bool array of the series' shape {tuple(shape)}, got "
                         f"{mask.dtype} {mask.shape}")
    if mask.sum() < 100:
        raise ValueError(f"pixel_mask: expected at least 100 pixels, got {int(mask.sum())}")
    return mask


def _evidence(pos, lab, model, t, a, ps, noise, threads, mask=None):
    M = _project(pos, lab, model, a, t.shape[1:], ps, threads)
    r = t - M
    noise, w = _weights(M, r, noise, mask)
    if pos.shape[0] == 0:
        S = len(model.symbols)
        return Evidence(np.zeros(0), np.zeros(0), np.zeros((0, S)), noise), r, w
    A, C = footprint_sums(pos, a, t.shape[1:], ps, model, r, w, threads)
    n = lab.shape[0]
    ar = np.arange(n)
    a_l = A[ar, lab]
    c_ll = C[ar, lab, lab]
    presence = a_l + 0.5 * c_ll
    d2 = c_ll[:, None] - 2.0 * C[ar, lab, :] + np.einsum("nss->ns", C)   # sum w (f_l - f_t)^2
    relabel = -(a_l[:, None] - A) - 0.5 * d2
    relabel[ar, lab] = 0.0
    if relabel.shape[1] > 1:
        other = relabel.copy()
        other[ar, lab] = -np.inf
        species = -other.max(axis=1)
    else:
        species = np.full(n, np.inf)
    return Evidence(presence, species, relabel, noise), r, w


def atom_evidence(positions, species, tilts, angles, pixel_size, *, model: AtomModel | None = None,
                  noise: VarianceModel | None = None, pixel_mask=None, threads=None) -> Evidence:
    """Per-atom log-likelihood ratios of an atomic model against a tilt series.

    Parameters
    ----------
    positions : (n, 3) array
        Å, object frame.
    species : (n,) sequence
        Element symbols, or integer labels into ``model.symbols``.
    tilts : (n_angles, ny, nx) array
        The aligned series the model describes (same units as the model's heights: e.g. the series
        :func:`aetcore.steps.refine.refine` fitted).
    angles : (n_angles,) or (n_angles, 3) array
        Degrees.
    pixel_size : float
        Å.
    model : AtomModel, optional
        Heights, B-factors and blur (e.g. ``RefinementResult.model``); default
        :func:`aetcore.model.projection.atom_model` of the species present.
    noise : VarianceModel, optional
        Pixel variance; default fitted to the residuals (:func:`aetcore.model.noise.fit_variance`).
    pixel_mask : (n_angles, ny, nx) bool array, optional
        Only these pixels count (see :func:`decide_atoms`).
    threads : int, optional

    Returns
    -------
    Evidence
    """
    pos, lab, t, a, ps, model = atom_inputs(positions, species, tilts, angles, pixel_size, model)
    if noise is not None and not isinstance(noise, VarianceModel):
        raise TypeError(f"noise: expected a VarianceModel or None, got {type(noise).__name__}")
    return _evidence(pos, lab, model, t, a, ps, noise, resolve_threads(threads), _check_mask(pixel_mask, t.shape))[0]


def free_widths(model: AtomModel) -> AtomModel:
    """The same atom widths with the blur folded into the B-factors (``B + 8 pi^2 blur^2``, blur 0),
    so that refining B can fit each species' width below the blur."""
    b = np.asarray(model.b_factors, np.float64) + 8.0 * np.pi ** 2 * float(model.blur) ** 2
    return replace(model, b_factors=b, blur=0.0)


def _least_in_neighbourhood(values, positions, candidates, radius):
    """Indices of the candidates whose value is the smallest among the candidates within `radius`."""
    idx = np.flatnonzero(candidates)
    if idx.size < 2:
        return idx
    pairs = cKDTree(positions[idx]).query_pairs(radius, output_type="ndarray")
    keep = np.ones(idx.size, bool)
    if pairs.size:
        v = values[idx]
        i, j = pairs[:, 0], pairs[:, 1]
        i_lower = (v[i] < v[j]) | ((v[i] == v[j]) & (i < j))
        keep[j[i_lower]] = False
        keep[i[~i_lower]] = False
    return idx[keep]


def propose_atoms(positions, species, tilts, angles, pixel_size, *, model: AtomModel | None = None,
                  noise: VarianceModel | None = None, threshold: float = 10.0, min_distance: float = 1.6,
                  radius: float = 2.0, threads=None):
    """Atoms the residual of the series asks for (step 3 of the module documentation).

    Parameters are those of :func:`atom_evidence`, and:

    threshold : float
        Smallest ``LL(with) - LL(without)`` of an added atom (nats).
    min_distance : float
        Å; candidates closer than this to an atom of the model are not considered.
    radius : float
        Å; of candidates closer than this, only the one with the largest gain is added.

    Returns
    -------
    positions : (m, 3) float64
        Å, object frame.
    labels : (m,) int32
        Species labels into ``model.symbols``.
    gain : (m,) float64
        ``LL(with) - LL(without)`` of each, nats.
    """
    pos, lab, t, a, ps, model = atom_inputs(positions, species, tilts, angles, pixel_size, model)
    nt = resolve_threads(threads)
    M = _project(pos, lab, model, a, t.shape[1:], ps, nt)
    r = t - M
    if noise is None:
        noise = fit_variance(M, r)
    w = 1.0 / noise.variance(M)
    return _propose(pos, model, t, a, ps, r, w, float(threshold), positive(min_distance, "min_distance"),
                    positive(radius, "radius"), nt)


def _propose(pos, model, t, a, ps, r, w, threshold, min_distance, radius, nt, slab=None):
    K, ny, nx = t.shape
    empty = (np.zeros((0, 3)), np.zeros(0, np.int32), np.zeros(0))
    rad = np.radians(a)
    bp_r = _core.backproject_volume(np.ascontiguousarray((w * r).astype(np.float32)), rad, nx, ny, nx, nt)
    bp_w = _core.backproject_volume(np.ascontiguousarray(w.astype(np.float32)), rad, nx, ny, nx, nt)
    amp, sig = _amplitudes(model, ps)
    # Approximate gain map of each species on the voxel grid: smoothing the back-projection by the
    # atom's 3D Gaussian equals back-projecting the images smoothed by its 2D projection, so
    # a(x) ~ amp * G_sigma[bp(w r)](x) and c(x) ~ amp^2 G_sigma/sqrt2[bp(w)](x) / (4 pi sigma^2).
    gmap = None
    for s in range(sig.size):
        g = (amp[s] * ndimage.gaussian_filter(bp_r, float(sig[s]))
             - 0.5 * amp[s] ** 2 * ndimage.gaussian_filter(bp_w, float(sig[s]) / np.sqrt(2.0))
             / (4.0 * np.pi * sig[s] ** 2))
        gmap = g if gmap is None else np.maximum(gmap, g)
    peak = (gmap == ndimage.maximum_filter(gmap, size=3)) & (gmap > threshold - _PREFILTER_MARGIN)
    pk = np.argwhere(peak)
    if pk.size == 0:
        return empty
    # sub-voxel position: a parabola through the three samples along each axis
    hi_idx = np.array(gmap.shape) - 1
    f0 = gmap[tuple(pk.T)]
    off = np.zeros(pk.shape)
    for ax in range(3):
        e = np.zeros(3, np.int64)
        e[ax] = 1
        fm = gmap[tuple(np.clip(pk - e, 0, hi_idx).T)]
        fp = gmap[tuple(np.clip(pk + e, 0, hi_idx).T)]
        den = fm - 2 * f0 + fp
        off[:, ax] = np.where(den < 0, np.clip(0.5 * (fm - fp) / np.where(den < 0, den, -1.0), -0.5, 0.5), 0.0)
    zyx = pk + off
    cand = (zyx[:, ::-1] - np.array([nx // 2, ny // 2, nx // 2])) * ps          # (x, y, z), Å
    if slab is not None:
        cand = cand[(cand[:, 2] >= slab[0]) & (cand[:, 2] <= slab[1])]
    if pos.shape[0]:
        d, _ = cKDTree(pos).query(cand)
        cand = cand[d >= min_distance]
    if cand.shape[0] == 0:
        return empty
    A, C = footprint_sums(cand, a, (ny, nx), ps, model, r, w, nt)
    gain = A - 0.5 * np.einsum("nss->ns", C)                     # LL(with species s) - LL(without)
    best = np.argmax(gain, axis=1)
    g = gain[np.arange(best.size), best]
    sel = _least_in_neighbourhood(-g, cand, g > threshold, radius)
    return cand[sel], best[sel].astype(np.int32), g[sel]


def _refit_heights(pos, lab, model, t, a, ps, noise, nt, mask=None):
    """Weighted least-squares heights of every species at fixed positions and B (the model is linear
    in the heights): one projection per species and an n_species^2 system."""
    S = len(model.symbols)
    P = []
    for s in range(S):
        sel = lab == s
        unit = replace(model, heights=np.eye(S)[s])
        P.append(_project(pos[sel], lab[sel], unit, a, t.shape[1:], ps, nt))
    M = sum(h * p for h, p in zip(model.heights, P))
    w = _weights(M, None, noise, mask)[1]
    G = np.array([[float(np.vdot(w * P[i], P[j])) for j in range(S)] for i in range(S)])
    y = np.array([float(np.vdot(w * P[i], t)) for i in range(S)])
    ok = np.diag(G) > 0
    h = np.asarray(model.heights, np.float64).copy()
    if ok.any():
        sol = np.linalg.solve(G[np.ix_(ok, ok)], y[ok])
        h[ok] = np.where(sol > 0, sol, h[ok])
    return replace(model, heights=h)


def _appended(pos, lab, source, new_pos, new_lab):
    """The atoms with the added ones at the end (source -1)."""
    if new_pos.shape[0] == 0:
        return pos, lab, source
    return (np.concatenate([pos, new_pos]), np.concatenate([lab, new_lab]).astype(np.int32),
            np.concatenate([source, np.full(new_pos.shape[0], -1, np.int64)]))


def decide_atoms(positions, species, tilts, angles, pixel_size, *, model: AtomModel | None = None,
                 threshold: float = 0.0, add_threshold: float = 10.0, min_distance: float = 1.6,
                 radius: float = 2.0, rounds: int = 4, iterations: int = 20, max_passes: int = 20,
                 fill_rounds: int = 3, fill_fraction: float = 0.05, refine_options: dict | None = None,
                 pixel_mask=None, slab=None, threads=None, log=None) -> Decision:
    """Drop, relabel and add atoms by the evidence of the tilt series (see the module documentation).

    Parameters
    ----------
    positions : (n, 3) array
        Traced atoms, Å, object frame.
    species : (n,) sequence
        Their classified element symbols (or integer labels into ``model.symbols``).
    tilts : (n_angles, ny, nx) array
        The aligned series.
    angles : (n_angles,) or (n_angles, 3) array
        Degrees.
    pixel_size : float
        Å.
    model : AtomModel, optional
        Starting heights and B-factors (default :func:`aetcore.model.projection.atom_model`);
        every round refines them.
    threshold : float
        An atom whose presence evidence (nats) is below this is dropped.
    add_threshold : float
        A candidate is added when its evidence (nats) exceeds this.
    min_distance : float
        Å: no atom is added closer than this to another.
    radius : float
        Å: neighbourhood of the one-at-a-time drop and add (see the module documentation).
    rounds : int
        Largest number of refine-drop-add rounds (>= 1).
    iterations : int
        Iterations of the bounded L-BFGS of the refinement of every round.
    max_passes : int
        Largest number of drop/relabel passes per round.
    fill_rounds : int
        Largest number of refine-add rounds before the first drop (0: none). A model with atoms
        missing is a poor judge of the others: the residual of a missing atom inflates the fitted
        variance and its neighbours' misfit, and the drop passes then remove real atoms one pass
        after another. On aetcore's 384-pixel FePt series (41 379 atoms, 10 % of them missing from
        the trace) the rounds without filling ended with 2788 atoms (recall 1.6 %); with the defaults
        one filling round added 3857 atoms and the 4 rounds ended at 41 468 (recall 97.8 %,
        precision 97.6 %, 25.3 pm; bench/README.md, ``scale.py``).
    fill_fraction : float
        A filling round adds its atoms only when they are at least this fraction of the model's atoms
        (a trace that missed many); otherwise the filling stops and the rounds below add them. On a
        nearly complete model filling first keeps atoms that the rounds would have dropped (the
        79-atom cluster of tests/steps/test_evidence.py: 2 spurious atoms left with 2.5 % missing).
    refine_options : dict, optional
        Other keyword options of :func:`aetcore.steps.refine.refine` for the refinement of every round.
        ``precondition`` is False here unless given: the rounds refine a model that still has spurious
        and missing atoms, and the preconditioned L-BFGS, which converges in far fewer iterations,
        moves neighbours onto one true atom and widths down to what such a model fits. On the damaged
        multigrain model of ``tests/steps/test_evidence_shared.py`` it ended at 98.8 % precision and
        99.7 % species accuracy, against 99.96 % and 100 % without it (4 rounds of 20 iterations).
    pixel_mask : (n_angles, ny, nx) bool array, optional
        Only these pixels count in the likelihood (weight zero elsewhere, the variance model fitted to
        them): for an extended object, the pixels whose rays cross the object inside the box
        (:func:`aetcore.steps.extended.ray_mask`). None: every pixel.
    slab : (z0, z1), optional
        Å: atoms are added only at heights within it (:func:`aetcore.steps.extended.slab_extent`).
    threads : int, optional
    log : callable, optional
        Called with one line per round.

    Returns
    -------
    Decision
    """
    from .refine import refine

    pos, lab, t, a, ps, model = atom_inputs(positions, species, tilts, angles, pixel_size, model)
    model = free_widths(model)
    threshold = float(threshold)
    add_threshold = float(add_threshold)
    if not (np.isfinite(threshold) and np.isfinite(add_threshold)):
        raise ValueError(f"threshold/add_threshold: expected finite numbers, got {threshold}, {add_threshold}")
    min_distance = positive(min_distance, "min_distance")
    radius = positive(radius, "radius")
    rounds = at_least(rounds, 1, "rounds", integer=True)
    fill_rounds = at_least(fill_rounds, 0, "fill_rounds", integer=True)
    fill_fraction = at_least(fill_fraction, 0.0, "fill_fraction")
    max_passes = at_least(max_passes, 1, "max_passes", integer=True)
    ropts = dict(refine_options or {})
    ropts.setdefault("precondition", False)  # see refine_options above
    ropts["iterations"] = at_least(iterations, 1, "iterations", integer=True)
    nt = resolve_threads(threads)
    mask = _check_mask(pixel_mask, t.shape)
    if slab is not None:
        slab = tuple(float(v) for v in slab)
        if len(slab) != 2 or not slab[0] < slab[1]:
            raise ValueError(f"slab: expected (z0, z1) with z0 < z1, got {slab!r}")
    syms = np.asarray(model.symbols)
    multi = len(model.symbols) > 1
    source = np.arange(pos.shape[0], dtype=np.int64)
    history = []
    def refined_model(pos, lab, model):
        """Step 1: the refinement of every round (of the imputed series when a mask is given)."""
        ref = refine(pos, lab, impute_series(t, mask, pos, lab, model, a, ps, nt), a, ps, model=model,
                     threads=nt, **ropts)
        return ref.positions, ref.model

    ev = noise = None
    refined = False        # True: the last filling round refined the current atoms and added none
    for rnd in range(fill_rounds):
        if pos.shape[0] == 0:
            break
        pos, model = refined_model(pos, lab, model)
        refined = True
        _, r, w = _evidence(pos, lab, model, t, a, ps, None, nt, mask)
        new_pos, new_lab, _ = _propose(pos, model, t, a, ps, r, w, add_threshold, min_distance, radius, nt,
                                       slab)
        if new_pos.shape[0] == 0 or new_pos.shape[0] < fill_fraction * pos.shape[0]:
            break              # the first round below starts from this refinement
        refined = False
        pos, lab, source = _appended(pos, lab, source, new_pos, new_lab)
        history.append({"dropped": 0, "relabelled": 0, "added": int(new_pos.shape[0]), "atoms": int(pos.shape[0]),
                        "fill": True})
        if log is not None:
            log(f"evidence fill {rnd + 1}: added {new_pos.shape[0]}, {pos.shape[0]} atoms")
    for rnd in range(rounds):
        if pos.shape[0] and not refined:
            pos, model = refined_model(pos, lab, model)
        refined = False
        dropped = relabelled = 0
        noise = None           # re-estimated against the refined model of every round
        for _ in range(max_passes):
            ev, r, w = _evidence(pos, lab, model, t, a, ps, noise, nt, mask)
            noise = ev.noise
            drop = _least_in_neighbourhood(ev.presence, pos, ev.presence < threshold, radius)
            change = np.zeros(lab.shape[0], bool)
            if multi:
                best = np.argmax(ev.relabel, axis=1)
                change = (best != lab) & (ev.relabel[np.arange(lab.shape[0]), best] > 0)
                change[drop] = False
                lab = np.where(change, best, lab).astype(np.int32)
            if drop.size == 0 and not change.any():
                break
            keep = np.ones(lab.shape[0], bool)
            keep[drop] = False
            pos, lab, source = pos[keep], lab[keep], source[keep]
            dropped += int(drop.size)
            relabelled += int(change.sum())
            model = _refit_heights(pos, lab, model, t, a, ps, noise, nt, mask)
        # r and w belong to the current atoms: the last pass changed nothing
        new_pos, new_lab, _ = _propose(pos, model, t, a, ps, r, w, add_threshold, min_distance, radius, nt,
                                       slab)
        pos, lab, source = _appended(pos, lab, source, new_pos, new_lab)
        history.append({"dropped": dropped, "relabelled": relabelled, "added": int(new_pos.shape[0]),
                        "atoms": int(pos.shape[0])})
        if log is not None:
            log(f"evidence round {rnd + 1}: dropped {dropped}, relabelled {relabelled}, added "
                f"{new_pos.shape[0]}, {pos.shape[0]} atoms (noise: var = {noise.alpha:.4g} I + {noise.beta:.4g})")
        if dropped == 0 and relabelled == 0 and new_pos.shape[0] == 0:
            break
    if ev is None or history[-1]["added"]:
        ev = _evidence(pos, lab, model, t, a, ps, noise, nt, mask)[0]
    return Decision(positions=np.ascontiguousarray(pos, np.float64), labels=lab.astype(np.int32),
                    symbols=syms[lab], model=model, evidence=ev, added=source < 0, source=source,
                    history=history)
