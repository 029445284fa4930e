#!/usr/bin/env bash
# Debian's Chromium, for the test that renders report.html headless. Needs root (or sudo).
# Under CI a missing browser is an error; elsewhere the report test is skipped with a note.
set -euo pipefail
command -v chromium >/dev/null 2>&1 && exit 0
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
    echo "note: chromium is not installed and this user cannot apt-get; the headless report test will be skipped" >&2
    [ "${CI:-}" = "true" ] && exit 1 || exit 0
  fi
fi
$SUDO apt-get update -qq
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium
