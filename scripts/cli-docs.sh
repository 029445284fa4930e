#!/bin/sh
# docs/cli.md, the CLI reference, generated from the Typer app (tests/system/test_docs.py checks that it is current):
#   scripts/cli-docs.sh [OUT]     (default: docs/cli.md)
# Run with a fixed HOME, so that the agent's default --store reads ~/.cache/edgekit/agent whoever runs it.
set -eu
out=$(realpath -m "${1:-docs/cli.md}")
cd "$(dirname "$0")/.."
HOME=/edgekit-docs-home .venv/bin/typer edgekit.cli.app utils docs --name edgekit --output "$out" >/dev/null
note="<!-- Generated from the Typer app by scripts/cli-docs.sh: edit the commands' help, then run it. -->"
sed -i -e 's#/edgekit-docs-home/#~/#g' -e "1i $note\\n" "$out"
