"""`KubernetesActuator`: enacts a plan on labelled Deployments, one per variant.

`apply(plan)` lists the managed Deployments (`fleetplan.io/managed=true`), compares each
with what the plan wants (`diff_fleet`, pure) and enacts the difference through a
`DeploymentApi` (`actuator.kubernetes_api`, the only module importing the client):

- a variant the plan lists but the cluster lacks is created from its model's template
  (`actuator.manifests`), so a heterogeneous split becomes several Deployments;
- a pod-template difference (node selector, GPU count, max batch or token budget argument
  or env var) is one strategic-merge patch; it restarts pods (a rolling update: vLLM reads
  both only at start-up), so it spends a token of the pod-restart limiter
  (`actuator.ratelimit`) or is deferred to a later apply;
- a router-weight difference patches the Deployment's annotation (no restart) and, with
  `sync_pod_weights`, the annotation of its running Pods (what the router reads);
- replicas change through the scale subresource;
- every changed Deployment gets the plan id and reason as annotations;
- a variant of a planned server that the plan no longer lists is scaled to 0 (the object
  is kept); servers without an allocation in the plan are never touched.

Modes: `apply`; `dry-run` computes and logs the same changes (rate limit included) and
calls nothing but list; `metrics` calls nothing at all and exports desired replicas as
gauges (`actuator.metrics_mode`) for an HPA or KEDA. A failing call (after the API
wrapper's retries) becomes an `ActuationFailure` and the other variants go on; a fleet
that cannot even be listed raises `ActuatorUnavailable`.

To extend: a new managed field goes into `actuator.manifests` (build, read, patch);
this module only orders the calls.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from actuator.base import (
    ActuationFailure,
    ActuationMode,
    ActuationResult,
    ActuatorUnavailable,
    FleetState,
    VariantChange,
    VariantState,
)
from actuator.desired import DesiredVariant, desired_variants, label_value, retired
from actuator.kubernetes_api import ApiError, DeploymentApi
from actuator.manifests import (
    ManifestSettings,
    build_deployment,
    change_annotations,
    format_weight,
    read_max_batch,
    read_token_budget,
    template_patch,
)
from actuator.metrics_mode import DesiredReplicasGauges
from actuator.ratelimit import TokenBucket
from specs.clock import Clock, SystemClock
from specs.documents import FleetSpec
from specs.plan import Plan

LOG = logging.getLogger(__name__)
Json = dict[str, Any]


@dataclass(frozen=True)
class KubernetesSettings:
    """How the Kubernetes actuator works: manifests, mode, restart limit."""

    manifests: ManifestSettings
    mode: ActuationMode = "apply"
    restart_limit: TokenBucket = field(default_factory=TokenBucket)
    """Pod-restarting changes allowed (burst, per hour); see `actuator.ratelimit`."""
    sync_pod_weights: bool = True
    """Also annotate running Pods with their variant's router weight (the router reads Pods)."""


@dataclass(frozen=True)
class VariantDiff:
    """What one variant needs before rate limiting: a create, or patch parts and a scale."""

    name: str
    server: str
    create: Json | None = None
    create_detail: str = ""
    template_patch: Json | None = None
    template_details: tuple[str, ...] = ()
    weight: tuple[str | None, str] | None = None
    replicas: tuple[int, int] | None = None


def _spec_replicas(deployment: Mapping[str, Any]) -> int:
    replicas = (deployment.get("spec") or {}).get("replicas")
    return 1 if replicas is None else int(replicas)


def _create_detail(settings: ManifestSettings, d: DesiredVariant) -> str:
    parts = [f"replicas {d.replicas}", f"max batch {d.max_batch}"]
    if d.token_budget is not None and (settings.token_budget_arg or settings.token_budget_env):
        parts.append(f"token budget {d.token_budget}")
    if settings.gpu_resource:
        parts.append(f"{d.cards_per_replica} {settings.gpu_resource} per replica")
    if settings.accelerator_label:
        parts.append(f"node {settings.accelerator_label}={settings.node_value(d.card_type)}")
    return ", ".join(parts)


