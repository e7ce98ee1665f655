"""Refinement of atoms against a tilt series: analytic gradients, recovery, precision, bounds,
threads, bad input."""
import numpy as np
import pytest

from aetcore import _core
from aetcore.model import projection as project, simulate
from aetcore.steps.refine import B_BOUNDS, RefinementResult, refine

PS = 0.4
SHAPE = (48, 48)
ANGLES = np.linspace(-70, 70, 10)


@pytest.fixture(scope="module")
def pt_case():
    pos, sp = simulate.pt_particle(radius=6.0, orientation="random", seed=1)
    model = project.atom_model(["Pt"])
    tilts = project.project_atoms(pos, sp, ANGLES, SHAPE, PS, model=model, threads=1)
    return pos, sp, model, tilts


def _rms(a, b):
    return float(np.sqrt(((a - b) ** 2).sum(axis=1).mean()))


# --------------------------------------------------------------------------------- gradient check
@pytest.mark.parametrize("scale", [1.3, 0.0])  # 0 = closed-form scale (envelope theorem)
def test_gradient_matches_central_differences(scale):
    rng = np.random.default_rng(0)
    n = 8
    pos = rng.uniform(-3, 3, (n, 3))  # voxels
    sp = (np.arange(n) % 2).astype(np.int32)
    h = np.array([0.7, 1.2])
    b = np.array([3.0, 5.0])
    blur = 0.4
    ang = np.radians(np.stack([np.zeros(4), [-50.0, -10.0, 20.0, 60.0], np.zeros(4)], axis=1))
    meas = (rng.normal(0, 0.05, (4, 24, 22)) + 0.2).astype(np.float32)

    def f(pos, h, b):
        return _core.refine_objective(pos, sp, h, b, blur, PS, ang, meas, scale, 5.0, True, False, 1)

    d = f(pos, h, b)
    eps = 1e-5

    def check(analytic, plus, minus):
        fd = (plus["loss"] - minus["loss"]) / (2 * eps)
        assert abs(analytic - fd) <= 1e-3 * max(abs(fd), 1e-3 * abs(d["loss"])), (analytic, fd)

    for i in range(n):
        for c in range(3):
            p, m = pos.copy(), pos.copy()
            p[i, c] += eps
            m[i, c] -= eps
            check(d["grad_positions"][i, c], f(p, h, b), f(m, h, b))
    for s in range(2):
        p, m = h.copy(), h.copy()
        p[s] += eps
        m[s] -= eps
        check(d["grad_heights"][s], f(pos, p, b), f(pos, m, b))
        p, m = b.copy(), b.copy()
        p[s] += eps
        m[s] -= eps
        check(d["grad_b_factors"][s], f(pos, h, p), f(pos, h, m))
    assert np.all(d["grad_heights"] != 0) and np.all(d["grad_b_factors"] != 0)


def test_model_matches_project_atoms(pt_case):
    pos, sp, model, tilts = pt_case
    d = _core.refine_objective(pos / PS, np.zeros(len(pos), np.int32), model.heights, model.b_factors,
                               model.blur, PS, np.radians(np.stack([0 * ANGLES, ANGLES, 0 * ANGLES], 1)),
                               tilts, 0.0, 5.0, False, False, 1)
    assert abs(d["scale"] - 1.0) < 1e-6
    assert d["abs_residual"] / np.abs(tilts).sum() < 1e-6


# ---------------------------------------------------------------------------------------- recovery
def test_recovers_perturbed_positions(pt_case):
    pos, sp, model, tilts = pt_case
    assert 40 <= len(pos) <= 80
    rng = np.random.default_rng(2)
    start = pos + rng.normal(0, 0.3 / np.sqrt(3), pos.shape)  # 0.3 Å RMS displacement
    assert 0.25 < _rms(start, pos) < 0.35
    r = refine(start, sp, tilts, ANGLES, PS, model=model, refine_heights=False, refine_b=False,
               iterations=100, threads=1)
    assert isinstance(r, RefinementResult)
    err = _rms(r.positions, pos)
    print(f"positions: RMS {_rms(start, pos):.3f} -> {err:.2e} Å, R1 {r.r1_before:.3f} -> {r.r1_after:.2e}, "
          f"{r.n_iterations} iterations")
    assert err < 0.02
    assert r.r1_after < r.r1_before / 10
    assert r.loss_history[0] > r.loss_history[-1]
    assert len(r.loss_history) == r.n_iterations + 1
    assert abs(r.scale - 1.0) < 1e-3


