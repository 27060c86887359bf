"""Recorded measurements for offline calibration: one JSON object per line.

Each line is one measurement of one replica, as `fleetplan tune` reads it:

    {"model": "llama_3_1_8b", "accelerator": "H100", "arrival_rate_rpm": 240,
     "in_tokens": 512, "out_tokens": 256, "max_batch": 64, "ttft_ms": 41.2,
     "itl_ms": 9.8, "running": 18.5}

`arrival_rate_rpm` is per replica, in requests per minute (inferno's unit); `running`
(mean requests in the batch) and `max_queue` are optional. Unknown keys are errors, so a
typo does not silently drop a figure. Blank lines and lines starting with `#` are skipped.
Every problem is a `SpecError` naming the file, the line and the field.

To extend: add an optional field to `MeasurementRecord` and carry it into
`Observation` in `to_observation`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from specs.errors import SpecError, json_path
from tuner.observation import Observation


class MeasurementRecord(BaseModel):
    """One line of a measurements file."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    model: str = Field(min_length=1, description="Model name.")
    accelerator: str = Field(min_length=1, description="Accelerator name.")
    arrival_rate_rpm: float = Field(gt=0, description="Arrival rate per replica, requests/min.")
    in_tokens: float = Field(ge=0, description="Mean input tokens per request.")
    out_tokens: float = Field(ge=1, description="Mean output tokens per request.")
    max_batch: int = Field(ge=1, description="Max batch size of the replica.")
    ttft_ms: float = Field(gt=0, description="Mean time to first token, ms.")
    itl_ms: float = Field(gt=0, description="Mean inter-token latency, ms.")
    running: float | None = Field(None, gt=0, description="Mean requests in the batch.")
    max_queue: int | None = Field(None, ge=0, description="Waiting-queue bound, if known.")

    def to_observation(self) -> Observation:
        """The tuner's observation (rate converted to requests per second)."""
        return Observation(
            model=self.model, accelerator=self.accelerator,
            arrival_rate_rps=self.arrival_rate_rpm / 60.0, in_tokens=self.in_tokens,
            out_tokens=self.out_tokens, max_batch=self.max_batch, ttft_ms=self.ttft_ms,
            itl_ms=self.itl_ms, running=self.running, max_queue=self.max_queue,
        )


def _record(text: str, line: int, file: Path | None) -> MeasurementRecord:
    where = f"line {line}"
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise SpecError(f"{where}: invalid JSON ({exc.args[0]})", file=file) from None
    if not isinstance(document, dict):
        raise SpecError(f"{where}: expected a JSON object", file=file)
    try:
        return MeasurementRecord.model_validate(document)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = list(first["loc"])
        message = first["msg"]
        if first["type"] == "extra_forbidden":
            message = f"unknown field {loc[-1]!r}"
        elif first["type"] == "missing":
            message = f"missing field {loc[-1]!r}"
        raise SpecError(f"{where}: {message}", json_path=json_path(loc), file=file,
                        hint="see `fleetplan tune --help` for the fields") from None


def parse_records(lines: Iterable[str], file: Path | None = None) -> list[Observation]:
    """Observations from the lines of a measurements file, in order."""
    observations = []
    for number, raw in enumerate(lines, start=1):
        text = raw.strip()
        if not text or text.startswith("#"):
            continue
        observations.append(_record(text, number, file).to_observation())
    if not observations:
        raise SpecError("no measurements in the file", file=file,
                        hint="one JSON object per line")
    return observations
