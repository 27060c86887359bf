"""Variant Deployments built from a template, and the patches that bring one up to date.

A variant is one Deployment, named by `variant_name(server, accelerator)` and built from
the template of its model (`ManifestSettings.templates[model]`, else `["*"]`; see
`deploy/kubernetes/variants/` for vLLM and emulated-worker templates):

- labels (Deployment and pod template): `fleetplan.io/managed=true`, `.../server`,
  `.../model`, `.../service-class`, `.../accelerator`, `.../variant` (the keys the
  router's Kubernetes discovery reads); the selector is managed + variant;
- annotations: `fleetplan.io/plan-id`, `fleetplan.io/reason`, `fleetplan.io/router-weight`
  (the weight also on the pod template, so the first pods carry it);
- the accelerator: node selector `accelerator_label` (e.g. `nvidia.com/gpu.product`) =
  `accelerator_values.get(card_type, card_type)`, and the GPU resource count (limits,
  and requests when the template requests it) = cards per replica;
- max batch: the serving container's argument `max_batch_arg` (vLLM's `--max-num-seqs`,
  as `--flag N` or `--flag=N`) or, when set, the env var `max_batch_env`;
- token budget, when the plan sets one (None leaves the template's as it is): the
  argument `token_budget_arg` (vLLM's `--max-num-batched-tokens`) or, when set, the env
  var `token_budget_env`; with the argument, `chunked_prefill_arg` (vLLM's
  `--enable-chunked-prefill`) is added when missing: vLLM's V0 engine refuses a budget
  below the model's context length unless prefills may be chunked (V1 always chunks);
- env `FLEETPLAN_SERVER`, `FLEETPLAN_MODEL`, `FLEETPLAN_SERVICE_CLASS`,
  `FLEETPLAN_ACCELERATOR`, `FLEETPLAN_VARIANT` and `FLEETPLAN_GPUS` (cards per replica),
  so templates can say `$(FLEETPLAN_MODEL)` or `--tensor-parallel-size=$(FLEETPLAN_GPUS)`
  in their args (Kubernetes expands them).

Deployments carry no namespace: they go where the `DeploymentApi` points.
`template_patch` compares an observed Deployment with the desired one on exactly the
fields above that live in the pod template (a change there restarts pods) and returns a
strategic-merge patch (containers merge by name) with a line per difference.

To extend: a new managed field is set in `build_deployment`, read back by a `read_*`
function and compared in `template_patch` (with a detail line), with a golden-file test.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from actuator.desired import DesiredVariant, label_value

Json = dict[str, Any]
MAX_REASON_CHARS = 1024
GPUS_ENV = "FLEETPLAN_GPUS"
"""Env var holding the cards per replica (e.g. for vLLM's `--tensor-parallel-size`)."""


@dataclass(frozen=True)
class LabelKeys:
    """Label and annotation keys on managed Deployments (labels also on their pods)."""

    managed: str = "fleetplan.io/managed"
    server: str = "fleetplan.io/server"
    model: str = "fleetplan.io/model"
    service_class: str = "fleetplan.io/service-class"
    accelerator: str = "fleetplan.io/accelerator"
    variant: str = "fleetplan.io/variant"
    plan_id: str = "fleetplan.io/plan-id"
    reason: str = "fleetplan.io/reason"
    router_weight: str = "fleetplan.io/router-weight"

    @property
    def selector(self) -> str:
        """The label selector of every managed Deployment."""
        return f"{self.managed}=true"


@dataclass(frozen=True)
class ManifestSettings:
    """How variant Deployments are built: templates and the knobs fleetplan turns."""

    templates: Mapping[str, Mapping[str, Any]]
    """Deployment template per model name; key "*" is the default."""
    container: str | None = None
    """Name of the serving container; None: the first container."""
    accelerator_label: str | None = "nvidia.com/gpu.product"
    """Node label selecting the card type; None: no node selector (GPU-less clusters)."""
    accelerator_values: Mapping[str, str] = field(default_factory=dict)
    """Card type -> node label value (e.g. H100 -> NVIDIA-H100-80GB-HBM3); default: as is."""
    gpu_resource: str | None = "nvidia.com/gpu"
    """Extended resource counted per replica; None: request none."""
    max_batch_arg: str | None = "--max-num-seqs"
    max_batch_env: str | None = None
    """When set, max batch goes into this env var instead of `max_batch_arg`."""
    token_budget_arg: str | None = "--max-num-batched-tokens"
    """Argument carrying the token budget (tokens per iteration); None: not managed."""
    token_budget_env: str | None = None
    """When set, the token budget goes into this env var instead of `token_budget_arg`."""
    chunked_prefill_arg: str | None = "--enable-chunked-prefill"
    """Flag added (when missing) with `token_budget_arg`; None: none (e.g. the emulated
    worker, which always chunks prefills)."""
    keys: LabelKeys = field(default_factory=LabelKeys)

    def template_for(self, model: str) -> Mapping[str, Any]:
        """The template of `model` (KeyError naming the known templates when none fits)."""
        found = self.templates.get(model, self.templates.get("*"))
        if found is None:
            raise KeyError(f"no Deployment template for model {model!r} "
                           f"(templates: {', '.join(sorted(self.templates)) or 'none'})")
        return found

    def node_value(self, card_type: str) -> str:
        """The node label value selecting `card_type`."""
        return self.accelerator_values.get(card_type, card_type)


def format_weight(weight: float) -> str:
    """A router weight as an annotation value (6 significant digits)."""
    return f"{weight:.6g}"


def variant_labels(settings: ManifestSettings, d: DesiredVariant) -> dict[str, str]:
    """The labels of a variant's Deployment and pods."""
    k = settings.keys
    return {k.managed: "true", k.server: label_value(d.server), k.model: label_value(d.model),
            k.service_class: label_value(d.service_class),
            k.accelerator: label_value(d.accelerator), k.variant: d.name}


def change_annotations(settings: ManifestSettings, plan_id: str, reason: str) -> dict[str, str]:
    """The annotations recording which plan last changed a variant, and why."""
    return {settings.keys.plan_id: plan_id, settings.keys.reason: reason[:MAX_REASON_CHARS]}


def _identity_env(d: DesiredVariant) -> list[Json]:
    pairs = (("FLEETPLAN_SERVER", d.server), ("FLEETPLAN_MODEL", d.model),
             ("FLEETPLAN_SERVICE_CLASS", d.service_class),
             ("FLEETPLAN_ACCELERATOR", d.accelerator), ("FLEETPLAN_VARIANT", d.name),
             (GPUS_ENV, str(d.cards_per_replica)))
    return [{"name": n, "value": v} for n, v in pairs]


def _upsert_env(env: list[Json], items: list[Json]) -> list[Json]:
    names = {item["name"] for item in items}
    return [e for e in env if e.get("name") not in names] + items


def container_of(pod_spec: Mapping[str, Any], name: str | None) -> Json:
    """The serving container of a pod spec (ValueError when it is missing)."""
    containers = pod_spec.get("containers") or []
    for container in containers:
        if name is None or container.get("name") == name:
            return container
    raise ValueError(f"pod template has no container {name!r}" if name else
                     "pod template has no containers")


def flag_value(args: list[str], flag: str) -> str | None:
    """The value of `flag` in an argument list (`--flag N` or `--flag=N`), if present."""
    for i, arg in enumerate(args):
        if arg == flag and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith(flag + "="):
            return arg[len(flag) + 1:]
    return None


def with_flag(args: list[str], flag: str, value: str) -> list[str]:
    """`args` with `flag` set to `value`, in the form it already has (else appended)."""
    out = list(args)
    for i, arg in enumerate(out):
        if arg == flag and i + 1 < len(out):
            out[i + 1] = value
            return out
        if arg.startswith(flag + "="):
            out[i] = f"{flag}={value}"
            return out
    return [*out, flag, value]


def _has_flag(args: list[str], flag: str) -> bool:
    return any(arg == flag or arg.startswith(flag + "=") for arg in args)


def _set_value(container: Json, arg: str | None, env_name: str | None, value: int) -> None:
    """Put `value` into the env var `env_name` if set, else into the argument `arg`."""
    if env_name:
        env = container.get("env") or []
        container["env"] = _upsert_env(env, [{"name": env_name, "value": str(value)}])
    elif arg:
        container["args"] = with_flag(container.get("args") or [], arg, str(value))


def _read_value(container: Mapping[str, Any], arg: str | None, env_name: str | None,
                ) -> int | None:
    if env_name:
        env = {e.get("name"): e.get("value") for e in container.get("env") or []}
        return _int(env.get(env_name))
    if arg:
        return _int(flag_value(container.get("args") or [], arg))
    return None


def _set_max_batch(settings: ManifestSettings, container: Json, max_batch: int) -> None:
    _set_value(container, settings.max_batch_arg, settings.max_batch_env, max_batch)


def _budget_to_set(settings: ManifestSettings, d: DesiredVariant) -> int | None:
    """The plan's token budget when the settings manage it, else None (left alone)."""
    return d.token_budget if settings.token_budget_env or settings.token_budget_arg else None


def _set_token_budget(settings: ManifestSettings, container: Json, budget: int) -> None:
    _set_value(container, settings.token_budget_arg, settings.token_budget_env, budget)
    flag = settings.chunked_prefill_arg
    if flag and settings.token_budget_arg and not settings.token_budget_env:
        args = container.get("args") or []
        if not _has_flag(args, flag):
            container["args"] = [*args, flag]


def _set_gpus(settings: ManifestSettings, container: Json, gpus: int) -> None:
    if not settings.gpu_resource:
        return
    resources = container.setdefault("resources", {})
    resources.setdefault("limits", {})[settings.gpu_resource] = str(gpus)
    if settings.gpu_resource in (resources.get("requests") or {}):
        resources["requests"][settings.gpu_resource] = str(gpus)


def build_deployment(settings: ManifestSettings, d: DesiredVariant, *, plan_id: str,
                     reason: str) -> Json:
    """The full Deployment of a variant, from its model's template."""
    body: Json = copy.deepcopy(dict(settings.template_for(d.model)))
    body.pop("status", None)
    labels = variant_labels(settings, d)
    old_meta = body.get("metadata") or {}
    body.update(apiVersion="apps/v1", kind="Deployment")
    body["metadata"] = {
        "name": d.name,
        "labels": {**(old_meta.get("labels") or {}), **labels},
        "annotations": {**(old_meta.get("annotations") or {}),
                        **change_annotations(settings, plan_id, reason),
                        settings.keys.router_weight: format_weight(d.router_weight)},
    }
    spec = body.setdefault("spec", {})
    spec["replicas"] = d.replicas
    spec["selector"] = {"matchLabels": {settings.keys.managed: "true",
                                        settings.keys.variant: d.name}}
    pod = spec.setdefault("template", {})
    pod_meta = pod.setdefault("metadata", {})
    pod_meta["labels"] = {**(pod_meta.get("labels") or {}), **labels}
    pod_meta["annotations"] = {**(pod_meta.get("annotations") or {}),
                               settings.keys.router_weight: format_weight(d.router_weight)}
    pod_spec = pod.setdefault("spec", {})
    if settings.accelerator_label:
        node_selector = pod_spec.setdefault("nodeSelector", {})
        node_selector[settings.accelerator_label] = settings.node_value(d.card_type)
    container = container_of(pod_spec, settings.container)
    container["env"] = _upsert_env(container.get("env") or [], _identity_env(d))
    _set_gpus(settings, container, d.cards_per_replica)
    _set_max_batch(settings, container, d.max_batch)
    budget = _budget_to_set(settings, d)
    if budget is not None:
        _set_token_budget(settings, container, budget)
    return body


def _pod_spec(deployment: Mapping[str, Any]) -> Mapping[str, Any]:
    return ((deployment.get("spec") or {}).get("template") or {}).get("spec") or {}


def _int(value: object) -> int | None:
    try:
        return int(str(value))
    except (TypeError, ValueError):
        return None


def read_max_batch(settings: ManifestSettings, deployment: Mapping[str, Any]) -> int | None:
    """The max batch a Deployment configures (None when it does not say)."""
    try:
        container = container_of(_pod_spec(deployment), settings.container)
    except ValueError:
        return None
    return _container_max_batch(settings, container)


def _container_max_batch(settings: ManifestSettings, container: Mapping[str, Any]) -> int | None:
    return _read_value(container, settings.max_batch_arg, settings.max_batch_env)


def read_token_budget(settings: ManifestSettings, deployment: Mapping[str, Any]) -> int | None:
    """The token budget a Deployment configures (None when it does not say)."""
    try:
        container = container_of(_pod_spec(deployment), settings.container)
    except ValueError:
        return None
    return _read_value(container, settings.token_budget_arg, settings.token_budget_env)


def read_gpus(settings: ManifestSettings, deployment: Mapping[str, Any]) -> int | None:
    """The GPU count per replica a Deployment asks for (its limit)."""
    if not settings.gpu_resource:
        return None
    try:
        container = container_of(_pod_spec(deployment), settings.container)
    except ValueError:
        return None
    limits = (container.get("resources") or {}).get("limits") or {}
    return _int(limits.get(settings.gpu_resource))


def read_node_value(settings: ManifestSettings, deployment: Mapping[str, Any]) -> str | None:
    """The node selector value of the accelerator label."""
    if not settings.accelerator_label:
        return None
    return (_pod_spec(deployment).get("nodeSelector") or {}).get(settings.accelerator_label)


def _engine_settings(settings: ManifestSettings, observed: Json, changed: Json,
                     d: DesiredVariant, details: list[str]) -> list[Json]:
    """Set max batch and token budget on `changed` where they differ from `observed`;
    returns the env entries to patch."""
    env: list[Json] = []
    before_batch = _container_max_batch(settings, observed)
    if (settings.max_batch_env or settings.max_batch_arg) and before_batch != d.max_batch:
        _set_max_batch(settings, changed, d.max_batch)
        if settings.max_batch_env:
            env.append({"name": settings.max_batch_env, "value": str(d.max_batch)})
        details.append(f"max batch {before_batch} -> {d.max_batch}")
    budget = _budget_to_set(settings, d)
    before_budget = _read_value(observed, settings.token_budget_arg, settings.token_budget_env)
    if budget is not None and before_budget != budget:
        _set_token_budget(settings, changed, budget)
        if settings.token_budget_env:
            env.append({"name": settings.token_budget_env, "value": str(budget)})
        details.append(f"token budget {before_budget} -> {budget}")
    return env


def _container_patch(settings: ManifestSettings, observed: Json, d: DesiredVariant,
                     details: list[str]) -> Json:
    patch: Json = {"name": observed.get("name")}
    changed = copy.deepcopy(observed)
    env = _engine_settings(settings, observed, changed, d, details)
    if (changed.get("args") or []) != (observed.get("args") or []):
        patch["args"] = changed["args"]
    resources = observed.get("resources") or {}
    before_gpus = _int((resources.get("limits") or {}).get(settings.gpu_resource or ""))
    if settings.gpu_resource and before_gpus != d.cards_per_replica:
        _set_gpus(settings, changed, d.cards_per_replica)
        patch["resources"] = {k: {settings.gpu_resource: v[settings.gpu_resource]}
                              for k, v in changed["resources"].items()
                              if settings.gpu_resource in v}
        details.append(f"{settings.gpu_resource} per replica {before_gpus} -> "
                       f"{d.cards_per_replica}")
        env.append({"name": GPUS_ENV, "value": str(d.cards_per_replica)})
    if env:
        patch["env"] = env
    return patch


def template_patch(settings: ManifestSettings, observed: Mapping[str, Any],
                   d: DesiredVariant) -> tuple[Json | None, tuple[str, ...]]:
    """The strategic-merge patch of the pod template that makes `observed` run `d` (None
    when nothing differs), and one detail line per difference. ValueError when the
    observed pod template has no serving container."""
    details: list[str] = []
    pod_patch: Json = {}
    wanted = settings.node_value(d.card_type)
    before = read_node_value(settings, observed)
    if settings.accelerator_label and before != wanted:
        pod_patch["nodeSelector"] = {settings.accelerator_label: wanted}
        details.append(f"node selector {settings.accelerator_label} {before} -> {wanted}")
    container = container_of(_pod_spec(observed), settings.container)
    container_patch = _container_patch(settings, container, d, details)
    if len(container_patch) > 1:
        pod_patch["containers"] = [container_patch]
    if not details:
        return None, ()
    return {"spec": {"template": {"spec": pod_patch}}}, tuple(details)