def test_recovers_heights_and_b_factors():
    fp = simulate.fept_particle(radius=6.0, orientation="random", seed=3)
    truth = project.atom_model(["Fe", "Pt"], b_factors={"Fe": 3.0, "Pt": 5.0})
    tilts = project.project_atoms(fp.positions, fp.species, ANGLES, SHAPE, PS, model=truth, threads=1)
    start_model = project.atom_model(["Fe", "Pt"], heights=truth.heights * np.array([1.3, 0.8]),
                                     b_factors={"Fe": 6.0, "Pt": 2.5})
    start = fp.positions + np.random.default_rng(4).normal(0, 0.1, fp.positions.shape)
    r = refine(start, fp.species, tilts, ANGLES, PS, model=start_model, iterations=80, threads=1)
    hr = r.model.heights / truth.heights
    print(f"H ratio {hr}, B {r.model.b_factors}, R1 {r.r1_before:.3f} -> {r.r1_after:.2e}, "
          f"positions RMS {_rms(r.positions, fp.positions):.2e} Å")
    assert np.all(np.abs(hr - 1) < 0.03)
    assert np.all(np.abs(r.model.b_factors / truth.b_factors - 1) < 0.03)
    assert r.scale == 1.0  # folded into the heights
    assert r.model.symbols == truth.symbols and r.model.blur == truth.blur


# --------------------------------------------------------------------------------------- precision
def test_precision_matches_scatter(pt_case):
    pos, sp, model, clean = pt_case
    rng = np.random.default_rng(5)
    noise = 0.05 * float(clean.max())
    errs, preds = [], []
    for _ in range(6):
        noisy = clean + rng.normal(0, noise, clean.shape).astype(np.float32)
        r = refine(pos, sp, noisy, ANGLES, PS, model=model, refine_heights=False, refine_b=False,
                   iterations=100, threads=1)
        errs.append(r.positions - pos)
        preds.append(r.precision)
        assert abs(r.noise_sigma / noise - 1) < 0.05
    errs, preds = np.array(errs), np.array(preds)
    actual = np.sqrt((errs ** 2).mean(axis=(0, 1)))
    predicted = np.sqrt((preds ** 2).mean(axis=(0, 1)))
    print(f"actual RMS error per axis {actual}, predicted {predicted} Å")
    ratio = actual / predicted
    assert np.all((ratio > 1 / 1.5) & (ratio < 1.5)), ratio


def test_precision_under_poisson_noise_sandwich_vs_curvature():
    # Poisson noise is larger on the atoms than on the background: the sandwich estimate follows the
    # scatter of refined positions over independent noise realisations, one noise level does not.
    p = simulate.fept_particle(7.0, orientation="random", seed=2)
    ang = simulate.angles_range(-70, 70, 15)
    errs, sand, curv = [], [], []
    for seed in range(6):
        s = simulate.tilt_series(p.positions, p.species, ang, (48, 48), PS, dose=5e4, seed=10 + seed, threads=1)
        kw = dict(refine_heights=False, refine_b=False, iterations=100, threads=1)
        r = refine(p.positions, p.species, s.tilts, s.angles, PS, **kw)
        errs.append(r.positions - p.positions)
        sand.append(r.precision)
        curv.append(refine(p.positions, p.species, s.tilts, s.angles, PS, precision="curvature", **kw).precision)
    actual = np.sqrt(np.mean(np.array(errs) ** 2))
    ratio_s = actual / np.sqrt(np.mean(np.array(sand) ** 2))
    ratio_c = actual / np.sqrt(np.mean(np.array(curv) ** 2))
    print(f"actual/sandwich {ratio_s:.2f}, actual/curvature {ratio_c:.2f}")
    assert 0.75 < ratio_s < 1.33
    assert ratio_c > 1.3  # one noise level is too optimistic here
    with pytest.raises(ValueError, match="precision"):
        refine(p.positions, p.species, s.tilts, s.angles, PS, precision="bootstrap")


# ------------------------------------------------------------------------------- bounds, threads
def test_bounds_honoured(pt_case):
    pos, sp, model, tilts = pt_case
    start = pos + np.random.default_rng(6).normal(0, 0.3, pos.shape)
    r = refine(start, sp, tilts, ANGLES, PS, model=project.atom_model(["Pt"], b_factors=60.0),
               max_shift=0.1, iterations=30, threads=1)
    assert np.abs(r.positions - start).max() <= 0.1 + 1e-9
    assert np.all(r.model.b_factors >= B_BOUNDS[0]) and np.all(r.model.b_factors <= B_BOUNDS[1])
    assert np.all(r.model.heights > 0)


