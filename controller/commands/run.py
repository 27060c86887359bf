"""`fleetplan run --config FILE`: the controller daemon.

Reads the configuration (`controller.config`; a bad file exits with code 2 before
anything starts), resumes the state file, then ticks every `period_s` and serves
`/healthz`, `/readyz`, `/metrics`, `/plan` and `POST /invoke` (`controller.daemon`) until
SIGTERM or SIGINT; the tick in progress finishes first. Once listening it prints one line,
`fleetplan run: listening on http://HOST:PORT`, so a parent started with port 0 learns it.
`POST /invoke` needs the bearer token of `--auth-token-file` or `FLEETPLAN_AUTH_TOKEN`
(`--insecure-no-auth` turns the check off when the configured host is a loopback address).
Each tick is logged to stderr (`--log-level`): a held fleet and a metrics outage as
warnings with the reason. A port in use, like any bad input, is one line and exit code 2.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging

from controller.commands.server_args import add_auth_options, auth_policy
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
    parser.add_argument("--log-level", default="INFO",
                        choices=("DEBUG", "INFO", "WARNING", "ERROR"),
                        help="stderr logging level (default INFO: one line per tick)")
    add_auth_options(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Serve until stopped."""
    logging.basicConfig(level=args.log_level,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = load_config(args.config)
    updates = {k: v for k, v in (("port", args.port), ("mode", args.mode)) if v is not None}
    config = config.model_copy(update=updates)
    auth = auth_policy(args, config.host)
    daemon, actuator = build_daemon(config)

    def ready(url: str) -> None:
        print(f"fleetplan run: listening on {url} mode {config.mode} "
              f"period {config.period_s:g} s {auth.describe()}", flush=True)

    try:
        asyncio.run(run_forever(daemon, config.host, config.port, ready, auth))
    finally:
        close = getattr(actuator, "close", None)
        if callable(close):
            with contextlib.suppress(Exception):
                close()
    return 0
