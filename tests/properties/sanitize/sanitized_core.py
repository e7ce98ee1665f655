"""pytest plugin (``-p sanitized_core``): make ``aetcore._core`` the ASan/UBSan build.

``make test-sanitize`` builds the core with ``-DAETCORE_SANITIZE=ON`` into ``build-sanitize/`` and runs
pytest with ``LD_PRELOAD`` of libasan/libubsan, ``PYTHONPATH=tests/properties/sanitize`` and
``AETCORE_SANITIZED_CORE`` naming the instrumented module. This plugin loads that module under the name
``aetcore._core`` before anything imports aetcore, so the installed package's Python code runs on the
instrumented core (the editable install in .venv is left alone).
"""
import importlib.util
import os
import sys

_path = os.environ.get("AETCORE_SANITIZED_CORE")
if not _path or not os.path.isfile(_path):
    raise RuntimeError(f"AETCORE_SANITIZED_CORE must name the sanitizer build of _core, got {_path!r}")
if "aetcore._core" in sys.modules:
    raise RuntimeError("aetcore._core was imported before the sanitizer plugin; load it with -p sanitized_core")
_spec = importlib.util.spec_from_file_location("aetcore._core", _path)
_mod = importlib.util.module_from_spec(_spec)
sys.modules["aetcore._core"] = _mod
_spec.loader.exec_module(_mod)
