"""The router's inputs: the backends document (file or plan URL) and its settings.

The backends document is what `--backends FILE` holds and what the controller's plan
endpoint (`--plan URL`) serves:

    {"backends": [{"url": "http://127.0.0.1:8001", "model": "llama_3_1_8b",
                   "variant": "llama-h100", "weight": 1.0, "max_batch": 128}],
     "policies": {"llama_3_1_8b": "least_loaded"}}

`url` and `model` are required; `variant` (default: the URL), `weight` (the variant's
router weight, >= 0), `max_batch` (the replica's max batch, which `least_loaded` divides
by), `service_class` (serve only that class's requests when the model has backends for
it) are optional; other per-backend fields are allowed and kept. `policies` (optional)
names a policy per model. Other top-level keys (the controller adds `plan`) are ignored. Both sources go through `parse_backends`, so a
bad document is a `SpecError` with the file (or URL) and the JSON path.

Field types are strict (a weight of "1" is an error, not 1). Checks beyond the field
types: URLs are http(s) with a host; a (url, model) pair appears
once; backends of one variant agree on their weight; policy names are registered.

To extend: a new per-backend field gets a typed `Field(description=...)` on
`BackendEntry` and is copied onto `serving.routing.Backend` by the pool.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from serving.auth import AllowList, AuthPolicy
from serving.http import BodyLimits
from serving.overload import DEFAULT_MAX_QUEUE_WAIT_S
from serving.routing import POLICIES, PolicyOptions
from specs.errors import SpecError
from specs.jsonnode import read_json
from specs.loading import validation_error

SESSION_HEADER = "x-session-id"
SERVICE_CLASS_HEADER = "x-service-class"
BACKEND_HEADER = "x-fleetplan-backend"
"""Response header naming the backend that answered (for clients, tests and debugging)."""


class BackendEntry(BaseModel):
    """One replica (or one Service URL) serving one model."""

    model_config = ConfigDict(extra="allow", frozen=True, allow_inf_nan=False)

    url: str = Field(min_length=1, description="Base URL, e.g. 'http://10.0.0.5:8000'.")
    model: str = Field(min_length=1, description="Model name requests carry in `model`.")
    variant: str | None = Field(None, min_length=1,
                                description="Variant (Deployment) name; default: the URL.")
    weight: float | None = Field(None, ge=0, description="The variant's router weight.")
    max_batch: int | None = Field(
        None, ge=1, description="Requests the replica runs at once (its max batch); "
        "least_loaded compares outstanding requests per max-batch slot.")
    service_class: str | None = Field(
        None, min_length=1, description="Serve this class only (when the model has backends "
        "for it); default: any class.")

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        parsed = urlparse(value)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ValueError(f"expected an http(s) URL with a host, got {value!r}")
        return value.rstrip("/")

    @property
    def variant_name(self) -> str:
        """The variant, or the URL when none is given."""
        return self.variant or self.url


class BackendsDocument(BaseModel):
    """The backends document (unknown top-level keys are ignored)."""

    model_config = ConfigDict(extra="ignore", frozen=True, allow_inf_nan=False)

    backends: list[BackendEntry] = Field(description="Replicas to route to.")
    policies: dict[str, str] = Field(default_factory=dict,
                                     description="Policy name per model.")


def _check(document: BackendsDocument, source: str) -> BackendsDocument:
    seen: dict[tuple[str, str], int] = {}
    weights: dict[tuple[str, str], tuple[float | None, int]] = {}
    for i, entry in enumerate(document.backends):
        key = (entry.url, entry.model)
        if key in seen:
            raise SpecError(f"backend {entry.url} for model {entry.model!r} is listed twice "
                            f"(also at $.backends[{seen[key]}])",
                            json_path=f"$.backends[{i}]", file=source)
        seen[key] = i
        variant = (entry.model, entry.variant_name)
        first = weights.setdefault(variant, (entry.weight, i))
        if first[0] != entry.weight:
            raise SpecError(f"backends of variant {entry.variant_name!r} disagree on weight "
                            f"({first[0]} at $.backends[{first[1]}], {entry.weight} here)",
                            json_path=f"$.backends[{i}].weight", file=source,
                            hint="a weight is the variant's share; give each replica the same")
    for model, name in document.policies.items():
        if name not in POLICIES:
            raise SpecError(f"unknown router policy {name!r}", json_path=f"$.policies.{model}",
                            file=source, hint="known: " + ", ".join(POLICIES.names()))
    return document


def parse_backends(data: Any, source: str) -> BackendsDocument:
    """Validate a parsed backends document; `source` (a file or URL) names it in errors."""
    if not isinstance(data, dict):
        raise SpecError("expected a JSON object with a 'backends' list", file=source)
    try:
        document = BackendsDocument.model_validate(data, strict=True)
    except ValidationError as exc:
        raise validation_error(exc, None).with_file(source) from None
    return _check(document, source)


def load_backends(path: str | Path) -> BackendsDocument:
    """Read and validate a backends file (`SpecError` on any problem)."""
    path = Path(path)
    if not path.is_file():
        raise SpecError("no such backends file", file=path)
    return parse_backends(read_json(path), str(path))


@dataclass(frozen=True)
class RouterSettings:
    """How the router behaves (built by `fleetplan router` from its options)."""

    default_policy: str | None = None
    """Policy for models neither `model_policies` nor the document name; None:
    `least_loaded` when the model's backends come from a plan (they carry a weight or a
    max batch), else `least_outstanding`."""
    model_policies: Mapping[str, str] = field(default_factory=dict)
    policy_options: PolicyOptions = field(default_factory=PolicyOptions)
    max_retries: int = 2
    """Further attempts on other replicas after a failure before the first byte."""
    max_outstanding: int | None = 256
    """Admission: answer 429 when every candidate has this many requests in flight."""
    max_queue_wait_s: float | None = DEFAULT_MAX_QUEUE_WAIT_S
    """Admission: answer 429 when every candidate's expected wait for a batch slot exceeds
    this, s (None: no bound; `serving.router_admission.over_wait_bound`)."""
    retry_after_s: int = 1
    tenant_header: str | None = None
    """Per-tenant fair share under admission pressure (off when None)."""
    session_header: str = SESSION_HEADER
    cache_size: int = 0
    """Exact-match response cache entries (0: off)."""
    cache_ttl_s: float = 60.0
    health_interval_s: float = 2.0
    unhealthy_after: int = 2
    """Consecutive failed health checks that eject a backend."""
    errors_to_eject: int = 3
    """Consecutive 5xx answers that eject a backend."""
    heartbeat_timeout_s: float = 10.0
    connect_timeout_s: float = 3.0
    read_timeout_s: float = 600.0
    poll_interval_s: float = 1.0
    seed: int | None = None
    backend_header: bool = True
    body: BodyLimits = field(default_factory=BodyLimits)
    """Request body bounds (`serving.http`)."""
    auth: AuthPolicy = field(default_factory=AuthPolicy)
    """Who may register and remove backends (`serving.auth`)."""
    register_allow: AllowList = field(default_factory=AllowList)
    """Backend hosts `POST /router/backends` may register (default: loopback only)."""

    def policy_name(self, model: str, document_policies: Mapping[str, str],
                    planned: bool) -> str:
        """The policy for `model`: CLI per-model, document, `--policy`, then the default
        (`planned`: the model's backends carry a weight or a max batch)."""
        name = self.model_policies.get(model) or document_policies.get(model)
        name = name or self.default_policy
        return name or ("least_loaded" if planned else "least_outstanding")
