#!/usr/bin/env bash
# Sets up .venv (scripts/setup.sh) and runs the whole check: ruff, import-linter, pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check .
.venv/bin/lint-imports
bash scripts/install-prometheus.sh
.venv/bin/pytest -q "$@"
