"""What a plan asks the fleet to run: one `DesiredVariant` per (server, accelerator).

`desired_variants(plan, spec)` flattens a `Plan` into variants named by `variant_name`,
with the cards one replica needs (the profile's `units_per_replica` x the accelerator's
`multiplicity`), sorted by name so every actuator walks them in the same order.

Only servers that have an allocation in the plan are managed (`planned_servers`): a
server the optimizer could not serve (capacity, no feasible accelerator) has no
allocation and is left exactly as it runs, never scaled to zero (inferno zero-fills
them, which turns a capacity shortage into an outage). A planned server's variant that
the plan no longer lists is scaled to zero (`retired`).

To extend: a new per-variant setting is a `DesiredVariant` field filled here from the
plan or the spec; each actuator then decides how to enact it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from actuator.base import variant_name
from specs.documents import FleetSpec
from specs.plan import Plan, ServerAllocation, VariantAllocation

_LABEL_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class DesiredVariant:
    """One variant as the plan wants it."""

    name: str
    server: str
    model: str
    service_class: str
    accelerator: str
    card_type: str
    replicas: int
    max_batch: int
    router_weight: float
    cards_per_replica: int
    token_budget: int | None = None
    """Tokens per iteration (chunked prefill); None: not set, left as it runs."""


def label_value(text: str) -> str:
    """`text` as a valid Kubernetes label value (<= 63 of [A-Za-z0-9._-], alnum ends)."""
    value = _LABEL_UNSAFE.sub("-", text)[:63]
    return re.sub(r"^[^A-Za-z0-9]+|[^A-Za-z0-9]+$", "", value)


def cards_per_replica(spec: FleetSpec | None, model: str, variant: VariantAllocation) -> int:
    """Cards one replica uses: units per replica x cards per unit (from the spec), else
    the plan's cards / replicas, else 1."""
    if spec is not None:
        accelerators = {a.name: a for a in spec.accelerators}
        profile = spec.profile(model, variant.accelerator)
        accelerator = accelerators.get(variant.accelerator)
        if accelerator is not None:
            units = profile.units_per_replica if profile is not None else 1
            return units * accelerator.multiplicity
    if variant.replicas > 0 and variant.cards > 0:
        return max(1, variant.cards // variant.replicas)
    return 1


def _desired(allocation: ServerAllocation, variant: VariantAllocation,
             spec: FleetSpec | None) -> DesiredVariant:
    return DesiredVariant(
        name=variant_name(allocation.server, variant.accelerator),
        server=allocation.server, model=allocation.model,
        service_class=allocation.service_class, accelerator=variant.accelerator,
        card_type=variant.card_type, replicas=variant.replicas, max_batch=variant.max_batch,
        router_weight=variant.router_weight,
        cards_per_replica=cards_per_replica(spec, allocation.model, variant),
        token_budget=variant.token_budget,
    )


def desired_variants(plan: Plan, spec: FleetSpec | None = None) -> tuple[DesiredVariant, ...]:
    """Every variant the plan lists, sorted by name (several accelerators of one server
    mapping to the same name keep the first, in plan order)."""
    found: dict[str, DesiredVariant] = {}
    for allocation in plan.allocations:
        for variant in allocation.variants:
            desired = _desired(allocation, variant, spec)
            found.setdefault(desired.name, desired)
    return tuple(found[name] for name in sorted(found))


def planned_servers(plan: Plan) -> frozenset[str]:
    """Servers with an allocation in the plan: the only ones an actuator may change."""
    return frozenset(a.server for a in plan.allocations)


def retired(running: Iterable[tuple[str, str]], plan: Plan,
            desired: Iterable[DesiredVariant]) -> list[str]:
    """Names of running variants, given as (variant, server) pairs, whose server is in the
    plan but which the plan no longer lists: they are scaled to zero. Sorted."""
    servers = {label_value(s) for s in planned_servers(plan)}
    wanted = {d.name for d in desired}
    return sorted(name for name, server in running
                  if label_value(server) in servers and name not in wanted)
