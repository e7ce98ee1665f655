"""The sanitizer run really runs on the instrumented core (else `make test-sanitize` proves nothing)."""
import ctypes
import os

import pytest

pytestmark = pytest.mark.skipif("AETCORE_SANITIZED_CORE" not in os.environ,
                                reason="only in `make test-sanitize` (the sanitizer build of the core)")


def test_the_instrumented_core_is_loaded():
    import aetcore
    from aetcore import _core
    assert os.path.samefile(_core.__file__, os.environ["AETCORE_SANITIZED_CORE"])
    assert aetcore.project._core is _core


def test_asan_and_ubsan_runtimes_are_in_the_process():
    proc = ctypes.CDLL(None)
    for symbol in ("__asan_init", "__ubsan_handle_float_cast_overflow"):
        assert hasattr(proc, symbol), f"{symbol} missing: run with LD_PRELOAD of libasan and libubsan"
