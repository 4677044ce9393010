#!/usr/bin/env bash
# Create .venv with Python 3.11 and install the package with every dependency pinned (requirements.lock).
# PyPI's x86_64 torch is a CUDA build that runs on the CPU: about 7 GB and 2-4 minutes here.
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python3.11}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q -c requirements.lock -e ".[dev]"
.venv/bin/python -c "import qmoe, torch, torchaudio; print('qmoe', qmoe.__version__, 'torch', torch.__version__)"
