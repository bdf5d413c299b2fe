#!/usr/bin/env bash
# Set up .venv for the workbench: torch first, then the project with its dev extras.
# A machine that already has torch (a GPU box with its CUDA build) keeps it: the venv then sees
# the system packages. Elsewhere torch==2.13.0 is installed, which pip takes from a CPU build on
# this project's machines instead of downloading several GB of CUDA wheels.
set -euo pipefail
cd "$(dirname "$0")/.."
py=${PYTHON:-python3}
"$py" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "setup: Python >= 3.11 needed" >&2; exit 1; }
if [ ! -x .venv/bin/python ]; then
  if "$py" -c 'import torch' 2>/dev/null; then
    "$py" -m venv --system-site-packages .venv
  else
    "$py" -m venv .venv
  fi
fi
.venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip
.venv/bin/python -c 'import torch' 2>/dev/null || .venv/bin/python -m pip install -q torch==2.13.0
.venv/bin/python -m pip install -q -e '.[dev]'
