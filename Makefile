# drex: `make demo` runs the whole loop in simulation, `make test` runs the tests.
# Both set up everything first on a fresh Debian/Ubuntu machine with Python 3.11.

PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
APT_PACKAGES := libosmesa6 libusb-1.0-0
export MUJOCO_GL ?= osmesa
export PYOPENGL_PLATFORM ?= osmesa

.PHONY: install demo test lint bench clean

install: $(VENV)/.installed

$(VENV)/.installed: requirements.txt setup.py
	@dpkg -s $(APT_PACKAGES) >/dev/null 2>&1 || { $(SUDO) apt-get update && $(SUDO) apt-get install -y $(APT_PACKAGES); }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	$(VENV)/bin/drex urdf urdf/panda_allegro.urdf
	touch $@

demo: install
	$(VENV)/bin/drex demo --out out

test: install
	$(PY) -m pytest -q

lint: install
	$(VENV)/bin/ruff check drex_ros test launch

bench: install
	$(VENV)/bin/drex bench sim
	$(VENV)/bin/drex bench chain
	$(VENV)/bin/drex bench perception
	$(VENV)/bin/drex bench massid

clean:
	rm -rf $(VENV) build install log out *.egg-info
