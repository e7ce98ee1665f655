"""K-fold validation of the refinement over images (aetcore.quality.holdout): the folds, the held-out
R1 against the noise floor of the true model, determinism, bad input."""
import doctest

import numpy as np
import pytest

from aetcore.model import projection, simulate
from aetcore.quality import holdout
from aetcore.quality.holdout import holdout_r1, image_folds

PS = 0.4


def _series(radius, n_angles, dose, shape, perturb=0.1, seed=2):
    p = simulate.fept_particle(radius, orientation="random", seed=1)
    s = simulate.tilt_series(p.positions, p.species, simulate.angles_range(-70, 70, n_angles), shape, PS,
                             dose=dose, seed=seed, threads=1)
    start = p.positions + np.random.default_rng(3).normal(0, perturb, p.positions.shape)
    return p, s, start


def _floor(p, s):
    """R1 of the TRUE atoms (best global scale) against the noisy series: the noise floor."""
    P = projection.project_atoms(p.positions, p.species, s.angles, s.tilts.shape[1:], PS, threads=1)
    P = P.astype(np.float64)
    b = s.tilts.astype(np.float64)
    sc = (P * b).sum() / (P * P).sum()
    return float(np.abs(sc * P - b).sum() / np.abs(b).sum())


# ------------------------------------------------------------------------------------------ folds
@pytest.mark.parametrize("n, k", [(15, 5), (59, 5), (31, 3), (7, 7), (10, 2)])
def test_folds_partition_the_images(n, k):
    theta = np.random.default_rng(n).permutation(np.linspace(-70, 70, n))  # unsorted, as in a file
    parts = image_folds(theta, k, seed=4)
    assert len(parts) == k
    allidx = np.concatenate(parts)
    np.testing.assert_array_equal(np.sort(allidx), np.arange(n))   # every image exactly once
    sizes = [len(f) for f in parts]
    assert max(sizes) - min(sizes) <= 1
    for f in parts:
        assert np.all(np.diff(f) > 0)
        if n >= 2 * k:   # every fold samples the tilt range: its images lie in distinct blocks of k by angle
            rank = np.argsort(np.argsort(theta))[f]
            assert len(set(rank // k)) == len(f)


def test_folds_deterministic_for_a_seed():
    theta = np.linspace(-70, 70, 40)
    a = image_folds(theta, 5, seed=11)
    b = image_folds(theta, 5, seed=11)
    c = image_folds(theta, 5, seed=12)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c))


def test_folds_bad_input():
    with pytest.raises(ValueError, match="folds"):
        image_folds(np.linspace(-60, 60, 4), 5)
    with pytest.raises(ValueError, match="folds"):
        image_folds(np.linspace(-60, 60, 10), 1)
    with pytest.raises(TypeError, match="seed"):
        image_folds(np.linspace(-60, 60, 10), 2, seed="x")


# ------------------------------------------------------------------------------------- held-out R1
def test_well_posed_noiseless_holdout_equals_fit():
    # 55 atoms, 15 noiseless images: the positions are overdetermined and the refinement converges to
    # the truth from 0.1 Å away, so the held-out images are predicted as well as the fitted ones.
    p, s, start = _series(6.0, 15, None, (40, 40))
    h = holdout_r1(start, p.species, s.tilts, s.angles, PS, folds=3, seed=0, threads=1)
    assert np.all(h.r1_start > 0.1)                  # the start is far off ...
    assert np.all(h.r1_holdout < 1e-3 * h.r1_start)  # ... the refined model predicts unseen images
    assert np.all(np.abs(h.r1_holdout - h.r1_fit) < 1e-3 * h.r1_start)


def test_well_posed_noisy_holdout_close_to_fit():
    # the same at 2e4 e/Å²: both R1 sit at the noise floor of the true model, within a few per cent
    p, s, start = _series(6.0, 15, 2e4, (40, 40))
    floor = _floor(p, s)
    h = holdout_r1(start, p.species, s.tilts, s.angles, PS, folds=3, seed=0, threads=1)
    assert h.r1_fit_mean == pytest.approx(floor, rel=0.03)
    assert h.r1_holdout_mean == pytest.approx(floor, rel=0.05)
    assert 0.97 < h.r1_holdout_mean / h.r1_fit_mean < 1.06


