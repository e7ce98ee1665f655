"""The evidence step on a series made outside aetcore (../shared/data/fept_dev, the FePt multigrain
particle: 300 counts per Pt atom, 59 images, an Fe atom gives 46 counts per image).

The full `aet run` of the shared series takes minutes per case on 2 cores (bench/dose.py runs them);
here the decision itself is pinned: the raw series is aligned with its recorded shifts and its
detector offset estimated from the data (:func:`aetcore.model.noise.estimate_detector_noise`), the
true atoms are damaged (atoms missing, spurious atoms in the gaps, species swapped, positions
jittered), and :func:`aetcore.steps.evidence.decide_atoms` with defaults must repair them. Without the
decision the damaged model fails every margin below."""

import numpy as np
import pytest
from scipy.spatial import cKDTree

from conftest import SHARED, fept_dev_series

CASE = SHARED / "fept_dev" / "fept_multigrain_seed7001"
# The Fe-rich low-dose wedge (fept_lowdose_wedge_seed7003) is not pinned: there the decision does not
# repair a 2 %-damaged truth (it drops about 1000 of 2173 atoms in its first round; issue 12 open).


def _score(pos, sp, found, found_sp):
    from aetcore.quality.scoring import match_atoms
    m = match_atoms(pos, list(sp), found, list(found_sp), max_distance=1.0, register=False)
    return m.recall, m.precision, m.species_accuracy


@pytest.fixture(scope="module")
def multigrain():
    import ase.io
    tilts, angles, _, meta, noise = fept_dev_series(CASE.name)
    assert noise.offset == pytest.approx(meta["noise"]["background_offset_counts"], abs=0.5)
    assert noise.read_noise == pytest.approx(meta["noise"]["read_noise_sigma_counts"], rel=0.25)
    truth = ase.io.read(CASE / "truth.xyz")
    return tilts, angles, truth.positions, np.array(truth.get_chemical_symbols())


def test_the_decision_repairs_a_damaged_model_of_the_multigrain_particle(multigrain):
    from aetcore.steps.evidence import decide_atoms
    tilts, angles, pos, sp = multigrain
    rng = np.random.default_rng(0)
    n = len(pos)
    order = rng.permutation(n)
    n_bad = n // 50                                                        # 2 % of each damage
    missing, swapped = order[:n_bad], order[n_bad:2 * n_bad]
    keep = np.ones(n, bool)
    keep[missing] = False
    damaged_sp = sp.copy()
    damaged_sp[swapped] = np.where(sp[swapped] == "Fe", "Pt", "Fe")
    cand = rng.uniform(pos.min(0), pos.max(0), (400 * n_bad, 3))
    d, _ = cKDTree(pos).query(cand)
    inside = cKDTree(pos).query_ball_point(cand, 3.0, return_length=True) >= 4   # among atoms, not outside
    spurious = cand[(d > 1.7) & inside][:n_bad]
    assert len(spurious) == n_bad
    damaged = np.concatenate([pos[keep] + rng.normal(0, 0.1, (keep.sum(), 3)), spurious])
    damaged_sp = np.concatenate([damaged_sp[keep], rng.choice(["Fe", "Pt"], len(spurious))])
    before = _score(pos, sp, damaged, damaged_sp)
    assert max(before) < 0.985, before

    out = decide_atoms(damaged, damaged_sp, tilts, angles, 0.4, threads=2)
    recall, precision, accuracy = _score(pos, sp, out.positions, out.symbols)
    assert recall >= 0.995 and precision >= 0.995 and accuracy >= 0.99, (recall, precision, accuracy, out.history)
