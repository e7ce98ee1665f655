"""Fuzzing (hypothesis): the file readers on random, truncated and bit-flipped files, and the core's
entry points on random shapes and values (NaN, Inf, huge, negative). Every case must end in a
ValueError/TypeError (MemoryError for sizes beyond the machine) with a message, or in a well-formed
finite result -- never a crash, a hang or another exception type. Under ``make test-sanitize`` the same
cases run on the ASan/UBSan build of the core, so memory errors and undefined behaviour fail too.

The number of cases run is printed at the end of the module ("fuzz cases: ..."). The examples are
derandomised (the same cases every run); ``AETCORE_FUZZ_SCALE=10`` runs ten times as many.
"""
import collections
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import aetcore
from aetcore import _core
from aetcore import io as aio

SCALE = float(os.environ.get("AETCORE_FUZZ_SCALE", "1"))
COUNTS = collections.Counter()
REFUSED = collections.Counter()
ACCEPTED_ERRORS = (ValueError, TypeError, MemoryError)


def fuzz(n):
    return settings(max_examples=max(1, int(n * SCALE)), deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.filter_too_much])


@pytest.fixture(scope="module", autouse=True)
def report_cases(request):
    yield
    total = sum(COUNTS.values())
    line = (f"fuzz cases: {total} run, 0 crashes ({sum(REFUSED.values())} refused with a clear error); "
            + ", ".join(f"{k} {v}" for k, v in sorted(COUNTS.items())))
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if capture is not None:
        with capture.global_and_fixture_disabled():
            print("\n" + line)
    else:  # pragma: no cover
        print(line)


def call(name, fn, *args, **kwargs):
    """Run one case: a result, or None when refused with an accepted error that says something."""
    COUNTS[name] += 1
    try:
        return fn(*args, **kwargs)
    except ACCEPTED_ERRORS as e:
        assert str(e).strip(), f"{name}: {type(e).__name__} without a message"
        REFUSED[name] += 1
        return None


# ------------------------------------------------------------------------------------------ readers
STACK = np.random.default_rng(7).random((3, 8, 10)).astype(np.float32)


@pytest.fixture(scope="module")
def valid_files(tmp_path_factory):
    """Bytes of one valid small tilt series per format."""
    import h5py
    import tifffile
    d = tmp_path_factory.mktemp("valid")
    aio.write_npy(d / "t.npy", STACK)
    tifffile.imwrite(d / "t.tif", STACK)
    aio.write_mrc(d / "t.mrc", STACK, 0.5)
    with h5py.File(d / "t.h5", "w") as f:
        f["tilts"] = STACK
    files = {s: (d / f"t.{s}").read_bytes() for s in ("npy", "tif", "mrc", "h5")}
    for s, b in files.items():  # the seeds are valid
        (d / f"check.{s}").write_bytes(b)
        np.testing.assert_array_equal(aio.read_tilts(d / f"check.{s}"), STACK)
    return files


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz")


def mutate(data: bytes, op) -> bytes:
    kind = op[0]
    n = len(data)
    if kind == "truncate":
        return data[:op[1] % (n + 1)]
    if kind == "flip":
        b = bytearray(data)
        for pos, bit in op[1]:
            b[pos % n] ^= 1 << bit
        return bytes(b)
    if kind == "overwrite":
        b = bytearray(data)
        pos = op[1] % n
        b[pos:pos + len(op[2])] = op[2]
        return bytes(b[:n])
    if kind == "append":
        return data + op[1]
    return op[1]  # random bytes


MUTATIONS = st.one_of(
    st.tuples(st.just("truncate"), st.integers(0, 1 << 20)),
    st.tuples(st.just("flip"), st.lists(st.tuples(st.integers(0, 1 << 20), st.integers(0, 7)), min_size=1, max_size=8)),
    st.tuples(st.just("overwrite"), st.integers(0, 1 << 20),
              st.sampled_from([b"\xff" * 8, b"\x00" * 8, b"\x7f\xff\xff\xff", b"\xff\xff\xff\x7f", b"\x00\x00\xc0\x7f"])),
    st.tuples(st.just("append"), st.binary(min_size=1, max_size=64)),
    st.tuples(st.just("random"), st.binary(max_size=512)),
)


