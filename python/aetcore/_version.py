"""The one place the version of aetcore is written: ``aetcore.__version__``, ``aet --version`` and
the wheel's metadata (pyproject.toml reads it with scikit-build-core's regex provider)."""
__version__ = "0.1.0"
