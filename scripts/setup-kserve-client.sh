#!/usr/bin/env bash
# A separate virtual environment with KServe's own Python client (the `kserve` package), for the interop tests in
# tests/interop/test_v2_interop.py. Separate, because `kserve` pins protobuf, pydantic and pulls kubernetes, grpcio and
# pandas, which would change edgekit's own .venv.
#
#   scripts/setup-kserve-client.sh [VENV]      (default: .venv-kserve at the repository root)
#
# Idempotent: a venv that already has this kserve version (and numpy, httpx) is left as it is.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PY:-python3}"
VENV="${1:-.venv-kserve}"
KSERVE_VERSION="${KSERVE_VERSION:-0.21.0}"

if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c "
import sys, importlib.metadata as m, numpy, httpx
sys.exit(m.version('kserve') != '$KSERVE_VERSION')" 2>/dev/null; then
  echo "$VENV: kserve $KSERVE_VERSION already installed"
  exit 0
fi
"$PY" -m venv "$VENV"
"$VENV/bin/pip" install --quiet --upgrade pip
"$VENV/bin/pip" install --quiet "kserve==$KSERVE_VERSION" "numpy>=1.26" "httpx>=0.27"
"$VENV/bin/python" -c "import importlib.metadata as m; import kserve; print('kserve', m.version('kserve'))"
