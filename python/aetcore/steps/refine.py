"""Refinement of an atomic model against the measured tilt series (CONVENTIONS.md forward model).

Minimises ``L = sum_k sum_pixels (s P_k - b_k)^2 / 2`` over atom positions, per-species heights
``H_s`` and Debye-Waller factors ``B_s`` (the blur is fixed), where ``P_k`` are the exact (erf) pixel
projections of the Gaussian atoms at the measured angles and ``s`` a global scale. The whole
refinement runs in the C++ core, ``aet::refine_atoms`` (``cpp/src/refine.cpp``, docs/cpp.md), in one
call with the GIL released: the loss and its analytic gradient (float64 inside, OpenMP over angles,
deterministic for a given thread count), the bounded L-BFGS minimiser
(``aet::minimize_bounded_lbfgs``, ``cpp/include/aetcore/bounded_lbfgs.hpp``: projected L-BFGS with
the two-loop recursion on the free variables and a line search on the projected path; it stops like
scipy's L-BFGS-B, on ``(f_k - f_{k+1}) / max(|f_k|, |f_{k+1}|, 1) <= lbfgs_ftol`` or a projected
gradient ``<= lbfgs_gtol``), the loss history, the scale folding, the noise level and the per-atom
precision below. A C++ host gets the same refinement from the same inputs. Python checks the
arguments, converts the species, drives the progress bar from the core's per-iteration callback and
wraps the result. The outer loop of ``refine_angles=True`` (whole refinements alternating with a
per-image search of the tilt angle) stays in Python: it is a loop around whole refinements, not part
of one.

Scale: with ``scale=None`` (default) ``s = <P, b> / <P, P>`` is solved in closed form at every
evaluation; by the envelope theorem the gradient at fixed ``s`` is then the gradient of the reduced
objective. ``s`` and the heights are degenerate (``P`` is linear in ``H``), so when heights are
refined with a closed-form scale, ``s`` is folded into the returned heights and ``scale`` is 1.
Pass a number to fix ``s``.

Parameters seen by the minimiser: position offsets from the start in Å (bounds ``±max_shift`` per
coordinate), heights relative to their start (``H / H_0 >= height_min``) and ``B`` in Å² (bounds
``[b_min, b_max]`` = :data:`B_BOUNDS`; a starting B outside is clipped into it); the objective is
divided by ``sum b^2 / 2`` so that its scale does not depend on the data. Every bound and setting is a
member of ``aet::RefineOptions`` (``_core.RefineOptions()``), the one home of the defaults.

Precision: per atom, the Gauss-Newton 3x3 block ``A_i = J_i^T J_i`` (derivatives of ``s P`` with
respect to that atom's coordinates, summed over all pixels of all angles), the "meat"
``M_i = J_i^T diag(r^2) J_i`` with ``r`` the residual of every pixel, and the observed (Newton) block
``H_i = A_i + sum r d2(s P)/dx_i2``. By default (``precision="sandwich"``) the heteroscedasticity-
consistent sandwich ``cov_i = B_i^{-1} M_i B_i^{-1} N/(N - p)`` (HC1) gives
``precision_i = sqrt(diag(cov_i))`` in Å, with the bread ``B_i = H_i`` where the loss is quadratic
around the atom, and where it is flatter, ``H_i`` with the eigenvalues of ``A_i^{-1/2} H_i A_i^{-1/2}``
floored at 0.25 (``aet::kPrecisionCurvatureFloor``). Measured over 20 noise realisations of a small
FePt particle (bench/precision.py, bench/README.md): observed scatter / predicted 1.04-1.06 for Pt and
1.06 for Fe at 300 counts per Pt atom per image, 1.15 for Fe at 50 counts, where the Gauss-Newton bread
``A_i`` was 1.68x optimistic (the loss around an Fe atom is far from quadratic there: the observed
curvature below half the Gauss-Newton one for a third of the Fe atoms). ``curvature_ratio`` (the
smallest eigenvalue of ``A_i^{-1/2} H_i A_i^{-1/2}``) and ``precision_reliable``
(``curvature_ratio >= 0.5``) say where that is so: there the precision rests on the floor, a measured
constant, and is a guess of the right size rather than a curvature. Poisson noise is larger on the
atoms than on the background, so one noise level for all pixels (``precision="curvature"``:
``sigma^2 A_i^{-1}`` with ``sigma^2 = sum r^2 / (N - p)``) is too optimistic (by about 1.8x on
simulated FePt). Both ignore correlations with neighbouring atoms and with H, B and s (about 5 % on
that particle), and neither sees systematic errors (misalignment, a wrong atom model): they are the
precision the noise allows, not an accuracy.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Optional

import numpy as np
from tqdm.auto import tqdm

from .. import _core
from .._util.validate import as_angles, as_positions, as_tilts, at_least, flag, one_of, positive, resolve_threads
from ase.data import atomic_numbers

from ..model.projection import AtomModel, atom_model

__all__ = ["refine", "RefinementResult", "B_BOUNDS"]

#: The defaults of :func:`refine`: the C++ options struct ``aet::RefineOptions`` (the one home of every
#: refinement default and bound, shared with C++ hosts, ``aet::refine_atoms`` and ``aet config --defaults``).
_D = _core.RefineOptions()
#: Bounds on the refined Debye-Waller factors, Å² (``aet::RefineOptions::b_min``, ``b_max``).
B_BOUNDS = (_D.b_min, _D.b_max)


@dataclass(frozen=True)
class RefinementResult:
    """Outcome of :func:`refine`.

    Attributes
    ----------
    positions : (n_atoms, 3) float64
        Refined ``(x, y, z)``, Å, object frame.
    labels : (n_atoms,) int32
        Species labels into ``model.symbols``.
    model : AtomModel
        Refined heights and B-factors (blur unchanged).
    scale : float
        Global scale ``s`` of the final model (1 when folded into the heights, see module doc).
    r1_before, r1_after : float
        ``sum |s P - b| / sum |b|`` at the start and at the end.
    loss_history : (n_iterations + 1,) float64
        ``L`` at the start and after every iteration of the minimiser.
    n_iterations : int
    precision : (n_atoms, 3) float64
        Estimated standard deviation of each coordinate, Å (see module doc; inf for a singular block).
    precision_reliable : (n_atoms,) bool
        False where the loss around the atom is far from quadratic (``curvature_ratio < 0.5``, or a
        singular block): ``precision`` is then a curvature-based guess with a floored curvature, and
        the scatter over noise realisations can be larger (see module doc).
    curvature_ratio : (n_atoms,) float64
        Smallest eigenvalue of ``A_i^{-1/2} H_i A_i^{-1/2}``, the observed (Newton) curvature of the
        loss around the atom relative to the Gauss-Newton one (1: quadratic; <= 0: not a minimum along
        some direction; NaN: singular ``A_i``).
    noise_sigma : float
        Residual standard deviation per pixel, projection units.
    message : str
        Why the minimiser stopped (``aet::minimize_bounded_lbfgs``).
    angles : (n_angles, 3) float64
        ZYZ Euler angles, degrees: the refined tilt angles with ``refine_angles=True``, else the
        input.
    angle_history : list of float
        With ``refine_angles``: the RMS change of the tilt angles (degrees) in each round.
    """

    positions: np.ndarray
    labels: np.ndarray
    model: AtomModel
    scale: float
    r1_before: float
    r1_after: float
    loss_history: np.ndarray
    n_iterations: int
    precision: np.ndarray
    noise_sigma: float
    message: str
    precision_reliable: Optional[np.ndarray] = None
    curvature_ratio: Optional[np.ndarray] = None
    angles: Optional[np.ndarray] = None
    angle_history: list = field(default_factory=list)



def atom_inputs(positions, species, tilts, angles, pixel_size, model):
    """The checked inputs of a fit of atoms to a tilt series (refinement, evidence):
    ``(positions, labels, tilts, angles, pixel_size, model)``; without a `model`, the default
    :func:`atom_model` of the species in ascending atomic number."""
    pos = as_positions(positions)
    t = as_tilts(tilts)
    a = as_angles(angles, t.shape[0])
    ps = positive(pixel_size, "pixel_size")
    if model is not None and not isinstance(model, AtomModel):
        raise TypeError(f"model: expected an AtomModel or None, got {type(model).__name__}")
    sp = np.asarray(species)
    if sp.ndim != 1 or sp.shape[0] != pos.shape[0]:
        raise ValueError(f"species: expected one entry per atom ({pos.shape[0]}), got shape {sp.shape}")
    if model is None:
        if sp.dtype.kind in "iu":
            raise ValueError("species: integer labels need a `model` (see aetcore.model.projection.atom_model)")
        model = atom_model(sorted(dict.fromkeys(str(s) for s in sp), key=lambda s: atomic_numbers.get(s, 0)))
    return pos, model.labels(sp), t, a, ps, model

def refine(positions, species, tilts, angles, pixel_size, *, model: AtomModel | None = None,
           max_shift: float = _D.max_shift, refine_positions: bool = _D.refine_positions,
           refine_heights: bool = _D.refine_heights, refine_b: bool = _D.refine_b, iterations: int = _D.iterations,
           precondition: bool = _D.precondition, scale=None, cutoff: float = _D.cutoff, precision: str = _D.precision,
           refine_angles: bool = _D.refine_angles, angle_range: float = _D.angle_range,
           angle_rounds: int = _D.angle_rounds, threads=None, progress: bool = False) -> RefinementResult:
    """Refine atom positions, heights and B-factors against a tilt series.

    Parameters
    ----------
    positions : (n_atoms, 3) array
        Starting ``(x, y, z)`` in Å (e.g. from :func:`aetcore.steps.trace.trace_atoms`).
    species : (n_atoms,) sequence
        Element symbols, or integer labels into ``model.symbols``.
    tilts : (n_angles, ny, nx) array
        Measured (aligned) tilt series.
    angles : (n_angles,) or (n_angles, 3) array
        Degrees, one per image.
    pixel_size : float
        Å per pixel.
    model : AtomModel, optional
        Starting heights, B-factors and blur (default :func:`aetcore.model.projection.atom_model`).
    max_shift : float
        Each coordinate stays within ``±max_shift`` Å of its start (default 1).
    refine_positions, refine_heights, refine_b : bool
        Which parameters to refine.
    iterations : int
        Maximum iterations of the bounded L-BFGS (default 25).
    precondition : bool
        Default True. Scale every position coordinate by the square root of its Gauss-Newton
        curvature at the start (a diagonal preconditioner: the minimiser is unchanged, the path to it
        is shorter). Without it, a light atom's coordinates have ~1/45 of a heavy atom's curvature
        (FePt), and a coordinate along z less than one in the tilt plane, and the L-BFGS needs many more
        iterations: on aetcore's 288-pixel FePt series (17 553 atoms, from the evidence step's model),
        50 iterations reached 6.5 pm RMSD against the truth without it, 10 iterations 2.9 pm and 25
        iterations 2.1 pm with it. On the shared fept_dev series started 17 pm from the truth, both
        reach the same loss (the preconditioned in 20 iterations instead of 50).
    scale : None or float
        None solves the global scale in closed form at every evaluation; a number fixes it.
    cutoff : float
        Atoms are evaluated within ``cutoff`` sigmas (default 5).
    precision : {"sandwich", "curvature"}
        Default "sandwich". How the per-atom precision is estimated (see the module documentation): ``"sandwich"``
        weights every pixel by its own squared residual (right for Poisson noise, which is larger
        on the atoms than on the background) with the observed (Newton) curvature of the loss around
        the atom, floored, as the bread; ``"curvature"`` assumes one noise level everywhere and the
        Gauss-Newton curvature.
    refine_angles : bool
        Also refine the tilt angle ``theta`` of every image against the atomic model: rounds of
        (refine the atoms at the current angles; per image, the ``theta`` within ``±angle_range``
        degrees of the current one that minimises that image's squared error, the other atoms and
        images fixed; the mean change removed, since a common offset only turns the model), then a
        last refinement of the atoms from their start at the refined angles. This outer loop runs in
        Python around whole refinements in the core (the per-image search is scipy's bounded scalar
        minimiser on ``_core.refine_objective`` of that image). The exact Gaussian-atom
        forward model makes this far more sensitive than re-projections of a volume (see
        :func:`aetcore.steps.align.projection_matching`).
    angle_range : float
        Largest change of a tilt angle per round, degrees (default 2).
    angle_rounds : int
        Rounds of the alternation (default 3).
    threads : int, optional
    progress : bool
        Show a progress bar over the iterations (updated from the core's callback).

    Returns
    -------
    RefinementResult
    """
    pos0, labels, t, a, ps, model = atom_inputs(positions, species, tilts, angles, pixel_size, model)
    max_shift = positive(max_shift, "max_shift")
    rp = flag(refine_positions, "refine_positions")
    rh = flag(refine_heights, "refine_heights")
    rb = flag(refine_b, "refine_b")
    iterations = at_least(iterations, 1, "iterations", integer=True)
    fixed_scale = 0.0 if scale is None else positive(scale, "scale")
    cutoff = positive(cutoff, "cutoff")
    precision_method = one_of(precision, ("sandwich", "curvature"), "precision")
    do_angles = flag(refine_angles, "refine_angles")
    angle_range = positive(angle_range, "angle_range")
    angle_rounds = at_least(angle_rounds, 1, "angle_rounds", integer=True)
    nt = resolve_threads(threads)
    if do_angles:
        kw = dict(model=model, max_shift=max_shift, refine_positions=rp, refine_heights=rh, refine_b=rb,
                  iterations=iterations, precondition=precondition, scale=scale, cutoff=cutoff, precision=precision_method, threads=nt)
        cur = a.copy()
        history = []
        for _ in tqdm(range(angle_rounds), desc="refine angles", disable=None if progress else True, leave=False):
            r = refine(pos0, labels, t, cur, ps, **kw)
            new = _refine_tilt_angles(r, t, cur, ps, angle_range, cutoff, nt)
            history.append(float(np.sqrt(np.mean((new[:, 1] - cur[:, 1]) ** 2))))
            cur = new
        out = refine(pos0, labels, t, cur, ps, **kw)
        return replace(out, angles=cur, angle_history=history)

    h0 = np.asarray(model.heights, np.float64)
    if np.any(h0 <= 0):
        raise ValueError(f"model: heights must be positive to refine, got {h0}")
    opt = _core.RefineOptions()
    opt.max_shift, opt.refine_positions, opt.refine_heights, opt.refine_b = max_shift, rp, rh, rb
    opt.iterations, opt.cutoff, opt.precision, opt.threads = iterations, cutoff, precision_method, nt
    opt.precondition = flag(precondition, "precondition")
    bar = tqdm(total=iterations, desc="refine", disable=None if progress else True, leave=False)
    try:
        r = _core.refine_atoms(np.ascontiguousarray(pos0, np.float64), np.ascontiguousarray(labels, np.int32),
                               np.ascontiguousarray(h0), np.ascontiguousarray(model.b_factors, np.float64),
                               float(model.blur), ps, np.ascontiguousarray(np.radians(a)), t, fixed_scale, opt,
                               lambda it, loss: bar.update(1))
    finally:
        bar.close()
    out_model = replace(model, heights=r["heights"], b_factors=r["b_factors"])
    return RefinementResult(positions=r["positions"], labels=labels, model=out_model, scale=float(r["scale"]),
                            r1_before=float(r["r1_before"]), r1_after=float(r["r1_after"]),
                            loss_history=r["loss_history"], n_iterations=int(r["n_iterations"]),
                            precision=r["precision"], noise_sigma=float(r["noise_sigma"]), message=r["message"],
                            precision_reliable=r["precision_reliable"], curvature_ratio=r["curvature_ratio"],
                            angles=a.copy())


def _refine_tilt_angles(r: RefinementResult, t: np.ndarray, ang: np.ndarray, ps: float, span: float,
                        cutoff: float, threads: int) -> np.ndarray:
    """Per image, the theta within +-span of ``ang[k, 1]`` minimising the image's squared error
    against the refined model `r` (fixed atoms, heights, B and scale); the mean change removed."""
    from scipy.optimize import minimize_scalar
    pos = np.ascontiguousarray(r.positions / ps)
    h = np.ascontiguousarray(r.model.heights, np.float64)
    b = np.ascontiguousarray(r.model.b_factors, np.float64)
    labels = np.ascontiguousarray(r.labels, np.int32)
    s = float(r.scale)
    out = ang.copy()

    def loss(k, d):
        a = np.radians(ang[k:k + 1].copy())
        a[0, 1] += np.radians(d)
        return _core.refine_objective(pos, labels, h, b, r.model.blur, ps, a, t[k:k + 1], s, cutoff,
                                      False, False, threads)["loss"]

    for k in range(ang.shape[0]):  # one bounded 1D search per image (a handful of images)
        res = minimize_scalar(lambda d: loss(k, d), bounds=(-span, span), method="bounded",
                              options={"xatol": 1e-3})
        if res.fun < loss(k, 0.0):
            out[k, 1] += float(res.x)
    out[:, 1] -= np.mean(out[:, 1] - ang[:, 1])  # a common offset turns the model: a gauge
    return out