def check_stack(a, where):
    assert isinstance(a, np.ndarray) and a.dtype == np.float32 and a.ndim == 3, where
    assert a.flags.c_contiguous and a.size > 0 and np.isfinite(a).all(), where


@pytest.mark.parametrize("fmt,n", [("npy", 150), ("mrc", 150), ("tif", 120), ("h5", 60)])
def test_tilt_readers_on_corrupt_files(valid_files, scratch, fmt, n):
    @fuzz(n)
    @given(op=MUTATIONS)
    def run(op):
        path = scratch / f"case.{fmt}"
        path.write_bytes(mutate(valid_files[fmt], op))
        a = call(f"read_tilts[{fmt}]", aio.read_tilts, path)
        if a is not None:
            check_stack(a, (fmt, op))

    run()


NUMBER = st.one_of(st.floats(allow_nan=True, allow_infinity=True).map(repr), st.integers(-10**6, 10**6).map(str),
                   st.sampled_from(["nan", "inf", "-inf", "1e999", "0x10", "--1", "1,5", "", "#", "°"]))
ANGLE_TEXT = st.one_of(
    st.text(max_size=200),
    st.lists(st.tuples(st.lists(NUMBER, min_size=0, max_size=4), st.sampled_from([" ", ",", "\t", ";", ", "]))
             .map(lambda t: t[1].join(t[0])), max_size=12).map("\n".join),
)


@fuzz(300)
@given(text=ANGLE_TEXT, suffix=st.sampled_from([".txt", ".csv", ".rawtlt", ".tlt"]),
       n=st.one_of(st.none(), st.integers(0, 5)))
def test_angle_reader_on_random_text(tmp_path_factory, text, suffix, n):
    path = tmp_path_factory.getbasetemp() / f"angles{suffix}"
    path.write_bytes(text.encode("utf-8", errors="surrogatepass"))
    a = call("read_angles[text]", aio.read_angles, path, n)
    if a is not None:
        assert a.dtype == np.float64 and a.ndim in (1, 2) and a.shape[0] > 0
        assert a.ndim == 1 or a.shape[1] == 3
        assert np.isfinite(a).all() and np.abs(a).max() <= 360
        assert n is None or a.shape[0] == n


@fuzz(150)
@given(data=st.binary(max_size=300))
def test_angle_reader_on_random_bytes(tmp_path_factory, data):
    path = tmp_path_factory.getbasetemp() / "angles.bin.txt"
    path.write_bytes(data)
    a = call("read_angles[bytes]", aio.read_angles, path)
    if a is not None:
        assert np.isfinite(a).all() and np.abs(a).max() <= 360


# ------------------------------------------------------------------------ core entry points (public)
SPECIAL = st.sampled_from([np.nan, np.inf, -np.inf, 1e30, -1e30, 0.0, -1.0, 1e-30])
VALUES = st.one_of(st.floats(-1e3, 1e3, width=32), SPECIAL.map(float))
FINITE = st.floats(-1e3, 1e3, width=32)


def arrays(ndim_range, side, elements=VALUES, dtypes=(np.float32, np.float64, np.int16)):
    return (st.tuples(st.sampled_from(dtypes), hnp.array_shapes(min_dims=ndim_range[0], max_dims=ndim_range[1],
                                                                min_side=0, max_side=side))
            .flatmap(lambda ds: hnp.arrays(ds[0], ds[1], elements=elements if ds[0] != np.int16 else
                                           st.integers(-100, 100))))


ANGLES = st.one_of(
    hnp.arrays(np.float64, st.tuples(st.integers(0, 4)), elements=st.one_of(st.floats(-400, 400), SPECIAL)),
    hnp.arrays(np.float64, st.tuples(st.integers(0, 4), st.integers(2, 4)),
               elements=st.one_of(st.floats(-400, 400), SPECIAL)),
    st.lists(st.floats(-90, 90), max_size=3),
)
SIZE = st.integers(-2, 9)
THREADS = st.sampled_from([None, 1, 2, 0, -1])


def finite_array_result(r, shape=None):
    assert isinstance(r, np.ndarray) and r.dtype == np.float32
    if shape is not None:
        assert r.shape == shape
    assert np.isfinite(r).all()


