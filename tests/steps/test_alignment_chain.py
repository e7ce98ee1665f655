"""The whole chain on misaligned, drifting frames: preprocess (frame registration + average) ->
align (tilt-axis rotation, centre of mass, common line; projection matching is off by default) ->
atoms_from_tilts.

Issue target: atom recall after the full chain within 0.5 % of the same data without misalignment.

One FePt particle (radius 8.5 Å, 177 atoms, 64 x 64 px at 0.4 Å, 41 angles over +-70 deg) is
simulated twice with the same total dose per angle (5e4 e/Å^2):

* misaligned: 5 frames per angle, random shifts up to +-3 px per component, drift 0.3 px per
  frame in a random direction per angle, and a 1.5 deg in-plane rotation of the tilt axis
  (scipy.ndimage.rotate about n // 2, applied to every noiseless frame before the Poisson noise,
  so the noise is not interpolated); align must find rotation ~ -1.5 deg;
* aligned: one perfectly aligned frame per angle.

Both go through atoms_from_tilts and are scored with match_atoms (which registers a global
translation, so the object-translation gauge of align does not matter).
"""
import numpy as np
from conftest import gauge_free_rms
import pytest
from scipy import ndimage

from aetcore.steps import align as A
from aetcore.model import simulate
from aetcore.steps.chain import atoms_from_tilts
from aetcore.steps.preprocess import preprocess
from aetcore.quality.scoring import match_atoms

PS = 0.4
SHAPE = (64, 64)
ANGLES = simulate.angles_range(-70, 70, 41)
N_FRAMES = 5
DOSE = 5e4
ROTATION = 1.5   # deg, applied to the frames; the alignment that undoes it is -1.5


@pytest.fixture(scope="module")
def case():
    p = simulate.fept_particle(8.5, seed=1)
    mis = simulate.tilt_series(p.positions, p.species, ANGLES, SHAPE, PS, shifts="random", max_shift=3,
                               n_frames=N_FRAMES, drift=0.3, seed=2)
    frames = np.stack([[ndimage.rotate(f, ROTATION, reshape=False, order=3) for f in a] for a in mis.tilts])
    # Poisson noise as tilt_series(dose=DOSE) applies it: the dose of one angle split over the frames
    scale = DOSE * PS * PS / (N_FRAMES * mis.clean.mean())
    rng = np.random.default_rng(3)
    frames = (rng.poisson(np.clip(frames, 0, None) * scale) / scale).astype(np.float32)
    ok = simulate.tilt_series(p.positions, p.species, ANGLES, SHAPE, PS, dose=DOSE, seed=4)
    return p, mis, frames, ok


_gauge_free_rms = gauge_free_rms


def _score(p, tilts):
    atoms = atoms_from_tilts(tilts, ANGLES, PS, ("Fe", "Pt"), progress=False, seed=0, threads=2)
    return match_atoms(p.positions, p.species, atoms.positions, atoms.get_chemical_symbols())


def test_chain_on_misaligned_frames_matches_aligned_recall(case):
    p, mis, frames, ok = case
    assert frames.shape == (len(ANGLES), N_FRAMES) + SHAPE
    assert np.abs(mis.shifts).max() > 2.0                      # the misalignment is real
    pre = preprocess(frames, threads=2)
    assert pre.tilts.shape == (len(ANGLES),) + SHAPE
    al = A.align(pre.tilts, ANGLES, pixel_size=PS, threads=2)
    assert abs(al.rotation + ROTATION) < 0.2
    # the frames were rotated about the array centre (n - 1) / 2 and align rotates back about n // 2:
    # the shifts in the rotated frame are the applied ones up to a constant 0.02 px translation
    shift_rms = _gauge_free_rms(al.shifts, -mis.shifts, ANGLES)
    assert shift_rms < 0.1
    chain = _score(p, al.tilts)
    ref = _score(p, ok.tilts)
    print(f"rotation {al.rotation:.3f} deg, shift RMS {shift_rms:.4f} px; chain recall {chain.recall:.4f} species {chain.species_accuracy:.4f} "
          f"rmsd {chain.rmsd_pm:.1f} pm; aligned recall {ref.recall:.4f} species {ref.species_accuracy:.4f} "
          f"rmsd {ref.rmsd_pm:.1f} pm")
    assert chain.recall >= ref.recall - 0.005
    assert chain.species_accuracy >= ref.species_accuracy - 0.005
    assert ref.recall >= 0.99                                  # the comparison is not between two failures