def _variant_diff(settings: ManifestSettings, d: DesiredVariant, observed: Json | None,
                  plan_id: str, reason: str) -> VariantDiff | None:
    if observed is None:
        if d.replicas == 0:
            return None
        body = build_deployment(settings, d, plan_id=plan_id, reason=reason)
        return VariantDiff(d.name, d.server, create=body,
                           create_detail=_create_detail(settings, d))
    patch, details = template_patch(settings, observed, d)
    annotations = (observed.get("metadata") or {}).get("annotations") or {}
    before_weight = annotations.get(settings.keys.router_weight)
    after_weight = format_weight(d.router_weight)
    before_replicas = _spec_replicas(observed)
    diff = VariantDiff(
        d.name, d.server, template_patch=patch, template_details=details,
        weight=(before_weight, after_weight) if before_weight != after_weight else None,
        replicas=(before_replicas, d.replicas) if before_replicas != d.replicas else None,
    )
    return diff if (patch or diff.weight or diff.replicas) else None


def diff_fleet(settings: ManifestSettings, plan: Plan, spec: FleetSpec | None,
               observed: Mapping[str, Json], plan_id: str, reason: str,
               ) -> tuple[list[VariantDiff], list[ActuationFailure]]:
    """What every variant of the planned servers needs (creates first, scale-downs to zero
    last, by name within each), and the variants whose difference cannot even be computed
    (no template, no serving container)."""
    desired = desired_variants(plan, spec)
    diffs: list[VariantDiff] = []
    failures: list[ActuationFailure] = []
    for d in desired:
        try:
            found = _variant_diff(settings, d, observed.get(d.name), plan_id, reason)
        except (KeyError, ValueError) as exc:
            failures.append(ActuationFailure(d.name, d.server, str(exc).strip("'\"")))
            continue
        if found is not None:
            diffs.append(found)
    running = [(name, _label(settings, body, "server")) for name, body in observed.items()]
    for name in retired(running, plan, desired):
        before = _spec_replicas(observed[name])
        if before != 0:
            diffs.append(VariantDiff(name, _label(settings, observed[name], "server"),
                                     replicas=(before, 0)))
    diffs.sort(key=lambda diff: (_phase(diff), diff.name))
    return diffs, failures


def _phase(diff: VariantDiff) -> int:
    """Make before break: creates first, then updates, then scale-downs to zero."""
    if diff.create is not None:
        return 0
    to_zero = diff.replicas is not None and diff.replicas[1] == 0
    return 2 if to_zero and diff.template_patch is None and diff.weight is None else 1


def _label(settings: ManifestSettings, deployment: Mapping[str, Any], key: str) -> str:
    labels = (deployment.get("metadata") or {}).get("labels") or {}
    return labels.get(getattr(settings.keys, key), "")


