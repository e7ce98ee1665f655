"""threads= is honoured, the GIL is released while the core runs, and concurrent calls agree with
sequential ones."""
import threading
import time

import numpy as np

from aetcore.model.projection import backproject_volume, project_volume


def test_concurrent_calls_match_sequential(rng):
    vol = rng.random((40, 40, 40), dtype=np.float32)
    angs = [rng.uniform(-80, 80, (6, 3)) for _ in range(4)]
    expected = [project_volume(vol, a, threads=1) for a in angs]
    results = [None] * 4

    def work(i):
        results[i] = project_volume(vol, angs[i], threads=1)

    ts = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    for r, e in zip(results, expected):
        np.testing.assert_array_equal(r, e)


def test_gil_is_released_during_core_calls(rng):
    vol = rng.random((96, 96, 96), dtype=np.float32)
    angles = np.linspace(-70, 70, 60)
    ticks = []
    done = threading.Event()

    def heavy():
        project_volume(vol, angles, threads=1)
        done.set()

    th = threading.Thread(target=heavy)
    t0 = time.perf_counter()
    th.start()
    while not done.is_set():
        ticks.append(time.perf_counter())
        time.sleep(0.001)
    th.join()
    elapsed = time.perf_counter() - t0
    # Python kept running while the projector ran: ticks arrived throughout, not only at the end.
    assert elapsed > 0.05
    assert len(ticks) > 10


def test_thread_counts_agree_bitwise_for_projectors(rng):
    vol = rng.random((30, 32, 34), dtype=np.float32)
    a = rng.uniform(-90, 90, (5, 3))
    np.testing.assert_array_equal(project_volume(vol, a, threads=1), project_volume(vol, a, threads=2))
    p = project_volume(vol, a)
    np.testing.assert_array_equal(backproject_volume(p, a, vol.shape, threads=1),
                                  backproject_volume(p, a, vol.shape, threads=2))
