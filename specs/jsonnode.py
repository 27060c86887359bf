"""A JSON value with its file and path, for readers that report errors precisely.

`Node` wraps a parsed JSON value; `node.field("avgInTokens", float)` finds a key
case-insensitively and returns the value checked for type and finiteness, or raises
`SpecError` naming the file, the JSON path and what was expected. Used by the inferno
reader (whose documents are matched case-insensitively, as Go's encoding/json does).

To extend: add a typed accessor next to `field` (keep error wording: "expected X, got Y").
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from specs.errors import SpecError, pydantic_message

T = TypeVar("T")
D = TypeVar("D", bound=BaseModel)

_MISSING = object()
_TYPE_NAMES = {float: "a number", int: "a whole number", str: "a string", bool: "true or false"}


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not allowed in a document")


def read_json(path: Path) -> Any:
    """Parse a JSON file; unreadable or malformed files (and NaN/Infinity) are `SpecError`s."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SpecError(f"cannot read file: {exc.strerror or exc}", file=path) from None
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise SpecError(
            f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}", file=path
        ) from None
    except ValueError as exc:
        raise SpecError(str(exc), file=path, hint="use a finite number") from None


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return f"the string {value!r}"
    return repr(value)


class Node:
    """A JSON value located in a file at a JSON path."""

    def __init__(self, value: Any, file: Path | None, path: str = "$") -> None:
        self.value = value
        self.file = file
        self.path = path

    def error(self, message: str, hint: str | None = None, key: str | None = None) -> SpecError:
        """A `SpecError` at this node (or at its child `key`)."""
        where = f"{self.path}.{key}" if key else self.path
        return SpecError(message, json_path=where, file=self.file, hint=hint)

    def obj(self) -> dict[str, Any]:
        """This node's value, which must be an object."""
        if not isinstance(self.value, dict):
            raise self.error(f"expected an object, got {_describe(self.value)}")
        return self.value

    def child(self, key: str, *, required: bool = True) -> Node | None:
        """The child object/list under `key` (matched case-insensitively)."""
        found = self._lookup(key)
        if found is _MISSING or found[1] is None:
            if required:
                raise self.error(f"missing field {key!r}", key=key)
            return None
        real_key, value = found
        return Node(value, self.file, f"{self.path}.{real_key}")

    def items(self, key: str, *, required: bool = True) -> list[Node]:
        """The list under `key` as nodes (an absent optional list is empty)."""
        node = self.child(key, required=required)
        if node is None:
            return []
        if not isinstance(node.value, list):
            raise node.error(f"expected a list, got {_describe(node.value)}")
        return [Node(v, self.file, f"{node.path}[{i}]") for i, v in enumerate(node.value)]

    def field(self, key: str, kind: type[T], default: Any = _MISSING) -> T:
        """A scalar under `key`, checked against `kind` (int, float, str, bool)."""
        found = self._lookup(key)
        if found is _MISSING or found[1] is None:
            if default is _MISSING:
                raise self.error(f"missing field {key!r}, expected {_TYPE_NAMES[kind]}", key=key)
            return default
        real_key, value = found
        return self._check(value, kind, real_key)

    def _check(self, value: Any, kind: type[T], key: str) -> T:
        expected = _TYPE_NAMES[kind]
        ok = isinstance(value, kind) and not isinstance(value, bool) or (
            kind is bool and isinstance(value, bool)
        )
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            ok, value = True, float(value)
        if kind is int and isinstance(value, float) and value.is_integer():
            ok, value = True, int(value)
        if not ok:
            raise self.error(f"expected {expected}, got {_describe(value)}", key=key)
        if kind is float and not math.isfinite(value):
            raise self.error(f"expected a finite number, got {value}", key=key)
        return value  # type: ignore[return-value]

    def _lookup(self, key: str) -> Any:
        obj = self.obj()
        if key in obj:
            return key, obj[key]
        wanted = key.lower()
        for real_key, value in obj.items():
            if real_key.lower() == wanted:
                return real_key, value
        return _MISSING


def build_document(cls: type[D], node: Node, field_names: dict[str, str], **values: Any) -> D:
    """Construct a native document from values read at `node`; a validation error is
    reported at the node, with native field names translated by `field_names`."""
    try:
        return cls(**values)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = [str(p) for p in first["loc"] if not isinstance(p, int)]
        key = ".".join(field_names.get(p, p) for p in loc) or None
        message, hint = pydantic_message(first)
        raise node.error(message, hint=hint, key=key) from None
