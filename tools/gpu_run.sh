#!/usr/bin/env bash
# The one prepared GPU run (issue 20): m4sam-bench --gpu-suite, then train + score the 256 px demo
# model on the synthetic world, all under OUT, in <= 10 minutes on one CUDA GPU.
#   tools/gpu_run.sh OUT            # on the GPU machine (PYTHON defaults to .venv/bin/python)
#   tools/gpu_run.sh OUT --tiny     # the same stages at a tiny size on the CPU (~1 minute)
# See m4sam_ros/apps/gpu_run.py and docs/TRAINING.md ("One prepared GPU run").
set -euo pipefail
if [ $# -lt 1 ]; then echo "usage: $0 OUT [--tiny] [--device DEV]" >&2; exit 2; fi
here="$(cd "$(dirname "$0")/.." && pwd)"
PYTHON="${PYTHON:-$here/.venv/bin/python}"
[ -x "$PYTHON" ] || PYTHON=python3
export PYTHONPATH="$here${PYTHONPATH:+:$PYTHONPATH}"
exec "$PYTHON" -m m4sam_ros.apps.gpu_run "$@"
