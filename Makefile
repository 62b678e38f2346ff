# The two commands of the README: `make demo` and `make test`. Both set everything up first.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
TORCH_CPU_VERSION := 2.13.0
SAM2_VERSION := 1.1.0
STAMP := $(VENV)/.setup-done

.PHONY: setup test lint demo clean

setup: $(STAMP)

# Idempotent: re-runs only when the pins or the package metadata change.
$(STAMP): requirements.txt setup.py package.xml
	@test -x $(PY) || $(PYTHON) -m venv $(if $(shell $(PYTHON) -c 'import torch' 2>/dev/null && echo y),--system-site-packages,) $(VENV)
	$(PIP) install -q --upgrade pip setuptools wheel
	@# torch: keep the user's own (CUDA) build where one is importable; the CPU build otherwise.
	@if $(PY) -c 'import torch' 2>/dev/null; then \
	  echo "torch $$($(PY) -c 'import torch; print(torch.__version__)') already installed: keeping it"; \
	elif command -v nvidia-smi >/dev/null 2>&1; then \
	  echo "NVIDIA GPU found and no torch installed: taking PyPI's default (CUDA) torch"; $(PIP) install -q torch; \
	else \
	  $(PIP) install -q torch==$(TORCH_CPU_VERSION); \
	fi
	$(PIP) install -q -r requirements.txt
	SAM2_BUILD_CUDA=0 $(PIP) install -q --no-build-isolation --no-deps sam2==$(SAM2_VERSION)
	$(PIP) install -q --no-deps --no-build-isolation -e .
	@touch $(STAMP)

lint: setup
	$(VENV)/bin/ruff check .

# pytest exits 5 when it collects no tests; that is not a failure of the suite.
test: setup lint
	$(PY) -m pytest -q test; rc=$$?; if [ $$rc -eq 5 ]; then echo "no tests collected"; exit 0; fi; exit $$rc

# The main job: the real node on a replayed synthetic RGB-D bag, recorded and scored (demo_output/).
demo: setup
	ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST $(PY) -m m4sam_ros.demo --out demo_output

clean:
	rm -rf $(VENV) build *.egg-info demo_output .pytest_cache .ruff_cache
