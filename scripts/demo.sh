#!/usr/bin/env bash
# Sets up .venv (scripts/setup.sh) and runs fleetplan's main job on the embedded default:
# the optimizer over the bundled heterogeneous example fleet.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/fleetplan optimize specs/examples/heterogeneous-fleet.json "$@"
