"""Helpers shared by the benchmarks (run as `python bench/NAME.py`, so this directory is on sys.path)."""
from __future__ import annotations

import json
import os
import platform
import resource
import subprocess
import sys


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


def run_worker(script: str, kind: str, args: list) -> dict:
    """Run `script` again in a child process as worker `kind` (its own peak memory, nothing shared
    with the parent) and return the dict it printed on its ``WORKER_RESULT`` line."""
    cmd = [sys.executable, os.path.abspath(script), "--_worker", kind, *args]
    p = subprocess.run(cmd, capture_output=True, text=True)
    lines = [l for l in p.stdout.splitlines() if l.startswith("WORKER_RESULT ")]
    if p.returncode != 0 or not lines:
        raise RuntimeError(f"{kind} worker failed (exit {p.returncode}):\n{p.stdout[-2000:]}\n{p.stderr[-4000:]}")
    return json.loads(lines[-1][len("WORKER_RESULT "):])


def write_json(path: str, results: dict) -> None:
    """The results as JSON, written whole or not at all."""
    tmp = path + ".part"
    with open(tmp, "w") as f:
        json.dump(results, f, indent=2)
    os.replace(tmp, path)
