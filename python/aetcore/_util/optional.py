"""Optional dependencies: the packages behind an extra of ``pip install "aetcore[...]"``.

``pip install aetcore`` installs what ``aet run`` needs. The modules that need more import it
through :func:`require` at the point of use, so a missing package becomes one
:class:`MissingExtraError` that names the extra to install.
"""
from __future__ import annotations

import importlib

#: extra -> (what it is for, the packages it installs)
EXTRAS = {
    "batch": ("batch runs (aet batch, aetcore.batch)", "dask[distributed]"),
    "formats": ("the .emd, .dm3/.dm4 and .ser readers", "ncempy"),
}


class MissingExtraError(ImportError):
    """An optional dependency is not installed; the message says which extra installs it."""


def install_hint(extra: str) -> str:
    """The command that installs `extra`, e.g. ``pip install "aetcore[batch]"``."""
    if extra not in EXTRAS:
        raise ValueError(f"extra: expected one of {sorted(EXTRAS)}, got {extra!r}")
    return f'pip install "aetcore[{extra}]"'


def require(module: str, extra: str, feature: str):
    """Import and return `module`, or raise :class:`MissingExtraError` naming the extra.

    Parameters
    ----------
    module : str
        Dotted module name, e.g. ``"distributed"`` or ``"ncempy.io.dm"``.
    extra : str
        The aetcore extra that installs it (a key of :data:`EXTRAS`).
    feature : str
        What needs it, for the message (e.g. ``"aet batch"``, ``"reading .dm4 files"``).

    Returns
    -------
    module
        The imported module.
    """
    hint = install_hint(extra)
    try:
        return importlib.import_module(module)
    except ImportError as e:
        missing = e.name or module
        if not (module == missing or module.startswith(missing + ".")):
            raise  # the package is there but broken: its own error is the useful one
        raise MissingExtraError(
            f"{feature} needs {EXTRAS[extra][1]} ({missing} is not installed); "
            f"install the optional dependencies for {EXTRAS[extra][0]} with: {hint}") from e
