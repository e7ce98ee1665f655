"""The per-atom precision of the refinement (RefinementResult.precision, the sandwich estimate) against
the scatter of refined positions over independent noise realisations, at the doses of
../shared/data/fept_dev: Poisson counts (300 and 50 counts per Pt atom per image) plus 1.5 counts of
Gaussian read noise, the refinement's defaults (positions, heights, B-factors), the same start for
every realisation. bench/precision.py is the long version (20 realisations, per axis, diagnosis)."""
import numpy as np
import pytest

from aetcore.model import projection, simulate
from aetcore.steps.refine import refine

PS = 0.4
N_REAL = 8          # realisations: the pooled ratio is known to about +-5 % (87 atoms x 3 axes)
READ_NOISE = 1.5    # counts per pixel, as in fept_dev


@pytest.fixture(scope="module")
def particle():
    p = simulate.fept_particle(7.0, orientation="random", seed=1)   # 87 atoms: 41 Fe, 46 Pt
    angles = simulate.angles_range(-70, 70, 21)
    shape = (50, 50)
    clean = projection.project_atoms(p.positions, p.species, angles, shape, PS, threads=1)
    pt = float(projection.project_atoms(np.zeros((1, 3)), ["Pt"], [0.0], shape, PS, threads=1).sum())
    start = p.positions + np.random.default_rng(2).normal(0, 0.05, p.positions.shape)
    return p, np.asarray(p.species).astype(str), angles, shape, float(clean.mean(dtype=np.float64)), pt, start


def _scatter(particle, counts_per_pt):
    """Observed std over realisations and RMS predicted precision, per species (Å)."""
    p, sp, angles, shape, mean, pt, start = particle
    dose = counts_per_pt * mean / (pt * PS ** 2)   # tilt_series: dose * PS**2 / mean counts per unit
    pos, prec = [], []
    for k in range(N_REAL):
        s = simulate.tilt_series(p.positions, sp, angles, shape, PS, dose=dose, seed=100 + k, threads=1)
        assert s.count_scale * pt == pytest.approx(counts_per_pt, rel=1e-4)
        t = s.tilts + np.random.default_rng(500 + k).normal(0, READ_NOISE / s.count_scale, s.tilts.shape)
        r = refine(start, sp, t.astype(np.float32), s.angles, PS, threads=1)
        pos.append(r.positions)
        prec.append(r.precision)
    pos, prec = np.array(pos), np.array(prec)
    std = pos.std(axis=0, ddof=1)
    out = {el: (float(np.sqrt((std[sp == el] ** 2).mean())), float(np.sqrt((prec[:, sp == el] ** 2).mean())))
           for el in ("Fe", "Pt")}
    print(counts_per_pt, {el: f"observed {o * 100:.2f} pm, predicted {q * 100:.2f} pm, ratio {o / q:.2f}"
                          for el, (o, q) in out.items()})
    return out


@pytest.fixture(scope="module")
def at_300(particle):
    return _scatter(particle, 300.0)


@pytest.fixture(scope="module")
def at_50(particle):
    return _scatter(particle, 50.0)


@pytest.mark.parametrize("element", ["Pt", "Fe"])
def test_precision_matches_scatter_at_300_counts_per_pt(at_300, element):
    # the multigrain dose: 1.04 (Pt) and 1.06 (Fe; 1.19 with the Gauss-Newton bread) over 20 realisations in
    # bench/precision.py
    observed, predicted = at_300[element]
    assert 0.8 < observed / predicted < 1.3
    assert predicted < (0.04 if element == "Pt" else 0.2)   # Å: the estimate is also the right size


def test_precision_matches_scatter_at_50_counts_per_pt_for_pt(at_50):
    observed, predicted = at_50["Pt"]
    assert 0.8 < observed / predicted < 1.3


def test_precision_matches_scatter_at_50_counts_per_pt_for_fe(at_50):
    # The loss around an Fe atom is far from quadratic at this dose (the observed curvature below half the
    # Gauss-Newton one for a third of the Fe atoms): the sandwich's bread is the observed Hessian block with
    # its curvature floored (aet::refine_atoms). The Gauss-Newton bread gave 1.68 here (bench/precision.py,
    # 20 realisations); the observed Hessian gives 1.1-1.2.
    observed, predicted = at_50["Fe"]
    assert 0.8 < observed / predicted < 1.3
