"""Helpers shared by the benchmarks (run as `python bench/NAME.py`, so this directory is on sys.path)."""
from __future__ import annotations

import platform
import resource


def maxrss_mb() -> float:
    """Peak resident memory of this process, MB: VmHWM of /proc/self/status (per address space, so a
    child does not inherit its parent's high-water mark, which ru_maxrss does across vfork/exec on
    Linux); getrusage(RUSAGE_SELF).ru_maxrss where /proc is missing."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0      # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0   # Linux: KiB


def flag(ok) -> str:
    """PASS, FAIL, or n/a for a target that was not measured."""
    return "n/a " if ok is None else ("PASS" if ok else "FAIL")


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"
