"""Large allocations are estimated first and refused with a clear message, instead of the process
being killed by the system (or, with memory overcommit, crashing later when the pages are touched).

:func:`check_memory` is called before every large allocation, from Python and from the C++ bindings
(``aetcore._core`` calls it with its own estimates before it allocates an output or a work array).
What is available is the least of: ``MemAvailable``, the cgroup limit minus its usage (containers,
batch schedulers), the address-space limit (``ulimit -v``) minus the process's size, and
``AETCORE_MEMORY_LIMIT`` (bytes, or with a K/M/G/T suffix: a share of a node set by the user).
"""
from __future__ import annotations

import os
import re

__all__ = ["available_bytes", "check_memory", "format_bytes", "memory_limit_from_env"]

_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def memory_limit_from_env() -> int | None:
    """``AETCORE_MEMORY_LIMIT`` in bytes (``"512M"``, ``"8G"``, ``"1000000"``), or None when unset."""
    text = os.environ.get("AETCORE_MEMORY_LIMIT", "").strip()
    if not text:
        return None
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([KMGT]?)(?:i?B)?", text, flags=re.IGNORECASE)
    if not m:
        raise ValueError(f"AETCORE_MEMORY_LIMIT: expected a number of bytes with an optional K/M/G/T suffix, "
                         f"got {text!r}")
    return int(float(m.group(1)) * _UNITS[m.group(2).upper()])


def _meminfo_available() -> int | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - not POSIX
        return None


def _cgroup_available() -> int | None:
    for limit_path, used_path in (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
                                  ("/sys/fs/cgroup/memory/memory.limit_in_bytes",
                                   "/sys/fs/cgroup/memory/memory.usage_in_bytes")):
        try:
            with open(limit_path) as f:
                text = f.read().strip()
            if not text.isdigit():  # "max": no limit
                continue
            with open(used_path) as f:
                used = int(f.read().strip())
            return int(text) - used
        except (OSError, ValueError):
            continue
    return None


def _address_space_available() -> int | None:
    try:
        import resource
        soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    except (ImportError, OSError, ValueError):  # pragma: no cover - not POSIX
        return None
    if soft == resource.RLIM_INFINITY or soft < 0:
        return None
    try:
        with open("/proc/self/statm") as f:
            size = int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        size = 0
    return soft - size


def available_bytes() -> int:
    """Memory the process can still take, in bytes (see the module documentation)."""
    candidates = [v for v in (_meminfo_available(), _cgroup_available(), _address_space_available(),
                              memory_limit_from_env()) if v is not None]
    if not candidates:  # pragma: no cover - nothing to go by
        return 1 << 62
    return max(0, min(candidates))


def format_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(n) < 1024 or unit == "PiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024.0
    return f"{n:.1f} PiB"  # pragma: no cover


def check_memory(nbytes, what: str) -> None:
    """Raise MemoryError, saying what needs how much and what is available, if `nbytes` (a number;
    estimates of absurd sizes may be floats beyond any integer type) exceed the memory available now."""
    need = float(nbytes)
    if need != need or need < 0:
        raise ValueError(f"{what}: the memory estimate is {nbytes!r}; the sizes given are not valid")
    avail = available_bytes()
    if need > avail:
        raise MemoryError(f"{what} needs about {format_bytes(need)} but only {format_bytes(avail)} is "
                          "available; reduce the size, the oversampling or run on a larger node")
