"""atoms_from_tilts: the whole chain on a simulated FePt particle at a realistic dose, scored
against the truth with aetcore.scoring (issue targets: recall, precision, species accuracy >= 0.99,
RMSD <= 20 pm)."""
import numpy as np
import pytest

from aetcore.steps.chain import atoms_from_tilts
from aetcore.quality.scoring import match_atoms
from aetcore.model.simulate import angles_range, fept_particle, tilt_series


@pytest.fixture(scope="module")
def case():
    p = fept_particle(10.0, orientation="random", antisite=0.03, thermal=0.03, seed=4)
    angles = angles_range(-70, 70, 45, uneven=0.3, seed=4)
    s = tilt_series(p.positions, p.species, angles, (72, 72), 0.4, dose=5e4, seed=4)
    return p, s


def test_atoms_from_tilts_finds_every_atom_with_its_species(case):
    p, s = case
    atoms = atoms_from_tilts(s.tilts, s.angles, 0.4, ("Fe", "Pt"), progress=False, seed=0, threads=2)
    m = match_atoms(p.positions, p.species, atoms.positions, atoms.get_chemical_symbols())
    assert m.recall >= 0.99 and m.precision >= 0.99
    assert m.species_accuracy >= 0.99
    assert m.rmsd_pm <= 20.0
    # Refinement lowered the projection error and gave every atom a finite precision below 10 pm.
    assert atoms.info["r1_after"] < atoms.info["r1_before"]
    prec = atoms.get_array("precision")
    assert np.all(np.isfinite(prec)) and np.all(prec < 0.1)
    # at this dose the loss is quadratic around almost every atom: its precision is flagged reliable
    reliable = atoms.get_array("precision_reliable")
    assert reliable.dtype == bool and reliable.shape == (len(atoms),) and reliable.mean() >= 0.9
    assert set(atoms.get_array("fit_status")) <= {0, 1, 2, 3}
    assert set(atoms.info["timings"]) == {"reconstruct", "trace", "classify", "evidence", "refine", "holdout"}
    # the k-fold validation over images (3 folds by default) is reported next to the R1 of the fit
    assert atoms.info["holdout"]["folds"] == 3
    assert atoms.info["r1_holdout"] == pytest.approx(np.mean(atoms.info["holdout"]["r1_holdout_folds"]))


def test_atoms_from_tilts_refuses_bad_input(case):
    _, s = case
    with pytest.raises(ValueError, match="species"):
        atoms_from_tilts(s.tilts, s.angles, 0.4, ("Fe", "Qq"), progress=False)
    with pytest.raises(ValueError, match="angles"):
        atoms_from_tilts(s.tilts, s.angles[:-1], 0.4, ("Fe", "Pt"), progress=False)
    with pytest.raises(TypeError, match="genfire_options"):
        atoms_from_tilts(s.tilts, s.angles, 0.4, ("Fe", "Pt"), genfire_options=3, progress=False)