def test_threads_agree(pt_case):
    pos, sp, model, tilts = pt_case
    start = pos + np.random.default_rng(7).normal(0, 0.15, pos.shape)
    r1 = refine(start, sp, tilts, ANGLES, PS, model=model, iterations=15, threads=1)
    r2 = refine(start, sp, tilts, ANGLES, PS, model=model, iterations=15, threads=2)
    r2b = refine(start, sp, tilts, ANGLES, PS, model=model, iterations=15, threads=2)
    assert np.abs(r1.positions - r2.positions).max() < 1e-6
    np.testing.assert_allclose(r1.model.heights, r2.model.heights, rtol=1e-6)
    np.testing.assert_allclose(r1.model.b_factors, r2.model.b_factors, rtol=1e-6)
    np.testing.assert_array_equal(r2.positions, r2b.positions)  # deterministic for a thread count


# -------------------------------------------------------------------------------------- bad input
def test_bad_input_refused(pt_case):
    pos, sp, model, tilts = pt_case
    ok = dict(model=model, iterations=2, threads=1)
    cases = [
        (ValueError, "positions", lambda: refine(pos[:, :2], sp, tilts, ANGLES, PS, **ok)),
        (TypeError, "positions", lambda: refine("pos", sp, tilts, ANGLES, PS, **ok)),
        (ValueError, "species", lambda: refine(pos, sp[:-1], tilts, ANGLES, PS, **ok)),
        (ValueError, "species", lambda: refine(pos, np.full(len(pos), "Xx"), tilts, ANGLES, PS, **ok)),
        (ValueError, "tilts", lambda: refine(pos, sp, tilts[0], ANGLES, PS, **ok)),
        (ValueError, "angles", lambda: refine(pos, sp, tilts, ANGLES[:-1], PS, **ok)),
        (ValueError, "pixel_size", lambda: refine(pos, sp, tilts, ANGLES, -1.0, **ok)),
        (ValueError, "max_shift", lambda: refine(pos, sp, tilts, ANGLES, PS, max_shift=0.0, **ok)),
        (TypeError, "refine_positions", lambda: refine(pos, sp, tilts, ANGLES, PS, refine_positions="yes", **ok)),
        (TypeError, "model", lambda: refine(pos, sp, tilts, ANGLES, PS, model="Pt")),
        (ValueError, "iterations", lambda: refine(pos, sp, tilts, ANGLES, PS, model=model, iterations=0)),
        (ValueError, "threads", lambda: refine(pos, sp, tilts, ANGLES, PS, model=model, threads=0)),
        (ValueError, "species", lambda: refine(pos, np.zeros(len(pos), int), tilts, ANGLES, PS)),
        (ValueError, "scale", lambda: refine(pos, sp, tilts, ANGLES, PS, scale=-1.0, **ok)),
        (ValueError, "tilts", lambda: refine(pos, sp, np.zeros_like(tilts), ANGLES, PS, **ok)),
    ]
    for exc, name, call in cases:
        with pytest.raises(exc, match=name):
            call()


def test_default_model_from_symbols(pt_case):
    pos, sp, model, tilts = pt_case
    r = refine(pos, sp, tilts, ANGLES, PS, iterations=3, threads=1)
    assert r.model.symbols == ("Pt",)
    assert r.precision.shape == pos.shape and np.all(np.isfinite(r.precision))


def test_refine_angles_recovers_tilt_errors():
    # Tilt angles off by up to 1.5 deg (0.9 deg RMS): alternating atoms and per-image angles against
    # the exact atomic model finds them to < 0.15 deg and the positions improve.
    from aetcore.model.geometry import normalize_angles
    from aetcore.quality.scoring import match_atoms
    p = simulate.fept_particle(8.0, orientation="random", seed=3)
    ang = simulate.angles_range(-70, 70, 21)
    s = simulate.tilt_series(p.positions, p.species, ang, (48, 48), PS, dose=5e4, seed=1, threads=1)
    rng = np.random.default_rng(0)
    err = rng.uniform(-1.5, 1.5, len(ang))
    err -= err.mean()  # a common offset is a gauge (it turns the model)
    nominal = normalize_angles(ang)
    nominal[:, 1] += err
    start = p.positions + rng.normal(0, 0.15, p.positions.shape)
    plain = refine(start, p.species, s.tilts, nominal, PS, threads=1)
    r = refine(start, p.species, s.tilts, nominal, PS, refine_angles=True, angle_rounds=3, threads=1)
    e = r.angles[:, 1] - normalize_angles(ang)[:, 1]
    rms_before, rms_after = np.sqrt(np.mean(err ** 2)), np.sqrt(np.mean(e ** 2))
    m0 = match_atoms(p.positions, p.species, plain.positions, p.species)
    m1 = match_atoms(p.positions, p.species, r.positions, p.species)
    print(f"angles {rms_before:.3f} -> {rms_after:.3f} deg; RMSD {m0.rmsd_pm:.1f} -> {m1.rmsd_pm:.1f} pm; "
          f"history {r.angle_history}")
    assert rms_before > 0.8 and rms_after < 0.15
    assert m1.rmsd_pm < 0.6 * m0.rmsd_pm and r.r1_after < plain.r1_after
    np.testing.assert_array_equal(plain.angles, nominal)  # without the option the angles are the input


