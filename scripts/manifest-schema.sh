#!/bin/sh
# docs/manifest.schema.json, the JSON Schema of manifest.json, generated from edgekit.manifest.Manifest
# (tests/unit/test_manifest.py checks that it is current):
#   scripts/manifest-schema.sh [OUT]     (default: docs/manifest.schema.json)
set -eu
out=$(realpath -m "${1:-docs/manifest.schema.json}")
cd "$(dirname "$0")/.."
.venv/bin/python -c 'import sys; from edgekit.manifest import json_schema; sys.stdout.write(json_schema())' > "$out"
