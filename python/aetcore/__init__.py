"""aetcore: atomic electron tomography, from an ADF-STEM tilt series to the 3D position and species
of every atom.

The folders follow the pipeline (``docs/architecture.md``):

- :mod:`aetcore.steps`: one module per step, in order: :mod:`~aetcore.steps.preprocess` (frames,
  distortion, denoising, background), :mod:`~aetcore.steps.align` (centre of mass, common line, tilt
  axis, projection matching), :mod:`~aetcore.steps.reconstruct` (GENFIRE, RESIRE, SIRT, WBP),
  :mod:`~aetcore.steps.trace` (atoms from a volume), :mod:`~aetcore.steps.classify` (species),
  :mod:`~aetcore.steps.refine` (atomic model against the projections), and
  :mod:`~aetcore.steps.chain` (``aetcore.atoms_from_tilts``: the steps in order).
- :mod:`aetcore.model`: :mod:`~aetcore.model.geometry` (conventions), :mod:`~aetcore.model.projection`
  (forward and back projection of volumes and atoms), :mod:`~aetcore.model.simulate` (nanoparticles
  and tilt series).
- :mod:`aetcore.quality`: :mod:`~aetcore.quality.metrics` (errors, FSC), :mod:`~aetcore.quality.scoring`
  (atoms against the truth).
- :mod:`aetcore.io` (files and the results folder), :mod:`aetcore.report` (report.html),
  :mod:`aetcore.analysis` (strain, chemical order, grains, bond order; :mod:`aetcore.analysis.track`: 4D).
- :mod:`aetcore.app`: :mod:`~aetcore.app.folder` (``aetcore.run``: the ``aet run`` chain and its results
  folder), :mod:`~aetcore.app.batch` (many datasets on Dask), :mod:`~aetcore.app.config`,
  :mod:`~aetcore.app.demo`, :mod:`~aetcore.app.cli`.

The step and model modules are also attributes of the package (``aetcore.reconstruct``,
``aetcore.project``, ...). ``aetcore.batch`` is the module :mod:`aetcore.app.batch`; calling it,
``aetcore.batch(manifest, ...)``, runs :func:`aetcore.app.batch.batch` (also ``aetcore.run_batch``).
The module paths of aetcore 0.x before the folders (``aetcore.pipeline``, ``aetcore.workflow``,
``aetcore.cli``, ...) still import, as aliases of the modules that replace them.
"""
import importlib as _importlib
import importlib.abc as _abc
import importlib.util as _ilu
import sys as _sys

from ._version import __version__
from .model import geometry, projection as project, simulate
from .model.projection import backproject_volume, project_atoms, project_volume, render_atoms
from .quality import metrics, scoring
from .quality.scoring import match_atoms
from .steps import align, classify, preprocess, reconstruct, refine, trace
from .steps.chain import atoms_from_tilts
from .steps.classify import classify as classify_species
from .steps.reconstruct import Reconstruction, genfire, resire, sirt, wbp
from .steps.refine import refine as refine_atoms
from .steps.trace import trace_atoms
from .app import batch
from .app.batch import batch as run_batch
from .app.folder import run


#: Module paths before the folders -> the module that replaces each (imported on first use).
_MOVED = {
    "align": "steps.align", "batch": "app.batch", "classify": "steps.classify", "cli": "app.cli",
    "config": "app.config", "demo": "app.demo", "geometry": "model.geometry", "metrics": "quality.metrics",
    "pipeline": "steps.chain", "preprocess": "steps.preprocess", "project": "model.projection",
    "reconstruct": "steps.reconstruct", "refine": "steps.refine", "scoring": "quality.scoring",
    "simulate": "model.simulate", "trace": "steps.trace", "track": "analysis.track",
    "track_plots": "analysis.track.plots", "workflow": "app.folder", "_validate": "_util.validate",
    "_memory": "_util.memory",
}


class _MovedFinder(_abc.MetaPathFinder, _abc.Loader):
    """``import aetcore.<old name>`` gives the module that replaces it (the same module object)."""

    def find_spec(self, fullname, path=None, target=None):
        pkg, _, name = fullname.rpartition(".")
        if pkg == __name__ and name in _MOVED:
            return _ilu.spec_from_loader(fullname, self)
        return None

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        name = module.__name__.rpartition(".")[2]
        _sys.modules[module.__name__] = _importlib.import_module(f"{__name__}.{_MOVED[name]}")


if not any(isinstance(f, _MovedFinder) for f in _sys.meta_path):
    _sys.meta_path.append(_MovedFinder())

__all__ = ["run", "batch", "run_batch", "align", "preprocess", "atoms_from_tilts", "classify", "refine",
           "classify_species", "refine_atoms", "geometry", "metrics", "project", "reconstruct", "scoring",
           "simulate", "trace", "match_atoms", "trace_atoms", "project_volume", "backproject_volume",
           "project_atoms", "render_atoms", "Reconstruction", "genfire", "resire", "sirt", "wbp", "__version__"]
