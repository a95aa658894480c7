# wps_lakes — everyday commands. `make help` lists them.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PIP := $(BIN)/python -m pip --disable-pip-version-check
PYTEST_ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help install services start stop status restart test test-all lint docs demo bench bench-training cwl pretrained clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

$(STAMP): requirements.txt requirements-dev.txt constraints.txt setup.cfg pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q -c constraints.txt -r requirements.txt -r requirements-dev.txt
	$(PIP) install -q --no-deps --no-build-isolation -e .
	@touch $(STAMP)

install: $(STAMP)  ## create .venv with every pinned requirement and the package (editable)

services:  ## install what the tests start (Redis, headless Chromium) from Debian packages
	bash scripts/install-services.sh

start: install  ## start the service in the background on http://localhost:5000/wps
	$(BIN)/wps-lakes start --daemon

stop:  ## stop the background service
	@test -x $(BIN)/wps-lakes && $(BIN)/wps-lakes stop || echo "not installed: nothing to stop"

status:  ## is the service running, and where
	@test -x $(BIN)/wps-lakes && $(BIN)/wps-lakes status || echo "not installed"

restart: stop start  ## stop then start

test: install services  ## run the default test suite
	$(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS)

test-all: install services  ## run every test, the slow ones too
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: install  ## ruff
	$(BIN)/ruff check wps_lakes tests benchmarks

docs: install  ## build the Sphinx documentation into docs/_build/html
	$(BIN)/sphinx-build -W -b html docs docs/_build/html

demo: install  ## scene -> train -> detect -> split against the started service
	$(BIN)/python scripts/demo.py

cwl: install  ## regenerate cwl/ (CWL tools, workflow, deploy bodies) from the process definitions
	$(BIN)/python -m wps_lakes.cwl

bench: install services  ## run the benchmarks (about 40 min), write benchmarks/results/ and docs/performance.rst
	$(BIN)/python -m benchmarks

bench-training: install  ## the 30-minute training quality run (benchmarks/results/training_cpu.json)
	$(BIN)/python -m benchmarks.bench_training --json benchmarks/results/training_cpu.json

pretrained: install  ## rebuild the bundled model (about 30 min on 2 CPU cores): wps_lakes/detector/pretrained/
	OMP_NUM_THREADS=1 $(BIN)/python -m wps_lakes.detector.pretrained -d build/pretrained

clean:  ## remove the virtualenv, caches and build output
	-@test -x $(BIN)/wps-lakes && $(BIN)/wps-lakes stop >/dev/null 2>&1 || true
	rm -rf $(VENV) build dist *.egg-info docs/_build .pytest_cache .ruff_cache .hypothesis var
	find . -name __pycache__ -prune -exec rm -rf {} +
