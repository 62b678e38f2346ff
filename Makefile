# The two commands of the README: `make demo` and `make test`. Both set everything up first.
# ROS 2 Jazzy (LTS) is the default; a second environment for Kilted:
#   make test ROS_DISTRO=kilted VENV=.venv-kilted
SHELL := /bin/bash
# The interpreter of the venv: empty = tools/find_python.py picks python3.12, else python3.11 (and
# says which); PYTHON=/path/to/python3.X names one (checked the same way: 3.11 or 3.12).
PYTHON ?=
# The Python that runs tools/find_python.py (any Python 3; it may be one it then refuses).
FINDER_PYTHON ?= python3
ROS_DISTRO ?= jazzy
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
TORCH_CPU_VERSION := 2.13.0
SAM2_VERSION := 1.1.0
# Source snapshots of the ROS Python packages that are not on the index (test material only).
SHARED_ROS ?= ../shared/ros
REQS := requirements-$(ROS_DISTRO).txt
STAMP := $(VENV)/.setup-$(ROS_DISTRO)
TESTENV_STAMP := $(VENV)/.testenv-$(ROS_DISTRO)

.PHONY: setup testenv test test-numpy1 lint demo mutation gpu-run clean which-python

ifeq ($(wildcard $(REQS)),)
$(error ROS_DISTRO=$(ROS_DISTRO): no $(REQS); supported: jazzy (default), kilted)
endif

setup: $(STAMP)

# The interpreter `make setup` would create $(VENV) with (nothing is built).
which-python:
	@$(FINDER_PYTHON) tools/find_python.py --python "$(PYTHON)"

# Idempotent: re-runs only when the pins or the package metadata change. Refuses to turn an
# environment of one ROS distribution into another (use another VENV for the second one).
$(STAMP): $(REQS) requirements-runtime.txt requirements-dev.txt requirements-onnx.txt setup.py setup.cfg package.xml
	@test -x $(PY) || { py=$$($(FINDER_PYTHON) tools/find_python.py --python "$(PYTHON)") || exit 1; \
	  sys=$$($$py -c 'import torch' 2>/dev/null && echo --system-site-packages); \
	  $$py -m venv $$sys $(VENV); }
	@have=$$($(PY) -c 'import importlib.metadata as m; print(m.version("ros-rclpy"))' 2>/dev/null || true); \
	case "$(ROS_DISTRO):$$have" in \
	  *:|jazzy:7.*|kilted:9.*) ;; \
	  *) echo "$(VENV) holds ros-rclpy $$have, not ROS 2 $(ROS_DISTRO): choose another VENV=... (or 'make clean VENV=$(VENV)')" >&2; exit 1 ;; \
	esac
	$(PIP) install -q --upgrade pip "setuptools<80" wheel  # colcon-core needs setuptools < 80
	@# torch: keep the user's own (CUDA) build where one is importable; the CPU build otherwise.
	@if $(PY) -c 'import torch' 2>/dev/null; then \
	  echo "torch $$($(PY) -c 'import torch; print(torch.__version__)') already installed: keeping it"; \
	elif command -v nvidia-smi >/dev/null 2>&1; then \
	  echo "NVIDIA GPU found and no torch installed: taking PyPI's default (CUDA) torch"; $(PIP) install -q torch; \
	else \
	  $(PIP) install -q torch==$(TORCH_CPU_VERSION); \
	fi
	$(PIP) install -q -r $(REQS)
	SAM2_BUILD_CUDA=0 $(PIP) install -q --no-deps --no-build-isolation sam2==$(SAM2_VERSION)
	$(PIP) install -q --no-deps --no-build-isolation -e .
	@touch $(STAMP)

# The real launch, launch_ros, message_filters, sensor_msgs_py (from $(SHARED_ROS)) and a
# rosidl-generated vision_msgs, for the tests. Both steps are cached (second run: ~1 s).
testenv: $(TESTENV_STAMP)

$(TESTENV_STAMP): $(STAMP) tools/install_ros_python.sh tools/ensure_vision_msgs.sh
	tools/install_ros_python.sh $(PY) $(SHARED_ROS)
	tools/ensure_vision_msgs.sh $(PY) $(SHARED_ROS)
	@touch $(TESTENV_STAMP)

lint: setup
	$(VENV)/bin/ruff check .

# pytest exits 5 when it collects no tests; that is not a failure of the suite.
# TESTS: what pytest runs (default the whole suite; .ci/run gives the second distribution the
# ROS-facing files).
TESTS ?= test
test: setup testenv lint
	@echo "== tests on ROS 2 $(ROS_DISTRO) ($(VENV)) =="
	ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST $(PY) -m pytest -q --durations=15 $(TESTS); rc=$$?; if [ $$rc -eq 5 ]; then echo "no tests collected"; exit 0; fi; exit $$rc

# The core on numpy 1.26.4, the numpy of Ubuntu 24.04's apt ROS (the workspace setup keeps it):
# numpy 1.26.4 in a folder put in front of the venv's numpy 2 (installed once, atomically, into
# $(VENV)), then the tests of the numpy-heavy core (depth, codecs, pairing, 3D, tracking, metrics, data).
NUMPY1 := $(VENV)/numpy-1.26.4
NUMPY1_TESTS ?= test/test_depth_norm.py test/test_image_codec.py test/test_sync.py test/test_geometry.py \
  test/test_boxes3d.py test/test_tracking.py test/test_metrics.py test/test_data.py
test-numpy1: setup testenv
	@test -d $(NUMPY1) || { rm -rf $(NUMPY1).part && $(PIP) install -q --no-deps --target $(NUMPY1).part numpy==1.26.4 \
	  && mv $(NUMPY1).part $(NUMPY1); }
	PYTHONPATH=$(NUMPY1) $(PY) -c 'import numpy; assert numpy.__version__ == "1.26.4", numpy.__file__'
	PYTHONPATH=$(NUMPY1) ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST $(PY) -m pytest -q $(NUMPY1_TESTS)

# Do the tests catch deliberately broken code? (tools/mutation_check.py)
mutation: setup testenv
	ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST $(PY) tools/mutation_check.py

# The main job: the real node on a replayed synthetic RGB-D bag, recorded and scored (demo_output/).
# BACKEND=onnxruntime: the model exported by m4sam-export and run by ONNX Runtime in the node.
BACKEND ?= torch
demo: setup
	ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST $(PY) -m m4sam_ros.apps.demo --out demo_output --backend $(BACKEND)

# The one prepared GPU run (issue 20): GPU suite, then train + score the 256 px demo model, in OUT.
OUT ?= gpu_run
gpu-run: setup
	$(PY) -m m4sam_ros.apps.gpu_run $(OUT)

clean:
	rm -rf $(VENV) build *.egg-info demo_output .pytest_cache .ruff_cache
