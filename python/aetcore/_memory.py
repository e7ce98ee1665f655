"""Large allocations are estimated first and refused with a clear message, instead of the process
being killed by the system."""
from __future__ import annotations

import os

__all__ = ["available_bytes", "check_memory", "format_bytes"]


def available_bytes() -> int:
    """Memory the process can still take, in bytes (MemAvailable, bounded by a cgroup limit)."""
    avail = None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    avail = int(line.split()[1]) * 1024
                    break
    except OSError:
        pass
    if avail is None:
        try:
            avail = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):  # pragma: no cover
            return 1 << 62
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            with open(path) as f:
                text = f.read().strip()
            if text.isdigit():
                used_path = path.replace("memory.max", "memory.current").replace("limit_in_bytes", "usage_in_bytes")
                with open(used_path) as f:
                    used = int(f.read().strip())
                avail = min(avail, int(text) - used)
        except OSError:
            continue
    return max(0, avail)


def format_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024.0
    return f"{n:.1f} TiB"  # pragma: no cover


def check_memory(nbytes: int, what: str) -> None:
    """Raise MemoryError if `nbytes` exceeds the memory available now."""
    avail = available_bytes()
    if nbytes > avail:
        raise MemoryError(f"{what} needs about {format_bytes(nbytes)} but only {format_bytes(avail)} is "
                          "available; reduce the size, the oversampling or run on a larger node")