# ------------------------------------------------------------------ the C++ loop against scipy
def test_matches_scipy_lbfgsb_on_the_same_objective(pt_case):
    # The whole refinement runs in the core (aet::refine_atoms, its own bounded L-BFGS). An independent
    # minimisation of the same objective (_core.refine_objective) by scipy's L-BFGS-B, same parameters
    # (offsets in Å within ±max_shift, H / H_0, B in B_BOUNDS) and the same normalisation, both run to
    # convergence on a noisy series, reaches the same minimum.
    from scipy.optimize import minimize
    pos, sp, model, clean = pt_case
    rng = np.random.default_rng(8)
    tilts = (clean + rng.normal(0, 0.03 * float(clean.max()), clean.shape)).astype(np.float32)
    start = pos + rng.normal(0, 0.15, pos.shape)
    start_model = project.atom_model(["Pt"], heights=model.heights * 0.9, b_factors=model.b_factors + 1.0)
    r = refine(start, sp, tilts, ANGLES, PS, model=start_model, iterations=1000, threads=1)

    n = len(pos)
    labels = np.zeros(n, np.int32)
    ang = np.radians(np.stack([0 * ANGLES, ANGLES, 0 * ANGLES], 1))
    h0, norm = start_model.heights.copy(), 0.5 * float((tilts.astype(np.float64) ** 2).sum())

    def fun(x):
        p, h, b = start + x[:3 * n].reshape(n, 3), h0 * x[3 * n:3 * n + 1], x[3 * n + 1:]
        d = _core.refine_objective(p / PS, labels, h, b, model.blur, PS, ang, tilts, 0.0, 5.0, True, False, 1)
        g = np.concatenate([d["grad_positions"].ravel() / PS, d["grad_heights"] * h0, d["grad_b_factors"]])
        return d["loss"] / norm, g / norm

    x0 = np.concatenate([np.zeros(3 * n), [1.0], start_model.b_factors])
    bounds = [(-1.0, 1.0)] * (3 * n) + [(_core.RefineOptions().height_min, None), B_BOUNDS]
    ref = minimize(fun, x0, jac=True, method="L-BFGS-B", bounds=bounds,
                   options={"maxiter": 1000, "ftol": 1e-15, "gtol": 1e-12, "maxcor": 20})
    ref_pos = start + ref.x[:3 * n].reshape(n, 3)
    ref_loss = ref.fun * norm
    dpos = np.abs(r.positions - ref_pos).max()
    print(f"C++ {r.n_iterations} iterations ({r.message}), loss {r.loss_history[-1]:.9g}; scipy {ref.nit} iterations "
          f"({ref.message}), loss {ref_loss:.9g}; largest position difference {100 * dpos:.2e} pm; "
          f"RMSD to truth {100 * _rms(r.positions, pos):.3f} / {100 * _rms(ref_pos, pos):.3f} pm")
    assert dpos < 0.005  # 0.5 pm
    assert abs(r.loss_history[-1] - ref_loss) <= 1e-6 * ref_loss
    assert r.loss_history[-1] <= ref_loss * (1 + 1e-9)  # not a worse minimum
    assert abs(r.model.b_factors[0] - ref.x[-1]) < 1e-3 * ref.x[-1]


