"""A thread pool over independent items: NumPy, SciPy and FFT calls release the GIL, so per-image
work (shifts, rotations, filters) runs in parallel without copying arrays between processes."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterable

__all__ = ["thread_map"]


def thread_map(fn: Callable, items: Iterable, threads: int) -> list:
    """``[fn(i) for i in items]``, on up to `threads` threads (in order; serial for one thread or item).

    Parameters
    ----------
    fn : callable
        Called once per item; must be safe to call from several threads at once.
    items : iterable
        The inputs, in the order of the results.
    threads : int
        Most threads to use (already resolved, >= 1).
    """
    items = list(items)
    if threads <= 1 or len(items) <= 1:
        return [fn(i) for i in items]
    with ThreadPoolExecutor(max_workers=min(threads, len(items))) as ex:
        return list(ex.map(fn, items))
