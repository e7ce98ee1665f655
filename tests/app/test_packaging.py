"""Packaging (issue 15): one version everywhere, and the optional dependencies behind extras.

``pip install aetcore`` pulls only what ``aet run`` needs; ``dask[distributed]`` is the extra
``[batch]`` and ``ncempy`` the extra ``[formats]``. These tests check that the modules import them
lazily (importing aetcore and running its CLI never loads them), that a command needing a missing
one fails with the ``pip install "aetcore[...]"`` that provides it, and that the version in
``aetcore/_version.py`` is the one of ``aetcore.__version__``, ``aet --version`` and the installed
metadata. The built wheel itself is checked by ``make test-wheel`` (tools/wheel_smoke.py).
"""
import re
import subprocess
import sys
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

import pytest

import aetcore
from aetcore._util.optional import MissingExtraError, install_hint, require
from aetcore.app.cli import main

OPTIONAL = ("dask", "distributed", "ncempy")


@pytest.fixture
def without_extras(monkeypatch):
    """dask, distributed and ncempy (and their submodules) look uninstalled: None in sys.modules
    makes every import of them raise ModuleNotFoundError, as on a plain ``pip install aetcore``."""
    for name in list(sys.modules):
        if name.split(".")[0] in OPTIONAL:
            monkeypatch.delitem(sys.modules, name)
    for name in (*OPTIONAL, "ncempy.io", "ncempy.io.dm", "ncempy.io.ser", "ncempy.io.emd"):
        monkeypatch.setitem(sys.modules, name, None)


def test_one_version_source():
    text = (Path(aetcore.__file__).parent / "_version.py").read_text()
    written = re.search(r'^__version__ = "([^"]+)"$', text, re.M).group(1)
    assert aetcore.__version__ == written
    r = subprocess.run([sys.executable, "-m", "aetcore", "--version"], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.strip() == f"aet {written}"
    try:
        installed = distribution("aetcore").version
    except PackageNotFoundError:  # pragma: no cover - a bare source tree on PYTHONPATH
        pytest.skip("aetcore is not installed, so there is no metadata to compare")
    assert installed == written, ("the installed metadata differs from python/aetcore/_version.py: "
                                  "reinstall (make install)")


def test_runtime_requirements_leave_out_the_extras():
    """pyproject.toml, the source of the wheel's Requires-Dist (the smoke test of make test-wheel then
    runs aet run in a venv that has only these)."""
    pyproject = Path(__file__).resolve().parents[2] / "pyproject.toml"
    if not pyproject.exists():  # pragma: no cover - tests run outside the checkout
        pytest.skip("no pyproject.toml next to the tests")
    try:
        import tomllib
    except ModuleNotFoundError:  # Python < 3.11
        tomllib = pytest.importorskip("tomli")
    project = tomllib.loads(pyproject.read_text())["project"]

    def names(reqs):
        return {re.split(r"[\[<>=!~; ]", r, maxsplit=1)[0].lower() for r in reqs}

    runtime = names(project["dependencies"])
    assert not runtime & {"dask", "distributed", "ncempy", "hypothesis", "pytest"}
    assert {"numpy", "scipy", "h5py", "mrcfile", "matplotlib", "ase", "scikit-learn"} <= runtime
    extras = project["optional-dependencies"]
    assert names(extras["batch"]) == {"dask"} and "distributed" in extras["batch"][0]
    assert names(extras["formats"]) == {"ncempy"}
    assert "aetcore[batch,formats]" in extras["test"]  # make test covers batch runs and every reader


def test_importing_aetcore_and_its_cli_loads_no_optional_dependency():
    code = ("import sys, aetcore, aetcore.io, aetcore.app.batch, aetcore.app.cli, aetcore.app.folder; "
            "aetcore.app.cli.build_parser(); "
            f"print(sorted(m for m in sys.modules if m.split('.')[0] in {OPTIONAL!r}))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert r.stdout.strip() == "[]"


def test_require_names_the_extra(without_extras):
    with pytest.raises(MissingExtraError, match=re.escape('pip install "aetcore[batch]"')) as e:
        require("distributed", "batch", "aet batch")
    assert isinstance(e.value, ImportError) and "aet batch needs dask[distributed]" in str(e.value)
    with pytest.raises(MissingExtraError, match=re.escape('pip install "aetcore[formats]"')):
        require("ncempy.io.dm", "formats", "reading .dm4 files")
    assert require("json", "batch", "x").dumps([1]) == "[1]"  # present: the module itself
    with pytest.raises(ValueError, match="extra"):
        install_hint("gpu")


def _manifest(tmp_path):
    import numpy as np
    np.save(tmp_path / "tilts.npy", np.zeros((3, 16, 16), np.float32))
    (tmp_path / "angles.txt").write_text("-30\n0\n30\n")
    m = tmp_path / "m.toml"
    m.write_text('[defaults]\npixel_size = 0.4\nspecies = "Fe,Pt"\n'
                 '[[dataset]]\nname = "a"\ntilts = "tilts.npy"\nangles = "angles.txt"\n')
    return m


def test_batch_without_dask_says_which_extra(tmp_path, capsys, without_extras):
    m = _manifest(tmp_path)
    assert main(["batch", str(m), "--check"]) == 0  # checking a manifest needs no dask
    capsys.readouterr()
    assert main(["batch", str(m)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("aet batch: error: aet batch needs dask[distributed]")
    assert 'pip install "aetcore[batch]"' in err and "Traceback" not in err
    assert not (tmp_path / "m_results").exists() or not any((tmp_path / "m_results").iterdir())
    with pytest.raises(MissingExtraError, match=re.escape('pip install "aetcore[batch]"')):
        aetcore.run_batch(m, progress=False)