def test_progress_bar_follows_the_core_iterations(pt_case, monkeypatch):
    # progress=True drives the tqdm bar from the core's per-iteration callback (the GIL re-acquired there).
    from aetcore.steps import refine as mod
    updates = []

    class Bar:
        def __init__(self, *a, **k):
            pass

        def update(self, k):
            updates.append(k)

        def close(self):
            updates.append("closed")

    monkeypatch.setattr(mod, "tqdm", Bar)
    pos, sp, model, tilts = pt_case
    r = refine(pos + 0.05, sp, tilts, ANGLES, PS, model=model, iterations=4, threads=1, progress=True)
    assert r.n_iterations == 4 and len(r.loss_history) == 5
    assert updates == [1, 1, 1, 1, "closed"]

    # an exception in the callback stops the core's loop and is raised again in Python
    def boom(it, loss):
        raise RuntimeError(f"stop at {it}")

    ang = np.radians(np.stack([0 * ANGLES, ANGLES, 0 * ANGLES], 1))
    with pytest.raises(RuntimeError, match="stop at 1"):
        _core.refine_atoms(pos + 0.05, np.zeros(len(pos), np.int32), model.heights, model.b_factors, model.blur, PS,
                           ang, tilts, 0.0, _core.RefineOptions(), boom)
    d = _core.refine_atoms(pos + 0.05, np.zeros(len(pos), np.int32), model.heights, model.b_factors, model.blur, PS,
                           ang, tilts, 0.0, _core.RefineOptions(), lambda it, loss: it < 2)
    assert d["cancelled"] and d["n_iterations"] == 2


# ------------------------------------------------------------------------------- preconditioning
def test_gauss_newton_diagonals_of_heights_and_widths_match_finite_differences():
    # gn_heights = sum (dP/dH_s)^2 and gn_sigmas = sum (dP/dsigma_s)^2, against images of each species
    # from project_atoms: dP/dH = P_s / H_s exactly, dP/dsigma by a central difference in B
    rng = np.random.default_rng(4)
    pos = rng.uniform(-8, 8, (12, 3))                      # Å
    labels = (np.arange(12) % 2).astype(np.int32)
    h, b, blur = np.array([0.3, 1.1]), np.array([5.0, 3.0]), 0.3
    ang = np.array([-60.0, -20.0, 15.0, 55.0])
    ang3 = np.radians(np.stack([np.zeros(4), ang, np.zeros(4)], axis=1))
    meas = np.zeros((4, 40, 40), np.float32)
    d = _core.refine_objective(pos / PS, labels, h, b, blur, PS, ang3, meas, 1.0, 5.0, False, True, 1)
    for s, sym in enumerate(["Fe", "Pt"]):
        sel = labels == s

        def image(bs):
            m = project.AtomModel(symbols=(sym,), heights=np.array([h[s]]), b_factors=np.array([bs]), blur=blur)
            return project.project_atoms(pos[sel], [sym] * int(sel.sum()), ang, (40, 40), PS, model=m,
                                         threads=1).astype(np.float64)

        assert d["gn_heights"][s] == pytest.approx(np.sum((image(b[s]) / h[s]) ** 2), rel=1e-4)
        eps = 1e-3                                           # Å^2
        dp_db = (image(b[s] + eps) - image(b[s] - eps)) / (2 * eps)
        sigma = np.sqrt(b[s] / (8 * np.pi ** 2 * PS ** 2) + (blur / PS) ** 2)
        dsigma_db = 1.0 / (16 * np.pi ** 2 * PS ** 2 * sigma)
        assert d["gn_sigmas"][s] == pytest.approx(np.sum((dp_db / dsigma_db) ** 2), rel=2e-3)


def test_preconditioning_brings_light_atoms_home_in_fewer_iterations():
    # FePt: an Fe coordinate has ~1/45 of a Pt coordinate's curvature. From 17 pm off the exact
    # positions, 12 iterations of the preconditioned L-BFGS bring the Fe atoms within 2 pm; without
    # the preconditioner they are still ~10 pm off (measured 1.0 and 9.9 pm).
    pos, sp, _ = simulate.fept_particle(radius=7.0, seed=3)
    ang = np.linspace(-70, 70, 12)
    model = project.atom_model(["Fe", "Pt"])
    tilts = project.project_atoms(pos, sp, ang, (64, 64), PS, model=model, threads=1)
    start = pos + np.random.default_rng(0).normal(0, 0.1, pos.shape)
    fe = sp == "Fe"
    out = {}
    for pre in (True, False):
        r = refine(start, sp, tilts, ang, PS, model=model, iterations=12, precondition=pre, threads=2)
        out[pre] = _rms(r.positions[fe], pos[fe]) * 100          # pm
    assert out[True] < 2.0 and out[False] > 5.0, out
