# Two commands from a fresh clone: `make demo` and `make test`. Everything is installed here.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.arca-installed

.PHONY: setup test lint demo bench tiny-model clean

setup: $(STAMP)

# The CPU torch first (on machines without a GPU), so that the package's torch range is already met and
# pip never pulls the multi-GB CUDA build.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	if ! command -v nvidia-smi >/dev/null 2>&1; then $(PY) -m pip install -q torch==2.13.0; fi
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests scripts benchmarks

test: $(STAMP) lint
	bash scripts/ensure_chromium.sh
	$(VENV)/bin/pytest -q

demo: $(STAMP)
	$(VENV)/bin/arca demo

bench: $(STAMP)
	$(PY) benchmarks/credit_bench.py
	$(PY) benchmarks/step_cost.py

tiny-model: $(STAMP)
	$(PY) scripts/build_tiny_model.py

clean:
	rm -rf $(VENV) runs diagnose .pytest_cache .ruff_cache
