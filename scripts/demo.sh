#!/usr/bin/env bash
# Sets up .venv (scripts/setup.sh) and runs fleetplan's main job on the embedded default:
# `fleetplan up`, the whole closed loop on this machine (local emulated workers, router,
# scrape collector, controller, load generator) over a built-in 300 s schedule, with a
# report in ./fleetplan-run/. Extra arguments go to `fleetplan up` (e.g. --duration 60).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/fleetplan up "$@"
