"""Desired replicas per variant as Prometheus gauges, for an HPA or KEDA to act on.

In `metrics` mode an actuator changes nothing itself: it sets
`fleetplan_actuator_desired_replicas{variant, server, model, accelerator}` (and, for
dashboards, `fleetplan_actuator_desired_max_batch`,
`fleetplan_actuator_desired_token_budget` (variants whose plan sets one) and
`fleetplan_actuator_desired_router_weight`) from each plan, and a KEDA `ScaledObject`
(see `deploy/kubernetes/optional/keda-scaledobject.yaml`) or an HPA on an external metric
scales each variant's Deployment to it. The gauges live in the exporter's own registry
(no global state); the controller serves `exposition()` (or `registry`) on its `/metrics`
endpoint. Any mode may export them, so a dry run is visible on a dashboard.

Unlike a gauge built from the current plan alone, these keep a value for every variant
ever planned: variants of servers the plan does not allocate keep their last value (they
are not zero-filled, see `actuator.desired`; an absent series would read as 0 to KEDA),
and retired variants of planned servers drop to 0.

To extend: another per-variant gauge is one more `Gauge` in `__init__`, set in `update`.
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Gauge, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

from actuator.base import VariantChange
from actuator.desired import DesiredVariant

LABELS = ("variant", "server", "model", "accelerator")
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4


class DesiredReplicasGauges:
    """The desired-state gauges of one actuator, in their own registry."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self._replicas = Gauge("fleetplan_actuator_desired_replicas",
                               "Replicas the current plan wants for a variant.", LABELS,
                               registry=self.registry)
        self._max_batch = Gauge("fleetplan_actuator_desired_max_batch",
                                "Max batch the current plan wants for a variant.", LABELS,
                                registry=self.registry)
        self._token_budget = Gauge("fleetplan_actuator_desired_token_budget",
                                   "Tokens per iteration the current plan wants for a variant.",
                                   LABELS, registry=self.registry)
        self._weight = Gauge("fleetplan_actuator_desired_router_weight",
                             "Router weight the current plan gives a variant.", LABELS,
                             registry=self.registry)
        self._values: dict[str, tuple[tuple[str, ...], int]] = {}

    def values(self) -> dict[str, int]:
        """Desired replicas per variant as exported now."""
        return {name: replicas for name, (_, replicas) in sorted(self._values.items())}

    def known(self) -> list[tuple[str, str]]:
        """(variant, server) of every variant exported so far."""
        return [(name, labels[1]) for name, (labels, _) in sorted(self._values.items())]

    def update(self, desired: Iterable[DesiredVariant],
               retired: Iterable[tuple[str, str]] = ()) -> list[VariantChange]:
        """Export the plan's variants and zero the `retired` (variant, server) pairs;
        returns one change per variant whose desired replicas changed."""
        changes: list[VariantChange] = []
        for d in desired:
            labels = (d.name, d.server, d.model, d.accelerator)
            changes.extend(self._set(labels, d.replicas))
            self._max_batch.labels(*labels).set(d.max_batch)
            if d.token_budget is not None:
                self._token_budget.labels(*labels).set(d.token_budget)
            self._weight.labels(*labels).set(d.router_weight)
        for name, _server in retired:
            known = self._values.get(name)
            if known is not None:
                changes.extend(self._set(known[0], 0))
        return changes

    def _set(self, labels: tuple[str, ...], replicas: int) -> list[VariantChange]:
        name, server = labels[0], labels[1]
        before = self._values.get(name)
        self._replicas.labels(*labels).set(replicas)
        self._values[name] = (labels, replicas)
        if before is not None and before[1] == replicas:
            return []
        was = before[1] if before is not None else "unset"
        return [VariantChange(variant=name, server=server, kind="scale",
                              detail=f"desired replicas gauge {was} -> {replicas}")]

    def exposition(self) -> bytes:
        """The gauges in Prometheus text format (`CONTENT_TYPE`)."""
        return generate_latest(self.registry)
