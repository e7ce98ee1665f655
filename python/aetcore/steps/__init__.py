"""The steps of the chain from a tilt series to atoms, one module each, in the order they run:
:mod:`~aetcore.steps.preprocess` (frames, distortion, denoising, background),
:mod:`~aetcore.steps.align` (centre of mass, common line, tilt axis, projection matching),
:mod:`~aetcore.steps.reconstruct` (GENFIRE, RESIRE, SIRT, WBP), :mod:`~aetcore.steps.trace` (atoms
from a volume), :mod:`~aetcore.steps.classify` (species) and :mod:`~aetcore.steps.refine` (atomic
model against the projections). :mod:`~aetcore.steps.chain` runs them in that order
(:func:`~aetcore.steps.chain.atoms_from_tilts`).
"""
