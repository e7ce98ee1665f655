# Quick start on a fresh Debian machine: `make demo` or `make test`.
# Both install what is missing (Debian's FFTW3 and Eigen3 headers, a .venv with the package).
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(VENV)/bin/pip
SOURCES := $(shell find cpp python -type f \( -name '*.cpp' -o -name '*.hpp' -o -name '*.py' \)) pyproject.toml CMakeLists.txt
DEB_PACKAGES := libfftw3-dev libeigen3-dev

.PHONY: demo test bench deps install clean

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

.stamp-install: $(SOURCES) | deps $(PY)
	$(PIP) install -q ".[test]"
	touch $@

install: deps .stamp-install

demo: install
	$(VENV)/bin/aet demo

test: install
	$(PY) -m pytest -q tests

bench: install
	$(PIP) install -q ".[bench]"
	$(PY) bench/reconstruction.py
	$(PY) bench/atoms.py
	$(PY) bench/alignment.py

clean:
	rm -rf build .stamp-install
