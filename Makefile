# artlib — two commands do everything on a fresh machine:
#   make demo   set up .venv if needed, then run the whole notebook series on the synthetic demo data
#   make test   set up .venv if needed, then run the unit tests and nbval over notebooks/
SHELL   := /bin/bash
PYTHON  ?= python3
VENV    := .venv
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.artlib-installed
RUN_DIR ?= runs/demo
SANITIZE := notebooks/nbval_sanitize.cfg

.PHONY: setup demo test unit unit-fast lint nbval lab notebooks bench gpu-check clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev,ray]'
	@# the offline self-supervised ResNet50 weights (used when ImageNet weights cannot be downloaded)
	$(PY) -m pip install --quiet --no-deps imgsim==0.1.2
	$(PY) -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (artlib)" >/dev/null
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(PY) -m artlib demo --run-dir $(RUN_DIR)

test: lint unit nbval

# over every core (pytest-xdist): each worker is pinned to its own core and counts only its own stage-runs
# (tests/conftest.py), so workers neither oversubscribe the cores nor change each other's thread counts
XDIST ?= -n auto

unit: $(STAMP)
	$(PY) -m pytest -q $(XDIST) tests

# the inner loop: every test that trains nothing (under a minute)
unit-fast: $(STAMP)
	$(PY) -m pytest -q $(XDIST) -m "not slow" tests

# style (ruff, on the library, tests, benchmarks and the notebooks' .py sources) and the layer contracts
lint: $(STAMP)
	$(VENV)/bin/ruff check artlib tests benchmarks tools notebooks
	$(VENV)/bin/lint-imports

# nbval runs each notebook with its default parameters in a scratch run directory
# (ARTLIB_RUN_DIR), so tests neither need nor overwrite runs/demo.
nbval: $(STAMP)
	scratch=$$(mktemp -d) && trap 'rm -rf "$$scratch"' EXIT && \
	ARTLIB_RUN_DIR=$$scratch/run $(PY) -m pytest -q -p no:cacheprovider --nbval-lax \
	  --nbval-sanitize-with $(SANITIZE) --nbval-cell-timeout=900 notebooks

lab: $(STAMP)
	$(VENV)/bin/jupyter lab notebooks

# Sync the notebooks' .py sources into the .ipynb files, execute them with their default parameters in a fresh
# scratch run directory and store the outputs (what nbval compares), without run-specific metadata.
notebooks: $(STAMP)
	$(if $(NB),,rm -rf runs/nbexec &&) ARTLIB_RUN_DIR=runs/nbexec $(PY) tools/execute_notebooks.py $(NB)

bench: $(STAMP)
	$(PY) benchmarks/train_throughput.py $(ARGS)

# GPU measurements through the public CLI into runs/gpu-check/gpu_check.json (meant to take <= 8 min on one H100/H200);
# without CUDA it exits 2 with one line
gpu-check: $(STAMP)
	$(PY) tools/gpu_check.py $(ARGS)

clean:
	rm -rf runs/demo runs/nbexec