class KubernetesActuator:
    """The `Actuator` for Kubernetes Deployments; see the module docstring.

    `api` may be None only in metrics mode; `gauges` (exported in any mode when given) are
    made here in metrics mode when none are given; `clock` times the restart limiter and
    `FleetState.observed_at` (default: the wall clock, as the control loop's)."""

    def __init__(self, api: DeploymentApi | None, spec: FleetSpec | None,
                 settings: KubernetesSettings, *, clock: Clock | None = None,
                 gauges: DesiredReplicasGauges | None = None) -> None:
        if settings.mode == "metrics" and gauges is None:
            gauges = DesiredReplicasGauges()
        if settings.mode != "metrics" and api is None:
            raise ValueError(f"{settings.mode} mode needs a DeploymentApi")
        self.api = api
        self.spec = spec
        self.settings = settings
        self.gauges = gauges
        self._clock = clock or SystemClock()
        self._bucket = settings.restart_limit
        self.last_result: ActuationResult | None = None

    @property
    def _manifests(self) -> ManifestSettings:
        return self.settings.manifests

    def _list(self) -> dict[str, Json]:
        if self.api is None:
            raise ActuatorUnavailable("no Kubernetes API configured (metrics mode)")
        try:
            items = self.api.list(self._manifests.keys.selector)
        except ApiError as error:
            raise ActuatorUnavailable(str(error)) from error
        return {item["metadata"]["name"]: item for item in items}

    def observe(self) -> FleetState:
        """The managed Deployments as variants (ActuatorUnavailable if they cannot be read)."""
        names = _names(self.spec)
        variants = []
        for name, body in sorted(self._list().items()):
            def exact(key: str, body: Json = body) -> str:
                value = _label(self._manifests, body, key)
                return names.get(value, value)
            status = body.get("status") or {}
            variants.append(VariantState(
                variant=name, server=exact("server"), model=exact("model"),
                accelerator=exact("accelerator"), replicas=_spec_replicas(body),
                ready_replicas=int(status.get("readyReplicas") or 0),
                max_batch=read_max_batch(self._manifests, body),
                service_class=exact("service_class") or None,
                token_budget=read_token_budget(self._manifests, body),
            ))
        return FleetState(tuple(variants), observed_at=self._clock.now())

    def apply(self, plan: Plan, *, plan_id: str, reason: str) -> ActuationResult:
        """Move the Deployments towards `plan` (or, by mode, only say how)."""
        mode = self.settings.mode
        desired = desired_variants(plan, self.spec)
        if mode == "metrics":
            result = self._export(plan, plan_id, desired)
        else:
            result = self._reconcile(plan, plan_id, reason, desired)
        for change in result.changes:
            LOG.info("%s %s: %s %s (plan %s)", mode, change.variant, change.kind,
                     change.detail, plan_id)
        for failure in result.failures:
            LOG.warning("%s %s: failed: %s (plan %s)", mode, failure.variant, failure.reason,
                        plan_id)
        self.last_result = result
        return result

    def _export(self, plan: Plan, plan_id: str,
                desired: tuple[DesiredVariant, ...]) -> ActuationResult:
        assert self.gauges is not None
        gone = _retired_pairs(self.gauges.known(), plan, desired)
        changes = self.gauges.update(desired, gone)
        return ActuationResult(mode="metrics", plan_id=plan_id, changes=tuple(changes))

    def _reconcile(self, plan: Plan, plan_id: str, reason: str,
                   desired: tuple[DesiredVariant, ...]) -> ActuationResult:
        observed = self._list()
        diffs, failures = diff_fleet(self._manifests, plan, self.spec, observed, plan_id,
                                     reason)
        dry = self.settings.mode == "dry-run"
        out = _Outcome(bucket=self._bucket, failures=failures)
        for diff in diffs:
            self._enact(diff, out, plan_id, reason, dry)
        if not dry:
            self._bucket = out.bucket
            if self.settings.sync_pod_weights:
                out.failures += self._sync_pod_weights(desired)
        if self.gauges is not None:
            running = [(n, _label(self._manifests, b, "server")) for n, b in observed.items()]
            self.gauges.update(desired, _retired_pairs(running, plan, desired))
        return ActuationResult(mode=self.settings.mode, plan_id=plan_id,
                               changes=tuple(out.changes), failures=tuple(out.failures),
                               deferred=tuple(out.deferred))

    def _enact(self, diff: VariantDiff, out: _Outcome, plan_id: str, reason: str,
               dry: bool) -> None:
        api = self.api
        assert api is not None
        if diff.create is not None:
            body = diff.create
            if dry or self._call(diff, out, lambda: api.create(body)):
                out.changes.append(VariantChange(diff.name, diff.server, "create",
                                                 diff.create_detail))
            return
        patch, changes = self._update(diff, out, plan_id, reason)
        if not changes or dry:
            out.changes += changes
            return
        if not self._call(diff, out, lambda: api.patch(diff.name, patch)):
            return
        replicas = diff.replicas
        if replicas is not None and not self._call(
                diff, out, lambda: api.scale(diff.name, replicas[1])):
            changes = [c for c in changes if c.kind != "scale"]
        out.changes += changes

    def _update(self, diff: VariantDiff, out: _Outcome, plan_id: str, reason: str,
                ) -> tuple[Json, list[VariantChange]]:
        """The patch of an existing variant and its changes; a pod-restarting part goes
        in only if the restart limiter allows, else it is deferred."""
        changes: list[VariantChange] = []
        patch: Json = {}
        if diff.template_patch is not None:
            change = VariantChange(diff.name, diff.server, "reconfigure",
                                   "; ".join(diff.template_details), restarts_pods=True)
            allowed, out.bucket = out.bucket.take(self._clock.now())
            if allowed:
                patch = copy.deepcopy(diff.template_patch)
                changes.append(change)
            else:
                wait = out.bucket.seconds_until(self._clock.now())
                out.deferred.append(replace(change, detail=change.detail + _held(wait)))
        annotations = change_annotations(self._manifests, plan_id, reason)
        if diff.weight is not None:
            annotations[self._manifests.keys.router_weight] = diff.weight[1]
            changes.append(VariantChange(diff.name, diff.server, "reconfigure",
                                         f"router weight {diff.weight[0]} -> {diff.weight[1]}"))
        if diff.replicas is not None:
            changes.append(VariantChange(diff.name, diff.server, "scale",
                                         f"replicas {diff.replicas[0]} -> {diff.replicas[1]}"))
        patch["metadata"] = {"annotations": annotations}
        return patch, changes

    def _call(self, diff: VariantDiff, out: _Outcome, call: Callable[[], object]) -> bool:
        try:
            call()
        except ApiError as error:
            out.failures.append(ActuationFailure(diff.name, diff.server, str(error)))
            return False
        return True

    def _sync_pod_weights(self, desired: tuple[DesiredVariant, ...]) -> list[ActuationFailure]:
        assert self.api is not None
        keys = self._manifests.keys
        want = {d.name: (d.server, format_weight(d.router_weight)) for d in desired}
        try:
            pods = self.api.list_pods(keys.selector)
        except ApiError as error:
            return [ActuationFailure("*", "*", f"router weights on pods: {error}")]
        failures = []
        for pod in sorted(pods, key=lambda p: p["metadata"]["name"]):
            meta = pod.get("metadata") or {}
            variant = (meta.get("labels") or {}).get(keys.variant)
            if variant not in want or meta.get("deletionTimestamp"):
                continue
            server, weight = want[variant]
            if (meta.get("annotations") or {}).get(keys.router_weight) == weight:
                continue
            try:
                self.api.patch_pod(meta["name"],
                                   {"metadata": {"annotations": {keys.router_weight: weight}}})
            except ApiError as error:
                failures.append(ActuationFailure(variant, server, f"router weight: {error}"))
        return failures


@dataclass
class _Outcome:
    """What an apply has done so far, and the restart budget left."""

    bucket: TokenBucket
    changes: list[VariantChange] = field(default_factory=list)
    deferred: list[VariantChange] = field(default_factory=list)
    failures: list[ActuationFailure] = field(default_factory=list)


def _held(wait: float | None) -> str:
    when = "never (restart rate 0)" if wait is None else f"in {wait:.0f} s"
    return f" (deferred: pod-restart limit, next token {when})"


def _retired_pairs(running: list[tuple[str, str]], plan: Plan,
                   desired: tuple[DesiredVariant, ...]) -> list[tuple[str, str]]:
    gone = set(retired(running, plan, desired))
    return [(name, server) for name, server in running if name in gone]


def _names(spec: FleetSpec | None) -> dict[str, str]:
    """Label value -> exact name, for the spec's servers, models, classes, accelerators."""
    if spec is None:
        return {}
    names = [s.name for s in spec.servers] + [p.model for p in spec.profiles]
    names += [c.name for c in spec.service_classes] + [a.name for a in spec.accelerators]
    return {label_value(n): n for n in names}
