"""Threads: ``threads=`` is honoured (results equal bit for bit whatever the thread count), the GIL is
released while the core runs, and the same calls from several Python threads at once give the same
results, bit for bit, as one after another (the core releases the GIL, so these really run at the
same time; FFTW's planner is shared and must be serialised by the core)."""
import threading
import time

import numpy as np
import pytest

import aetcore
from aetcore.model.projection import backproject_volume, project_volume
from aetcore.model.simulate import angles_range, fept_particle, tilt_series

N_THREADS = 4
ROUNDS = 3  # races show up now and then, not every time: several rounds


@pytest.fixture(scope="module")
def case():
    p = fept_particle(5.0, orientation="random", seed=3)
    angles = angles_range(-60, 60, 7)
    s = tilt_series(p.positions, p.species, angles, (24, 24), 0.5, seed=3, threads=1)
    vol = aetcore.project.render_atoms(p.positions, p.species, (24, 24, 24), 0.5, threads=1)
    return p, angles, s.tilts, vol


def run_concurrently(jobs):
    """Run every job in its own Python thread, all released at once; return the results in order."""
    results = [None] * len(jobs)
    errors = []
    barrier = threading.Barrier(len(jobs))

    def work(i):
        try:
            barrier.wait()
            results[i] = jobs[i]()
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return results


def assert_same(a, b):
    if isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and a.shape == b.shape
        assert a.tobytes() == b.tobytes()
    else:
        assert a == b


def _jobs(case):
    p, angles, tilts, vol = case
    rng = np.random.default_rng(0)
    eulers = [rng.uniform(-80, 80, (4, 3)) for _ in range(N_THREADS)]
    start = p.positions + rng.normal(0, 0.1, p.positions.shape)
    return {
        # every thread its own inputs (different angles), results compared with the serial ones
        "project_volume": [lambda e=e: aetcore.project_volume(vol, e, threads=1) for e in eulers],
        "backproject_volume": [lambda e=e: aetcore.backproject_volume(tilts[:4], e, vol.shape, threads=1)
                               for e in eulers],
        "project_atoms": [lambda e=e: aetcore.project_atoms(p.positions, p.species, e, (24, 24), 0.5, threads=1)
                          for e in eulers],
        # the same call N times at once (GENFIRE plans FFTW in every call)
        "genfire": [lambda: aetcore.genfire(tilts, angles, pixel_size=0.5, oversampling=2, iterations=6, seed=1,
                                            threads=1, progress=False).volume] * N_THREADS,
        "trace_atoms": [lambda f=f: aetcore.trace_atoms(vol, 0.5, fit=f, threads=1).positions
                        for f in ("polynomial", "gaussian", "none", "polynomial")],
        "refine": [lambda: aetcore.refine_atoms(start, p.species, tilts, angles, 0.5, iterations=4,
                                                threads=1).positions] * N_THREADS,
    }


@pytest.mark.parametrize("name", ["project_volume", "backproject_volume", "project_atoms", "genfire",
                                  "trace_atoms", "refine"])
def test_concurrent_calls_equal_serial_calls(case, name):
    jobs = _jobs(case)[name]
    serial = [job() for job in jobs]
    for _ in range(ROUNDS):
        concurrent = run_concurrently(jobs)
        for s, c in zip(serial, concurrent):
            assert_same(s, c)


def test_mixed_calls_at_once_equal_serial(case):
    """Different entry points at the same time (GENFIRE's FFTW planning next to the projector,
    tracing and refinement)."""
    jobs = [js[0] for js in _jobs(case).values()]
    serial = [job() for job in jobs]
    for _ in range(ROUNDS):
        concurrent = run_concurrently(jobs)
        for s, c in zip(serial, concurrent):
            assert_same(s, c)


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


def test_threads_none_means_every_core_the_process_may_use(rng):
    # CONVENTIONS: threads=None is all the cores the process may use (its CPU affinity, not the machine)
    import os
    from aetcore._util.validate import resolve_threads
    assert resolve_threads(None) == len(os.sched_getaffinity(0))
    vol = rng.random((16, 16, 16), dtype=np.float32)
    a = rng.uniform(-60, 60, (3, 3))
    np.testing.assert_array_equal(project_volume(vol, a, threads=None), project_volume(vol, a, threads=1))
