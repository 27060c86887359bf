"""The `fleetplan` command line: a dispatcher over the command modules.

Each module in `controller/commands/` exposes `register(subparsers)`, which adds its
sub-command and sets `func(args) -> int` as the parser default. A `SpecError` (bad input)
becomes one line on stderr and exit code 2; nothing is written in that case, because
commands write their outputs atomically and only after all checks pass.

To extend: add a command module and list its name in `COMMANDS`.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from types import ModuleType

from specs.errors import EXIT_BAD_INPUT, SpecError
from specs.registry import UnknownNameError

COMMANDS = (
    "validate", "size", "schema", "optimize", "worker", "loadgen", "router", "tune", "run", "up",
    "evaluate",
)
"""Command modules under `controller.commands`, in the order `--help` lists them."""


def _command(name: str) -> ModuleType:
    return importlib.import_module(f"controller.commands.{name}")


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The argument parser with every sub-command, or just `only` (imports are lazy, so
    `fleetplan worker` does not pay for the optimizer's or the tuner's imports)."""
    parser = argparse.ArgumentParser(
        prog="fleetplan",
        description="Keep an LLM inference fleet on the cheapest accelerator mix that meets "
        "every service class's latency targets.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in (only,) if only else COMMANDS:
        _command(name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the process exit code."""
    words = list(sys.argv[1:] if argv is None else argv)
    first = next((w for w in words if not w.startswith("-")), None)
    args = build_parser(first if first in COMMANDS else None).parse_args(words)
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
