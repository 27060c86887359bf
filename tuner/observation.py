"""What the tuner learns from: one measurement of one replica of a model on an accelerator.

An `Observation` is the tuner's own input type, so the tuner does not depend on the
collector: the collector (`collector.observations`) or the `fleetplan tune` command turn
their data into observations. Each carries the operating point the queue model needs
(per-replica arrival rate, mean input and output tokens, max batch, optionally the max
queue and token budget) and what was measured there: mean TTFT, mean ITL and, when known,
the mean number of requests in the running batch.

To extend: add an optional field with a default (and a description); the observation
function (`tuner.observe`) decides whether to use it.
"""

from __future__ import annotations

from typing import NamedTuple

from pydantic import BaseModel, ConfigDict, Field


class ProfileKey(NamedTuple):
    """A profile's identity: the model and the accelerator it runs on."""

    model: str
    accelerator: str

    def __str__(self) -> str:
        return f"{self.model} on {self.accelerator}"


class Observation(BaseModel):
    """One measurement of one replica (means over a collection window)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    model: str = Field(min_length=1, description="Model name, as in the spec's profiles.")
    accelerator: str = Field(min_length=1, description="Accelerator the replica runs on.")
    arrival_rate_rps: float = Field(gt=0, description="Arrival rate per replica, requests/s.")
    in_tokens: float = Field(ge=0, description="Mean input (prompt) tokens per request.")
    out_tokens: float = Field(ge=1, description="Mean output tokens per request.")
    max_batch: int = Field(ge=1, description="Max batch size the replica ran with.")
    ttft_ms: float = Field(gt=0, description="Measured mean time to first token, ms.")
    itl_ms: float = Field(gt=0, description="Measured mean inter-token latency, ms.")
    running: float | None = Field(
        None, gt=0, description="Measured mean requests in the running batch (None: unknown)."
    )
    max_queue: int | None = Field(
        None, ge=0, description="Waiting-queue bound (None: the queue model's default)."
    )
    token_budget: int | None = Field(
        None, ge=1, description="Tokens per iteration (None: the queue model's default)."
    )

    @property
    def key(self) -> ProfileKey:
        """The (model, accelerator) pair this observation is about."""
        return ProfileKey(self.model, self.accelerator)
