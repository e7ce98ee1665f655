"""Large allocations are estimated first and refused with a clear message, instead of the process
being killed by the system (or, with memory overcommit, crashing later when the pages are touched).

The rule lives once, in the C++ core (``cpp/include/aetcore/memory.hpp``), which checks its own
allocations before it makes them; this module gives the same rule to the package's Python
allocations (:func:`check_memory` before every large numpy array). What is available is the least of:
``MemAvailable``, the cgroup limit minus its usage (containers, batch schedulers), the address-space
limit (``ulimit -v``) minus the process's size, and ``AETCORE_MEMORY_LIMIT`` (bytes, or with a
K/M/G/T suffix: a share of a node set by the user).
"""
from __future__ import annotations

from .. import _core

__all__ = ["available_bytes", "check_memory", "format_bytes", "memory_limit_from_env"]


def memory_limit_from_env() -> int | None:
    """``AETCORE_MEMORY_LIMIT`` in bytes (``"512M"``, ``"8G"``, ``"1000000"``; binary units), or None
    when unset. Raises ValueError naming the variable when it is malformed."""
    return _core.memory_limit_from_env()


def available_bytes() -> int:
    """Memory the process can still take now, in bytes (see the module documentation)."""
    return _core.available_memory_bytes()


def format_bytes(n: float) -> str:
    """``n`` bytes in binary units: ``"512 B"``, ``"1.5 KiB"``, ``"3.0 GiB"``."""
    return _core.format_bytes(float(n))


def check_memory(nbytes, what: str) -> None:
    """Raise MemoryError, saying what needs how much and what is available, if `nbytes` (a number;
    estimates of absurd sizes may be floats beyond any integer type) exceed the memory available now.
    Raises ValueError when the estimate is NaN or negative (the sizes given were not valid)."""
    _core.check_memory(float(nbytes), str(what))
