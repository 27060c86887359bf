"""The error vocabulary of fleetplan's documents.

`SpecError` is a user error in an input document: it names the file, the JSON path
inside it, what was wrong and (optionally) a hint. Command-line entry points turn it
into a one-line message and exit code 2 (`EXIT_BAD_INPUT`) before writing anything.

To extend: raise `SpecError` with the narrowest JSON path you know; use
`json_path()` to build paths from pydantic-style location tuples.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

EXIT_BAD_INPUT = 2


def json_path(loc: Iterable[str | int]) -> str:
    """Render a location tuple such as ('servers', 3, 'load') as `$.servers[3].load`."""
    out = "$"
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


class SpecError(Exception):
    """Bad input: which file, where in it (JSON path), what was expected."""

    def __init__(
        self,
        message: str,
        *,
        json_path: str = "$",
        file: str | Path | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.json_path = json_path
        self.file = str(file) if file is not None else None
        self.hint = hint

    def with_file(self, file: str | Path) -> SpecError:
        """Return the same error, attributed to `file` (keeps an already known file)."""
        if self.file is not None:
            return self
        return SpecError(self.message, json_path=self.json_path, file=file, hint=self.hint)

    def __str__(self) -> str:
        where = f"{self.file}: " if self.file else ""
        text = f"{where}{self.json_path}: {self.message}"
        if self.hint:
            text += f" ({self.hint})"
        return text
