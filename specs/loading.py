"""Load any fleet document fleetplan reads, and write documents atomically.

`load_fleet(path)` accepts a native document, an inferno `system-data.json` envelope or a
directory of inferno's part files, and returns a `LoadedFleet` (the native `FleetSpec` and
which format it came from). Every problem is a `SpecError` naming the file and JSON path.
`parse_native` validates in pydantic's strict mode: a JSON string is not a number ("3"
for an integer field is an error, not 3), a fraction is not an integer, 0/1 are not
booleans; an integer is a number. Upper bounds are in `specs.limits`.
`write_json_atomic` writes through a temporary file and a rename, so a failed run never
leaves a half-written output.

To extend with another input format: detect it in `load_fleet` and return a `FleetSpec`.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ValidationError

from specs.documents import FleetSpec
from specs.errors import SpecError, json_path, pydantic_message
from specs.inferno import is_inferno_envelope, read_inferno_directory, read_inferno_envelope
from specs.jsonnode import read_json

Format = Literal["native", "inferno"]


@dataclass(frozen=True)
class LoadedFleet:
    """A fleet spec and the format it was read from."""

    spec: FleetSpec
    format: Format
    path: Path


def validation_error(exc: ValidationError, file: Path | None) -> SpecError:
    """The first pydantic error as a `SpecError` with a JSON path."""
    first = exc.errors()[0]
    loc = list(first["loc"])
    message, hint = pydantic_message(first)
    return SpecError(message, json_path=json_path(loc), file=file, hint=hint)


def parse_native(document: Any, file: Path | None, model: type[BaseModel] = FleetSpec) -> Any:
    """Validate a parsed JSON document as a native `model` (a `FleetSpec` by default),
    strictly (see the module docstring)."""
    try:
        return model.model_validate(document, strict=True)
    except ValidationError as exc:
        raise validation_error(exc, file) from None
    except SpecError as exc:
        raise exc.with_file(file) if file else exc from None


def load_fleet(path: str | Path) -> LoadedFleet:
    """Read a native document, an inferno envelope, or a directory of inferno files."""
    path = Path(path)
    if path.is_dir():
        return LoadedFleet(read_inferno_directory(path), "inferno", path)
    if not path.exists():
        raise SpecError("no such file or directory", file=path)
    document = read_json(path)
    if is_inferno_envelope(document):
        return LoadedFleet(read_inferno_envelope(path), "inferno", path)
    if not isinstance(document, dict):
        raise SpecError("expected a JSON object", file=path)
    return LoadedFleet(parse_native(document, path), "native", path)


def dump_json(document: BaseModel | dict[str, Any]) -> str:
    """Deterministic JSON text of a document (stable key order as modelled, 2-space indent)."""
    data = document.model_dump(mode="json") if isinstance(document, BaseModel) else document
    return json.dumps(data, indent=2, allow_nan=False) + "\n"


def write_json_atomic(path: str | Path, document: BaseModel | dict[str, Any]) -> None:
    """Write JSON to `path` through a temporary file in the same folder and a rename."""
    path = Path(path)
    text = dump_json(document)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