@fuzz(200)
@given(vol=arrays((1, 4), 6), angles=ANGLES, det=st.one_of(st.none(), st.tuples(SIZE, SIZE)), threads=THREADS)
def test_project_volume(vol, angles, det, threads):
    r = call("project_volume", aetcore.project_volume, vol, angles, detector_shape=det, threads=threads)
    if r is not None:
        n = np.asarray(angles).shape[0]
        finite_array_result(r, (n,) + (tuple(det) if det is not None else vol.shape[1:]))


@fuzz(200)
@given(tilts=arrays((1, 4), 6), angles=ANGLES, shape=st.tuples(SIZE, SIZE, SIZE), threads=THREADS)
def test_backproject_volume(tilts, angles, shape, threads):
    r = call("backproject_volume", aetcore.backproject_volume, tilts, angles, shape, threads=threads)
    if r is not None:
        finite_array_result(r, shape)


@fuzz(40)
@given(tilts=arrays((3, 3), 6, elements=st.one_of(FINITE, SPECIAL.map(float))),
       angles=ANGLES, oversampling=st.sampled_from([1.0, 1.5, 2.0, 0.5, np.nan]),
       iterations=st.integers(0, 3), radius=st.sampled_from([0.3, 1.0, 0.0, np.inf, -1.0]),
       support=st.sampled_from([None, "box"]))
def test_genfire_tiny(tilts, angles, oversampling, iterations, radius, support):
    r = call("genfire", aetcore.genfire, tilts, angles, oversampling=oversampling, iterations=iterations,
             interpolation_radius=radius, support=support, progress=False, threads=1, seed=0)
    if r is not None:
        finite_array_result(r.volume)
        assert np.isfinite(r.errors).all()


@fuzz(150)
@given(vol=arrays((2, 4), 7), ps=st.sampled_from([1.0, 0.3, 1e-30, 1e30, 0.0, -1.0, np.nan]),
       fit=st.sampled_from(["polynomial", "gaussian", "none", "cubic"]),
       min_distance=st.sampled_from([0.0, 2.0, 1e-300, 1e300, np.inf, -1.0]),
       fit_radius=st.sampled_from([1, 2, 3, 50, 0]), max_atoms=st.sampled_from([None, 1, 3, 0]),
       threshold=st.sampled_from([None, 0.0, -1e30, np.nan, np.inf]))
def test_trace_atoms(vol, ps, fit, min_distance, fit_radius, max_atoms, threshold):
    r = call("trace_atoms", aetcore.trace_atoms, vol, ps, fit=fit, min_distance=min_distance, fit_radius=fit_radius,
             max_atoms=max_atoms, threshold=threshold, threads=1)
    if r is not None:
        assert r.positions.ndim == 2 and r.positions.shape[1] == 3 and np.isfinite(r.positions).all()
        assert max_atoms is None or len(r.positions) <= max_atoms


POSITIONS = st.one_of(
    hnp.arrays(np.float64, st.tuples(st.integers(0, 4), st.sampled_from([3, 3, 3, 2])),
               elements=st.one_of(st.floats(-20, 20), st.sampled_from([1e300, -1e300, 1e15, np.nan, np.inf]))),
    st.just([[0.0, 0.0, 0.0]]),
)


@fuzz(200)
@given(pos=POSITIONS, sym=st.sampled_from(["Pt", "Fe", "Xx", 3, ""]), angles=ANGLES,
       shape=st.tuples(SIZE, SIZE), ps=st.sampled_from([0.4, 1e-300, 1e300, 0.0, np.nan]),
       cutoff=st.sampled_from([5.0, 1e300, 0.1, np.inf, 0.0]), blur=st.sampled_from([0.5, 0.0, 1e3, -1.0]))
def test_project_atoms(pos, sym, angles, shape, ps, cutoff, blur):
    species = [sym] * len(pos)
    r = call("project_atoms", aetcore.project_atoms, pos, species, angles, shape, ps, cutoff=cutoff, blur=blur,
             threads=1)
    if r is not None:
        finite_array_result(r, (np.asarray(angles).shape[0],) + tuple(shape))


@fuzz(100)
@given(pos=POSITIONS, shape=st.tuples(SIZE, SIZE, SIZE), ps=st.sampled_from([0.4, 1e-300, 1e300]),
       cutoff=st.sampled_from([5.0, 1e300, np.inf]))
