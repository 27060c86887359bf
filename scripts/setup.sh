#!/usr/bin/env bash
# Creates .venv (if needed) and installs fleetplan with its test tools into it.
# Needs only Python 3.11+ with venv and pip; uv is installed into the venv to speed up the rest.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${VENV:-.venv}"
PYTHON="${PYTHON:-python3}"
stamp="$VENV/.fleetplan-installed"
if [ -f "$stamp" ] && [ "$stamp" -nt pyproject.toml ]; then
  exit 0
fi
if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install -q --disable-pip-version-check uv
"$VENV/bin/python" -m uv pip install -q --python "$VENV/bin/python" -e '.[dev]'
touch "$stamp"
