"""Command-line options every fleetplan server shares (worker, router, daemon).

- `--auth-token-file PATH` / the `FLEETPLAN_AUTH_TOKEN` environment variable: the bearer
  token state-changing requests must carry; `--insecure-no-auth`: no check, refused
  unless the server binds a loopback address (`serving.auth`);
- `--max-body-mib`, `--max-buffered-mib`: bounds on request bodies (`serving.http`;
  the daemon reads no bodies worth bounding, so it has only the auth options).

To extend: add the option in `add_auth_options` or `add_body_options` and read it in
the matching function, so the servers keep the same spelling.
"""

from __future__ import annotations

import argparse

from controller.commands.argtypes import positive_float
from serving.auth import TOKEN_ENV, AuthPolicy, load_policy
from serving.http import MIB, BodyLimits
from specs.errors import SpecError


def add_auth_options(parser: argparse.ArgumentParser) -> None:
    """`--auth-token-file` and `--insecure-no-auth`."""
    parser.add_argument(
        "--auth-token-file", metavar="PATH",
        help=f"file holding the bearer token that state-changing requests must send "
        f"(default: the {TOKEN_ENV} environment variable; with neither, they are refused)")
    parser.add_argument(
        "--insecure-no-auth", action="store_true",
        help="accept state-changing requests without a token; allowed only when binding "
        "a loopback address")


def auth_policy(args: argparse.Namespace, host: str) -> AuthPolicy:
    """The auth policy from the options and the environment (`SpecError` on bad input)."""
    return load_policy(args.auth_token_file, args.insecure_no_auth, host)


def add_body_options(parser: argparse.ArgumentParser) -> None:
    """`--max-body-mib` and `--max-buffered-mib`."""
    defaults = BodyLimits()
    parser.add_argument(
        "--max-body-mib", type=positive_float, default=defaults.max_body_bytes / MIB,
        help="largest request body, MiB; larger ones get 413 (default %(default)g)")
    parser.add_argument(
        "--max-buffered-mib", type=positive_float, default=defaults.max_buffered_bytes / MIB,
        help="request bodies being read at once, MiB in all; beyond it a request waits "
        "briefly, then gets 503 (default %(default)g)")


def body_limits(args: argparse.Namespace) -> BodyLimits:
    """The body limits from the options (`SpecError` when they contradict)."""
    body, buffered = round(args.max_body_mib * MIB), round(args.max_buffered_mib * MIB)
    if buffered < body:
        raise SpecError("--max-buffered-mib must be at least --max-body-mib",
                        json_path="--max-buffered-mib")
    return BodyLimits(max_body_bytes=body, max_buffered_bytes=buffered)
