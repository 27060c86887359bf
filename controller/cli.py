"""The `fleetplan` command line: a dispatcher over the command modules.

Each module in `controller/commands/` exposes `register(subparsers)`, which adds its
sub-command and sets `func(args) -> int` as the parser default. A `SpecError` (bad input)
becomes one line on stderr and exit code 2; nothing is written in that case, because
commands write their outputs atomically and only after all checks pass.

A closed standard output (`fleetplan optimize ... | head`) is not an error to report: the
command stops quietly, with no traceback, and exits with 141 (`EXIT_CLOSED_PIPE`, 128 +
SIGPIPE, what a shell reports for a command a closed pipe stopped), so `set -o pipefail`
scripts still see that the output was cut short. Every sub-command's `--help` shows the
defaults of its options (`controller.commands.helptext`).

To extend: add a command module and list its name in `COMMANDS`.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence
from types import ModuleType

from controller.commands.helptext import CommandParser
from specs.errors import EXIT_BAD_INPUT, SpecError
from specs.registry import UnknownNameError

COMMANDS = (
    "up", "validate", "size", "schema", "optimize", "worker", "loadgen", "router", "tune", "run",
    "evaluate",
)
"""Command modules under `controller.commands`, in the order `--help` lists them (`up`,
the whole loop on this machine, first: it is where a new user starts)."""

EXIT_CLOSED_PIPE = 141
"""Exit code when standard output was closed early (128 + SIGPIPE, as a shell reports)."""


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
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True,
                                       parser_class=CommandParser)
    for name in (only,) if only else COMMANDS:
        _command(name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the process exit code."""
    words = list(sys.argv[1:] if argv is None else argv)
    first = next((w for w in words if not w.startswith("-")), None)
    try:
        args = build_parser(first if first in COMMANDS else None).parse_args(words)
        code = int(args.func(args))
        sys.stdout.flush()  # a closed pipe shows here, not in the interpreter's exit
        return code
    except BrokenPipeError:
        return _closed_pipe()
    except SpecError as exc:
        print(f"fleetplan: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except UnknownNameError as exc:
        print(f"fleetplan: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT


def _closed_pipe() -> int:
    """Point stdout at the null device (so the interpreter's final flush cannot fail
    again) and return `EXIT_CLOSED_PIPE`."""
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, sys.stdout.fileno())
    os.close(null)
    return EXIT_CLOSED_PIPE


if __name__ == "__main__":
    sys.exit(main())
