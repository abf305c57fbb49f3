# Two commands from a fresh clone (see README):  make demo   |   make test
# torch is pinned first: on these machines `torch==2.13.0` is a local CPU wheel, while an
# unpinned torch pulled in by another package would download several GB of CUDA wheels.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TORCH_SPEC ?= torch==2.13.0
# e.g. https://download.pytorch.org/whl/cpu where no local CPU wheel is configured for pip
TORCH_INDEX ?=

.PHONY: setup demo test bench clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/pip install -q "$(TORCH_SPEC)" $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	$(BIN)/pip install -q -e ".[test,bench,serve]"
	touch $@

setup: $(VENV)/.installed

# the whole method on this CPU in a toy world (recipes/run/README.md); rerun to resume, DEMO_ARGS for overrides
demo: setup
	$(BIN)/sinternal-verl run recipes/run/cpu_demo.yaml $(DEMO_ARGS)

test: setup
	$(BIN)/python -m pytest tests $(PYTEST_ARGS)

bench: setup
	$(BIN)/python benchmarks/bench_reward_throughput.py
	$(BIN)/python benchmarks/bench_math_reward.py

clean:
	rm -rf $(VENV) build *.egg-info
