"""The error vocabulary of fleetplan's documents.

`SpecError` is a user error in an input document: it names the file, the JSON path
inside it, what was wrong and (optionally) a hint. Command-line entry points turn it
into a one-line message and exit code 2 (`EXIT_BAD_INPUT`) before writing anything.

To extend: raise `SpecError` with the narrowest JSON path you know; use
`json_path()` to build paths from pydantic-style location tuples and
`pydantic_message()` to word a pydantic error (add a wording to `_EXPECTED`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

EXIT_BAD_INPUT = 2

_EXPECTED = {
    "int_type": "expected an integer (a JSON number without a fraction)",
    "float_type": "expected a number",
    "bool_type": "expected true or false",
    "string_type": "expected a string",
}
"""House wording of pydantic's strict type errors."""
_BOUND_HINT = "an upper bound of fleetplan's documents, see specs/limits.py"


def json_path(loc: Iterable[str | int]) -> str:
    """Render a location tuple such as ('servers', 3, 'load') as `$.servers[3].load`."""
    out = "$"
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def _describe(value: Any) -> str:
    return f"the string {value!r}" if isinstance(value, str) else repr(value)


def pydantic_message(error: Mapping[str, Any]) -> tuple[str, str | None]:
    """(message, hint) for one entry of pydantic's `ValidationError.errors()`: what was
    expected and what was found; upper-bound errors point at `specs.limits`."""
    kind, loc = error["type"], error.get("loc") or ("?",)
    if kind == "extra_forbidden":
        return f"unknown field {loc[-1]!r}", None
    if kind == "missing":
        return f"missing field {loc[-1]!r}", None
    message = _EXPECTED.get(kind, error["msg"])
    if "input" in error and kind != "value_error":
        message = f"{message}, got {_describe(error['input'])}"
    return message, _BOUND_HINT if kind in ("less_than_equal", "less_than") else None


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
