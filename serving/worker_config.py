"""How an emulated worker is configured from a fleet spec.

`worker_settings(spec, model, accelerator, ...)` picks the profile of the model on the
accelerator, the service-class priorities and the KV capacity, and returns the
`WorkerSettings` the HTTP worker (`serving.worker`) runs with. A missing profile is a
`SpecError` listing the pairs the spec has.

KV capacity (tokens), unless given: max batch x tokens per request, where max batch is
the larger of the profile's ceiling and the configured max batch (so raising max batch
live up to the ceiling is not blocked by memory), and tokens per request is the largest
mean input + output over the spec's servers of that model, or
`DEFAULT_TOKENS_PER_REQUEST` when the spec has none. It is a documented stand-in for the
accelerator's memory: fleetplan's profiles carry no memory size.

Context length (`max_model_len`, vLLM's name; `fleetplan worker --max-model-len`): the
longest request, prompt plus output tokens, the worker accepts; `GET /v1/models` reports
it and a longer request is a 400, as vLLM answers. Default: `DEFAULT_MAX_MODEL_LEN`, or
the KV capacity where that is smaller (a request must fit in the KV cache); a configured
context larger than the KV capacity is a `SpecError`, as vLLM refuses to start then.

To extend: a new worker option becomes a `WorkerSettings` field with a default and a
keyword of `worker_settings`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from queue_models.engine import LOWEST_PRIORITY, EngineConfig
from serving.auth import AuthPolicy
from serving.http import BodyLimits
from serving.overload import DEFAULT_MAX_QUEUE_WAIT_S
from specs.documents import FleetSpec, Profile
from specs.errors import SpecError

DEFAULT_TOKENS_PER_REQUEST = 2048
"""Tokens per request assumed for the default KV capacity when the spec has no server."""
DEFAULT_MAX_TOKENS = 16
"""Output tokens when a request names no max_tokens (the OpenAI completions default)."""
DEFAULT_MAX_MODEL_LEN = 131072
"""Context length (prompt + output tokens) of a worker not given one (Llama 3.1's 128k)."""


@dataclass(frozen=True)
class WorkerSettings:
    """Everything an emulated worker needs; built by `worker_settings`."""

    model: str
    accelerator: str
    engine: EngineConfig
    served_model_name: str
    class_priorities: Mapping[str, int] = field(default_factory=dict)
    default_max_tokens: int = DEFAULT_MAX_TOKENS
    context_tokens: int = DEFAULT_MAX_MODEL_LEN
    """The configured context length (`--max-model-len`)."""
    body: BodyLimits = field(default_factory=BodyLimits)
    max_queue_wait_s: float | None = DEFAULT_MAX_QUEUE_WAIT_S
    """429 when a request's expected wait for a batch slot exceeds this (None: no bound;
    `serving.overload`)."""
    auth: AuthPolicy = field(default_factory=AuthPolicy)
    """Who may call the state-changing /admin endpoints (`serving.auth`)."""

    @property
    def max_model_len(self) -> int:
        """Longest request (prompt + output tokens) the worker accepts: the configured
        context, or the KV capacity where that is smaller."""
        kv = self.engine.kv_capacity_tokens
        return min(self.context_tokens, kv) if kv else self.context_tokens

    def priority(self, service_class: str | None) -> int:
        """The priority of a service class; unknown or missing -> `LOWEST_PRIORITY`."""
        if not service_class:
            return LOWEST_PRIORITY
        found = self.class_priorities.get(service_class)
        if found is None:
            folded = {k.casefold(): v for k, v in self.class_priorities.items()}
            found = folded.get(service_class.casefold(), LOWEST_PRIORITY)
        return found


def find_profile(spec: FleetSpec, model: str, accelerator: str, source: str | Path) -> Profile:
    """The profile of `model` on `accelerator`, or a `SpecError` saying what there is."""
    profile = spec.profile(model, accelerator)
    if profile is None:
        on = sorted(p.accelerator for p in spec.profiles_for(model))
        hint = (f"{model} has profiles on: {', '.join(on)}" if on else
                "models with profiles: " + (", ".join(sorted({p.model for p in spec.profiles}))
                                            or "(none)"))
        raise SpecError(f"no profile for model {model!r} on accelerator {accelerator!r}",
                        json_path="$.profiles", file=source, hint=hint)
    return profile


def default_kv_capacity(spec: FleetSpec, profile: Profile, max_batch: int) -> int:
    """Max batch (at least the profile's ceiling) x tokens per request (see the docstring)."""
    sizes = [s.load.in_tokens + s.load.out_tokens for s in spec.servers
             if s.model == profile.model]
    per_request = math.ceil(max(sizes)) if sizes and max(sizes) > 0 else DEFAULT_TOKENS_PER_REQUEST
    return max(profile.max_batch, max_batch) * per_request


def worker_settings(
    spec: FleetSpec,
    model: str,
    accelerator: str,
    *,
    source: str | Path = "<spec>",
    max_batch: int | None = None,
    max_queue: int | None = None,
    kv_capacity_tokens: int | None = None,
    token_budget: int | None = None,
    served_model_name: str | None = None,
    default_max_tokens: int = DEFAULT_MAX_TOKENS,
    max_model_len: int | None = None,
) -> WorkerSettings:
    """Settings of a worker emulating `model` on `accelerator` as profiled in `spec`."""
    profile = find_profile(spec, model, accelerator, source)
    batch = max_batch or profile.max_batch
    kv = kv_capacity_tokens or default_kv_capacity(spec, profile, batch)
    if max_model_len is not None and max_model_len > kv:
        raise SpecError(f"a context of {max_model_len} tokens does not fit in the KV cache "
                        f"of {kv} tokens", json_path="--max-model-len",
                        hint="lower --max-model-len or raise --kv-capacity-tokens")
    engine = EngineConfig.from_profile(
        profile, max_batch=batch, max_queue=max_queue, token_budget=token_budget,
        kv_capacity_tokens=kv,
    )
    return WorkerSettings(
        model=model, accelerator=accelerator, engine=engine,
        served_model_name=served_model_name or model,
        class_priorities={c.name: c.priority for c in spec.service_classes},
        default_max_tokens=default_max_tokens,
        context_tokens=max_model_len or DEFAULT_MAX_MODEL_LEN,
    )