def test_render_atoms(pos, shape, ps, cutoff):
    r = call("render_atoms", aetcore.render_atoms, pos, ["Pt"] * len(pos), shape, ps, cutoff=cutoff, threads=1)
    if r is not None:
        finite_array_result(r, shape)


# ------------------------------------------------------ the core module itself (no Python checks)
# aetcore._core is called by the package only, but an embedding code may call it directly: it must
# refuse what it cannot handle on its own, not read or write out of bounds.
RAD = hnp.arrays(np.float64, st.tuples(st.integers(0, 3), st.sampled_from([3, 3, 2])),
                 elements=st.one_of(st.floats(-7, 7), st.sampled_from([np.nan, np.inf, -np.inf, 1e300])))
RAW = st.one_of(st.floats(-1e3, 1e3, width=32), st.sampled_from([np.nan, np.inf, -np.inf, 3e38]))


def raw_arrays(ndim, side=5, dtype=np.float32, elements=RAW):
    return hnp.arrays(dtype, st.tuples(*[st.integers(0, side)] * ndim), elements=elements)


@fuzz(150)
@given(vol=raw_arrays(3), ang=RAD, ndy=SIZE, ndx=SIZE)
def test_core_project_and_backproject(vol, ang, ndy, ndx):
    r = call("_core.project_volume", _core.project_volume, vol, ang, ndy, ndx, 1)
    if r is not None:
        assert r.shape == (ang.shape[0], ndy, ndx)
        b = call("_core.backproject_volume", _core.backproject_volume, r, ang, *vol.shape, 2)
        if b is not None:
            assert b.shape == vol.shape


@fuzz(60)
@given(tilts=raw_arrays(3, 6), ang=RAD, n_grid=st.integers(-1, 10), radius=st.sampled_from([0.3, 2.0, np.inf, np.nan, 0.0]),
       up=st.integers(0, 3))
