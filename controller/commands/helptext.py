"""How every `fleetplan` sub-command's `--help` looks: defaults shown the same way.

`CommandParser` is the parser class of the sub-commands (`cli.build_parser` passes it to
`add_subparsers`); it formats help with `DefaultsHelpFormatter`, which appends
"(default: X)" to an option's help unless the text already says what the default is
(it mentions "default") or there is none to show (None, False, an empty list). So a
command module writes `help="port"` with `default=8080` and `--help` shows
"port (default: 8080)"; where the default needs words ("default: the document's"), the
help text says it itself.

To extend: a command that needs preformatted text (an example document in its epilog)
passes `formatter_class=RawDescriptionDefaultsFormatter` to `add_parser`.
"""

from __future__ import annotations

import argparse
from typing import Any

_NOTHING_TO_SHOW = (None, False, argparse.SUPPRESS)


class DefaultsHelpFormatter(argparse.HelpFormatter):
    """Appends "(default: X)" to options whose help does not mention their default."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if ("default" in text.lower() or not action.option_strings
                or any(default is v for v in _NOTHING_TO_SHOW) or default == []):
            return text
        return f"{text} (default: %(default)s)"


class RawDescriptionDefaultsFormatter(argparse.RawDescriptionHelpFormatter,
                                       DefaultsHelpFormatter):
    """As `DefaultsHelpFormatter`, but the description and epilog keep their line breaks
    (for a command that shows an example document); wrap those texts by hand."""


class CommandParser(argparse.ArgumentParser):
    """A sub-command's parser: `DefaultsHelpFormatter` unless the command picks another."""

    def __init__(self, **kwargs: Any) -> None:
        if kwargs.get("formatter_class") in (None, argparse.HelpFormatter):
            kwargs["formatter_class"] = DefaultsHelpFormatter
        super().__init__(**kwargs)
