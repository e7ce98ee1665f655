"""aetcore: atomic electron tomography, from an ADF-STEM tilt series to the 3D position and species
of every atom.

Modules, one per step: :mod:`aetcore.preprocess` (frames, distortion, denoising, background),
:mod:`aetcore.align` (centre of mass, common line, tilt axis, projection matching),
:mod:`aetcore.geometry` (conventions), :mod:`aetcore.project` (forward and back projection of
volumes and atoms), :mod:`aetcore.reconstruct` (GENFIRE, RESIRE, SIRT, WBP),
:mod:`aetcore.trace` (atoms from a volume), :mod:`aetcore.classify` (species),
:mod:`aetcore.refine` (atomic model against the projections), :mod:`aetcore.scoring` (atoms against the truth),
:mod:`aetcore.simulate` (nanoparticles and tilt series), :mod:`aetcore.metrics` (errors, FSC),
:mod:`aetcore.analysis` (strain, chemical order, grains, bond order), :mod:`aetcore.track` (4D),
:mod:`aetcore.workflow` (``aetcore.run``: the ``aet run`` chain and its results folder),
:mod:`aetcore.batch` (``aetcore.batch``: many datasets on Dask), :mod:`aetcore.report` (report.html).
"""
from importlib.metadata import PackageNotFoundError, version as _version

from . import align, classify, geometry, metrics, preprocess, project, reconstruct, refine, scoring, simulate, trace
from .project import backproject_volume, project_atoms, project_volume, render_atoms
from .reconstruct import Reconstruction, genfire, resire, sirt, wbp
from .classify import classify as classify_species
from .pipeline import atoms_from_tilts
from .workflow import run
from .batch import batch
from .refine import refine as refine_atoms
from .scoring import match_atoms
from .trace import trace_atoms

try:
    __version__ = _version("aetcore")
except PackageNotFoundError:  # pragma: no cover
    __version__ = "0+unknown"

__all__ = ["run", "batch", "align", "preprocess", "atoms_from_tilts", "classify", "refine", "classify_species", "refine_atoms", "geometry", "metrics", "project", "reconstruct", "scoring", "simulate", "trace", "match_atoms",
           "trace_atoms", "project_volume",
           "backproject_volume", "project_atoms", "render_atoms", "Reconstruction", "genfire",
           "resire", "sirt", "wbp", "__version__"]