def test_core_gridding(tilts, ang, n_grid, radius, up):
    r = call("_core.grid_projections", _core.grid_projections, tilts, ang, n_grid, radius, up, 1)
    if r is not None:
        idx, val, w, kr = r
        assert idx.shape == val.shape == w.shape == kr.shape
        if idx.size:
            assert idx.min() >= 0 and idx.max() < n_grid * n_grid * (n_grid // 2 + 1)


@fuzz(60)
@given(n_grid=st.integers(-2, 9), box=st.tuples(st.integers(-1, 9), st.integers(-1, 9), st.integers(-1, 9)),
       idx=hnp.arrays(np.int64, st.integers(0, 6), elements=st.integers(-5, 2000)),
       n_enforce=st.integers(-1, 7), wrong_dtype=st.booleans(), fit_box=st.booleans())
def test_core_genfire_plan(n_grid, box, idx, n_enforce, wrong_dtype, fit_box):
    if fit_box:  # half the cases: a box that fits the grid, so that iterate() runs too
        box = tuple(min(max(b, 1), max(n_grid, 1)) for b in box)
    plan = call("_core.GenfirePlan", _core.GenfirePlan, n_grid, *box, 1)
    if plan is None:
        return
    b = np.ones(box, np.float64 if wrong_dtype else np.float32)
    val = np.ones(idx.shape, np.complex64)
    r = call("_core.GenfirePlan.iterate", plan.iterate, b, None, True, idx, val, n_enforce, idx[:0], val[:0])
    if r is not None:
        assert not wrong_dtype  # a converted copy would be updated instead of the caller's box
        assert np.isfinite(b).all()


@fuzz(150)
@given(vol=raw_arrays(3, 6), thr=st.sampled_from([0.0, np.nan, -np.inf, 1.0]), max_atoms=st.integers(-1, 3),
       dmin=st.sampled_from([0.0, 1.5, 1e-300, np.inf, np.nan, -1.0]), fit=st.integers(-1, 3),
       drift=st.sampled_from([1.0, np.nan, 1e300, -1.0]), radius=st.integers(-1, 40), iters=st.integers(-1, 5))
def test_core_trace(vol, thr, max_atoms, dmin, fit, drift, radius, iters):
    r = call("_core.trace_atoms", _core.trace_atoms, vol, thr, max_atoms, dmin, fit, drift, radius, 1, iters)
    if r is not None:
        vox, pos, inten, status = r
        assert vox.shape == pos.shape and vox.shape[1:] == (3,) and inten.shape == status.shape == vox.shape[:1]
        if vox.size:
            assert (vox >= 0).all() and (vox < np.array(vol.shape)).all()


@fuzz(150)
@given(pos=hnp.arrays(np.float64, st.tuples(st.integers(0, 3), st.sampled_from([3, 3, 2])),
                      elements=st.one_of(st.floats(-10, 10), st.sampled_from([1e300, -1e300, np.nan, np.inf]))),
       lab=st.integers(-1, 2), sig=st.sampled_from([1.0, 0.0, np.inf, np.nan, 1e300, 1e-300]),
       ang=RAD, ndy=SIZE, ndx=SIZE, cutoff=st.sampled_from([5.0, np.inf, np.nan, 1e300, -1.0]))
def test_core_atoms(pos, lab, sig, ang, ndy, ndx, cutoff):
    species = np.full(pos.shape[0], lab, np.int32)
    h = np.array([1.0, 2.0])
    s = np.array([sig, 1.0])
    r = call("_core.project_atoms", _core.project_atoms, pos, species, h, s, ang, ndy, ndx, cutoff, 1)
    if r is not None:
        assert r.shape == (ang.shape[0], ndy, ndx)
    r = call("_core.render_atoms", _core.render_atoms, pos, species, h, s, max(ndy, 0), max(ndx, 0), 4, cutoff, 1)
    if r is not None:
        assert r.shape == (max(ndy, 0), max(ndx, 0), 4)


@fuzz(120)
@given(pos=hnp.arrays(np.float64, st.tuples(st.integers(0, 3), st.just(3)),
                      elements=st.one_of(st.floats(-10, 10), st.sampled_from([1e300, np.nan]))),
       b=st.sampled_from([4.0, 0.0, -1.0, np.nan, 1e300]), blur=st.sampled_from([0.5, 0.0, np.inf]),
       ps=st.sampled_from([0.5, 1e-300, 0.0]), ang=RAD, meas=raw_arrays(3, 5),
       cutoff=st.sampled_from([5.0, 1e300, np.inf]), grad=st.booleans(), jtj=st.booleans())
def test_core_refine_objective(pos, b, blur, ps, ang, meas, cutoff, grad, jtj):
    species = np.zeros(pos.shape[0], np.int32)
    r = call("_core.refine_objective", _core.refine_objective, pos, species, np.array([1.0]), np.array([b]),
             blur, ps, ang, meas, 0.0, cutoff, grad, jtj, 1)
    if r is not None and grad:
        assert r["grad_positions"].shape == (pos.shape[0], 3)


# ------------------------------------------------------------------- regressions found by fuzzing
@pytest.mark.parametrize("shape", [(1, 4, 5), (5, 4, 1), (1, 3, 1), (2, 3, 1), (1, 2, 2)])
@pytest.mark.parametrize("theta", [89.99999, 90.0, -89.99999, 0.0001, 45.0])
def test_thin_volumes_at_grazing_angles(shape, theta):
    """A volume one voxel thick along x or z, tilted about y to within 1e-5 degrees of 90: the
    single-axis fast path took its bounds-free interior loop over a slab of width 2e-6 / cos(theta)
    and read (projection) and wrote (back-projection) a slice beyond the volume -- a heap overflow
    under ASan (make test-sanitize), garbage otherwise. The fast path must equal the general
    trilinear path (taken when phi is not exactly 0) and stay the adjoint of the back-projection."""
    COUNTS["thin volumes"] += 1
    vol = np.random.default_rng(1).random(shape, dtype=np.float32) + 0.5
    fast = aetcore.project_volume(vol, [theta], threads=1)
    general = aetcore.project_volume(vol, np.array([[1e-7, theta, -1e-7]]), threads=1)
    np.testing.assert_allclose(fast, general, rtol=1e-4, atol=1e-4)
    y = np.random.default_rng(2).random(fast.shape, dtype=np.float32)
    back = aetcore.backproject_volume(y, [theta], shape, threads=1)
    lhs = float((fast.astype(np.float64) * y).sum())
    rhs = float((vol.astype(np.float64) * back).sum())
    assert lhs == pytest.approx(rhs, rel=1e-5, abs=1e-6)
