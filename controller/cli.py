"""The `fleetplan` command line: a dispatcher over the command modules.

Each module in `controller/commands/` exposes `register(subparsers)`, which adds its
sub-command and sets `func(args) -> int` as the parser default. A `SpecError` (bad input)
becomes one line on stderr and exit code 2; nothing is written in that case, because
commands write their outputs atomically and only after all checks pass.

To extend: add a command module and list it in `COMMANDS`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from controller.commands import loadgen, optimize, schema, size, validate, worker
from specs.errors import EXIT_BAD_INPUT, SpecError
from specs.registry import UnknownNameError

COMMANDS = (validate, size, schema, worker, loadgen, optimize)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every registered sub-command."""
    parser = argparse.ArgumentParser(
        prog="fleetplan",
        description="Keep an LLM inference fleet on the cheapest accelerator mix that meets "
        "every service class's latency targets.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in COMMANDS:
        command.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the process exit code."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except SpecError as exc:
        print(f"fleetplan: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except UnknownNameError as exc:
        print(f"fleetplan: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())