def test_overfitting_shows_in_the_holdout():
    # 141 atoms, 3 x 141 + 4 free parameters, 4 training images at 500 e/Å²: the fit explains part of
    # the noise (R1 below the true model's noise floor) and predicts unseen images worse than the floor
    p, s, start = _series(8.0, 6, 500, (48, 48))
    floor = _floor(p, s)
    h = holdout_r1(start, p.species, s.tilts, s.angles, PS, folds=3, seed=0, threads=1, max_shift=2.0)
    print(f"fit {h.r1_fit_mean:.4f}, floor {floor:.4f}, held-out {h.r1_holdout_mean:.4f}")
    assert h.r1_fit_mean < floor < h.r1_holdout_mean
    assert h.gap > 0.1
    assert np.all(h.r1_holdout > h.r1_fit)


def test_holdout_deterministic_for_a_seed():
    p, s, start = _series(5.0, 8, 2e3, (32, 32))
    kw = dict(folds=4, threads=1, iterations=20)
    a = holdout_r1(start, p.species, s.tilts, s.angles, PS, seed=5, **kw)
    b = holdout_r1(start, p.species, s.tilts, s.angles, PS, seed=5, **kw)
    np.testing.assert_array_equal(a.r1_fit, b.r1_fit)
    np.testing.assert_array_equal(a.r1_holdout, b.r1_holdout)
    assert all(np.array_equal(x, y) for x, y in zip(a.folds, b.folds))
    assert all(np.array_equal(x, y) for x, y in zip(a.folds, image_folds(s.angles, 4, seed=5)))
    d = a.as_dict()
    assert d["folds"] == 4 and d["r1_holdout"] == pytest.approx(np.mean(d["r1_holdout_folds"]))


def test_holdout_bad_input():
    p, s, start = _series(5.0, 8, None, (32, 32))
    with pytest.raises(ValueError, match="folds"):
        holdout_r1(start, p.species, s.tilts, s.angles, PS, folds=9)
    with pytest.raises(ValueError, match="species"):
        holdout_r1(start, p.species[:-1], s.tilts, s.angles, PS, folds=2)
    with pytest.raises(TypeError, match="progress"):
        holdout_r1(start, p.species, s.tilts, s.angles, PS, folds=2, progress=True)


def test_docstring_example():
    r = doctest.testmod(holdout, verbose=False)
    assert r.attempted > 0 and r.failed == 0


def test_chain_reports_the_holdout_next_to_the_fit():
    # atoms_from_volume with refine_options={"holdout_folds": k} (0: off): atoms.info carries r1_holdout
    # and the per-fold numbers, and the time of the validation; the refinement itself is unchanged
    from aetcore.steps.chain import atoms_from_volume
    p, s, _ = _series(5.0, 9, 2e4, (32, 32))
    vol = simulate.ground_truth_volume(p.positions, p.species, (32, 32, 32), PS, threads=1)
    kw = dict(decide=False, threads=1, seed=0)
    plain = atoms_from_volume(vol, s.tilts, s.angles, PS, ("Fe", "Pt"),
                              refine_options={"iterations": 15, "holdout_folds": 0}, **kw)
    atoms = atoms_from_volume(vol, s.tilts, s.angles, PS, ("Fe", "Pt"),
                              refine_options={"iterations": 15, "holdout_folds": 3}, **kw)
    np.testing.assert_array_equal(atoms.positions, plain.positions)
    assert "r1_holdout" not in plain.info and "holdout" not in plain.info["timings"]
    h = atoms.info["holdout"]
    assert h["folds"] == 3 and atoms.info["r1_holdout"] == pytest.approx(np.mean(h["r1_holdout_folds"]))
    assert 0.9 < atoms.info["r1_holdout"] / h["r1_fit"] < 1.2   # well posed: 43 atoms, 6 training images of 32² px
    assert atoms.info["timings"]["holdout"] > 0
    with pytest.raises(ValueError, match="holdout_folds"):
        atoms_from_volume(vol, s.tilts, s.angles, PS, ("Fe", "Pt"), refine_options={"holdout_folds": 1}, **kw)
    # more folds than images: one fold per image (the default must not stop a short series)
    few = atoms_from_volume(vol, s.tilts[:2], s.angles[:2], PS, ("Fe", "Pt"),
                            refine_options={"iterations": 5, "holdout_folds": 3}, **kw)
    assert few.info["holdout"]["folds"] == 2


def test_atoms_from_tilts_refuses_bad_folds_before_reconstructing():
    import time
    from aetcore.steps.chain import atoms_from_tilts
    p, s, _ = _series(5.0, 9, None, (32, 32))
    t0 = time.perf_counter()
    with pytest.raises(ValueError, match="holdout_folds"):
        atoms_from_tilts(s.tilts, s.angles, PS, ("Fe", "Pt"), refine_options={"holdout_folds": -2}, progress=False)
    assert time.perf_counter() - t0 < 1.0
