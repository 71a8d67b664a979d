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

.PHONY: setup demo test unit nbval lab notebooks bench clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@# the offline self-supervised ResNet50 weights (used when ImageNet weights cannot be downloaded)
	$(PY) -m pip install --quiet --no-deps imgsim==0.1.2
	$(PY) -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (artlib)" >/dev/null
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(PY) -m artlib demo --run-dir $(RUN_DIR)

test: unit nbval

unit: $(STAMP)
	$(PY) -m pytest -q tests

# nbval runs each notebook with its default parameters in a scratch run directory
# (ARTLIB_RUN_DIR), so tests neither need nor overwrite runs/demo.
nbval: $(STAMP)
	scratch=$$(mktemp -d) && trap 'rm -rf "$$scratch"' EXIT && \
	ARTLIB_RUN_DIR=$$scratch/run $(PY) -m pytest -q -p no:cacheprovider --nbval-lax \
	  --nbval-sanitize-with $(SANITIZE) --nbval-cell-timeout=900 notebooks

lab: $(STAMP)
	$(VENV)/bin/jupyter lab notebooks

# Regenerate the notebooks from tools/build_notebooks.py and store the outputs of a run of their
# default parameters (what nbval compares), executed in a fresh scratch run directory.
notebooks: $(STAMP)
	$(PY) tools/build_notebooks.py
	rm -rf runs/nbexec && ARTLIB_RUN_DIR=runs/nbexec $(PY) tools/execute_notebooks.py

bench: $(STAMP)
	$(PY) benchmarks/train_throughput.py $(ARGS)

clean:
	rm -rf runs/demo runs/nbexec
