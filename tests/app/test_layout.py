"""The package layout (issue 11): `import aetcore.batch` gives the module, the public names stay, and
the module paths before the folders import as the modules that replaced them."""
import importlib

import pytest

import aetcore


def test_batch_is_the_module_and_the_call_still_runs_it(monkeypatch):
    m = importlib.import_module("aetcore.batch")
    assert m is aetcore.app.batch and aetcore.batch is m
    assert aetcore.run_batch is m.batch
    seen = []
    monkeypatch.setattr(m, "batch", lambda *a, **k: seen.append((a, k)) or "done")
    assert aetcore.batch("manifest.toml", retries=0) == "done"  # aetcore.batch(...) of existing scripts
    assert seen == [(("manifest.toml",), {"retries": 0})]


@pytest.mark.parametrize("old, new", [("pipeline", "steps.chain"), ("workflow", "app.folder"), ("cli", "app.cli"),
                                      ("project", "model.projection"), ("track", "analysis.track"),
                                      ("track_plots", "analysis.track.plots"), ("_validate", "_util.validate")])
def test_old_module_paths_are_the_new_modules(old, new):
    assert importlib.import_module(f"aetcore.{old}") is importlib.import_module(f"aetcore.{new}")


def test_public_api_kept():
    for name in ("genfire", "run", "atoms_from_tilts", "__version__", "trace_atoms", "classify_species",
                 "refine_atoms", "match_atoms", "project_volume", "backproject_volume", "Reconstruction"):
        assert hasattr(aetcore, name), name
    assert set(aetcore.__all__) <= set(dir(aetcore))
    assert aetcore.reconstruct.genfire is aetcore.genfire and aetcore.project is aetcore.model.projection
