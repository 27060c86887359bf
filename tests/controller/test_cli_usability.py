"""The command line as a new user meets it: closed pipes, `--help` texts and their order."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from controller.cli import COMMANDS, EXIT_CLOSED_PIPE, build_parser

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "specs" / "examples" / "heterogeneous-fleet.json"


def _closed_pipe_run(*words: str) -> tuple[int, str]:
    """Run `fleetplan WORDS` with stdout a pipe whose reader has already gone."""
    process = subprocess.Popen(
        [sys.executable, "-m", "controller.cli", *words], cwd=REPO,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert process.stdout is not None and process.stderr is not None
        process.stdout.close()  # like `| head` exiting before the command writes
        err = process.stderr.read().decode()
        return process.wait(timeout=120), err
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


@pytest.mark.parametrize("words", [
    ("optimize", str(EXAMPLE), "--no-timings"),
    ("validate", str(EXAMPLE)),
    ("schema",),
])
def test_closed_pipe_exits_quietly(words: tuple[str, ...]) -> None:
    code, err = _closed_pipe_run(*words)
    assert code == EXIT_CLOSED_PIPE == 141
    assert err == ""


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def test_up_is_listed_first() -> None:
    assert COMMANDS[0] == "up"
    text = build_parser().format_help()
    listed = [line.split()[0] for line in text.splitlines()
              if line.startswith("    ") and line.split()[0] in COMMANDS]
    assert listed[0] == "up" and sorted(listed) == sorted(COMMANDS)


@pytest.mark.parametrize("command", COMMANDS)
def test_every_option_has_help_and_shows_its_default(command: str) -> None:
    sub = _subparsers(build_parser(command))[command]
    text = " ".join(sub.format_help().split())
    for action in sub._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        name = "/".join(action.option_strings) or action.dest
        assert action.help, f"{command} {name} has no help"
        default = action.default
        if default not in (None, False, [], argparse.SUPPRESS) and action.option_strings:
            assert "default" in action.help.lower() or f"(default: {default})" in text, (
                f"{command} {name} does not show its default {default!r}")

