"""`fleetplan run --config FILE`: the controller daemon.

Reads the configuration (`controller.config`; a bad file exits with code 2 before
anything starts), resumes the state file, then ticks every `period_s` and serves
`/healthz`, `/readyz`, `/metrics`, `/plan` and `POST /invoke` (`controller.daemon`) until
SIGTERM or SIGINT; the tick in progress finishes first. Once listening it prints one line,
`fleetplan run: listening on http://HOST:PORT`, so a parent started with port 0 learns it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib

from controller.config import load_config
from controller.daemon import run_forever
from controller.wiring import build_daemon


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `run` sub-command."""
    parser = subparsers.add_parser(
        "run", help="run the controller daemon (collect, learn, optimise, stabilise, act)",
        description="Run the control loop every period with HTTP endpoints /healthz, /readyz, "
        "/metrics, /plan and POST /invoke; one JSON line per tick in the decision log.")
    parser.add_argument("--config", required=True, help="controller configuration (JSON)")
    parser.add_argument("--port", type=int, help="override the configuration's port")
    parser.add_argument("--mode", choices=("apply", "dry-run", "metrics"),
                        help="override the configuration's mode")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Serve until stopped."""
    config = load_config(args.config)
    updates = {k: v for k, v in (("port", args.port), ("mode", args.mode)) if v is not None}
    config = config.model_copy(update=updates)
    daemon, actuator = build_daemon(config)

    def ready(url: str) -> None:
        print(f"fleetplan run: listening on {url} mode {config.mode} "
              f"period {config.period_s:g} s", flush=True)

    try:
        asyncio.run(run_forever(daemon, config.host, config.port, ready))
    finally:
        close = getattr(actuator, "close", None)
        if callable(close):
            with contextlib.suppress(Exception):
                close()
    return 0
