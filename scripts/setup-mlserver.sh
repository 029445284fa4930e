#!/usr/bin/env bash
# A separate virtual environment with MLServer (Seldon's KServe v2 server), for the `edgekit compare --cloud URL`
# tests against a real third-party Open Inference Protocol server. Separate, so that MLServer's pinned
# dependencies (fastapi, uvicorn, pydantic, …) never clash with edgekit's own .venv.
#
#   scripts/setup-mlserver.sh [VENV]      (default: .venv-mlserver at the repository root)
#
# Idempotent: a venv that already has this MLServer version (and onnxruntime, numpy) is left as it is.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PY:-python3}"
VENV="${1:-.venv-mlserver}"
MLSERVER_VERSION="${MLSERVER_VERSION:-1.7.1}"

if [ -x "$VENV/bin/mlserver" ] && "$VENV/bin/python" -c "
import sys, mlserver, onnxruntime, numpy
sys.exit(mlserver.__version__ != '$MLSERVER_VERSION')" 2>/dev/null; then
  echo "$VENV: mlserver $MLSERVER_VERSION already installed"
  exit 0
fi
"$PY" -m venv "$VENV"
"$VENV/bin/pip" install --quiet --upgrade pip
"$VENV/bin/pip" install --quiet "mlserver==$MLSERVER_VERSION" "onnxruntime>=1.20" "numpy>=1.26"
"$VENV/bin/python" -c "import mlserver, onnxruntime; print('mlserver', mlserver.__version__, 'onnxruntime', onnxruntime.__version__)"
