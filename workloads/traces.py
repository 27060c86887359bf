"""Readers for public LLM request traces: Azure LLM inference (CSV) and Mooncake (JSON lines).

Both become a list of `TraceRecord` (arrival time in seconds from the first request,
prompt tokens, output tokens), sorted by time.

- Azure (AzurePublicDataset, 2023): header `TIMESTAMP,ContextTokens,GeneratedTokens`,
  timestamps like `2023-11-16 18:17:03.9799600` (sub-microsecond digits are dropped).
- Mooncake (FAST'25 traces): one object per line with `timestamp` (ms),
  `input_length`, `output_length` (other keys, e.g. `hash_ids`, are ignored).

A malformed file is a `SpecError` naming the file, the line and the field. Output
lengths of 0 become 1 (a request always generates a token).

To extend with another trace format: write `read_<format>(path) -> list[TraceRecord]` and
add it to `READERS` (and, if it has its own file extension, to `_BY_SUFFIX`).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from specs.errors import SpecError


@dataclass(frozen=True, slots=True)
class TraceRecord:
    """One request of a trace."""

    time_s: float
    prompt_tokens: int
    output_tokens: int


def _open(path: Path) -> Any:
    if not path.is_file():
        raise SpecError("no such trace file", file=path)
    return path.open(encoding="utf-8", newline="")


def _int(value: Any, field: str, path: Path, line: int) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise SpecError(f"{field}: expected an integer, got {value!r}",
                        json_path=f"line {line}", file=path) from None
    if number < 0:
        raise SpecError(f"{field}: expected >= 0, got {number}", json_path=f"line {line}",
                        file=path)
    return number


def _timestamp(value: str, path: Path, line: int) -> datetime:
    text = value.strip()
    if "." in text:  # datetime accepts at most 6 fractional digits
        head, frac = text.split(".", 1)
        text = f"{head}.{frac[:6]}"
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise SpecError(f"TIMESTAMP: expected a date and time, got {value!r}",
                        json_path=f"line {line}", file=path) from None


def read_azure(path: str | Path) -> list[TraceRecord]:
    """Read an Azure LLM inference trace CSV."""
    path = Path(path)
    with _open(path) as handle:
        reader = csv.DictReader(handle)
        need = {"TIMESTAMP", "ContextTokens", "GeneratedTokens"}
        if not need <= set(reader.fieldnames or ()):
            raise SpecError(f"expected columns {', '.join(sorted(need))}, got "
                            f"{', '.join(reader.fieldnames or ()) or 'none'}",
                            json_path="line 1", file=path)
        rows = []
        origin: datetime | None = None
        for line, row in enumerate(reader, start=2):
            stamp = _timestamp(row["TIMESTAMP"] or "", path, line)
            origin = origin or stamp
            t = (stamp - origin).total_seconds()  # exact to the microsecond
            rows.append((t, _int(row["ContextTokens"], "ContextTokens", path, line),
                         _int(row["GeneratedTokens"], "GeneratedTokens", path, line)))
    return _records(rows, path)


def read_mooncake(path: str | Path) -> list[TraceRecord]:
    """Read a Mooncake trace (JSON lines)."""
    path = Path(path)
    rows = []
    with _open(path) as handle:
        for line, text in enumerate(handle, start=1):
            if not text.strip():
                continue
            try:
                item = json.loads(text)
            except ValueError as exc:
                raise SpecError(f"invalid JSON: {exc}", json_path=f"line {line}",
                                file=path) from None
            if not isinstance(item, dict):
                raise SpecError("expected a JSON object", json_path=f"line {line}", file=path)
            fields = [_int(item.get(k), k, path, line)
                      for k in ("timestamp", "input_length", "output_length")]
            rows.append((fields[0] / 1000.0, fields[1], fields[2]))
    return _records(rows, path)


def _records(rows: list[tuple[float, int, int]], path: Path) -> list[TraceRecord]:
    if not rows:
        raise SpecError("the trace has no requests", file=path)
    rows.sort(key=lambda r: r[0])
    t0 = rows[0][0]
    return [TraceRecord(t - t0, prompt, max(output, 1)) for t, prompt, output in rows]


READERS: dict[str, Callable[[str | Path], list[TraceRecord]]] = {
    "azure": read_azure,
    "mooncake": read_mooncake,
}
_BY_SUFFIX = {".csv": "azure", ".jsonl": "mooncake", ".json": "mooncake"}


def read_trace(path: str | Path, trace_format: str | None = None) -> list[TraceRecord]:
    """Read a trace; the format defaults from the extension (.csv azure, .jsonl mooncake)."""
    path = Path(path)
    name = trace_format or _BY_SUFFIX.get(path.suffix.lower())
    if name not in READERS:
        raise SpecError(f"unknown trace format {name or path.suffix!r}", file=path,
                        hint=f"formats: {', '.join(sorted(READERS))}; pass --trace-format")
    return READERS[name](path)
