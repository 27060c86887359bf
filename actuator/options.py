"""Actuators built from plain options: the controller config's `actuator.options`.

`kubernetes_actuator(spec, namespace=..., mode=..., options=...)` and
`local_actuator(spec_path, mode=..., options=...)` turn a JSON object into typed
settings and a ready actuator (the Kubernetes one connects its API client here, not in
a constructor). Unknown keys are a `SpecError` naming the known ones.

Kubernetes options: `api_url` (no auth: a fake or `kubectl proxy`), `kubeconfig`,
`context` (default: in-cluster, then kubeconfig); `templates` (model -> Deployment as
an object or a JSON/YAML file path, "*" the default) or `template` (the default alone);
`container`, `accelerator_label`, `accelerator_values`, `gpu_resource`,
`max_batch_arg`, `max_batch_env`, `token_budget_arg`, `token_budget_env`,
`chunked_prefill_arg` (see `actuator.manifests.ManifestSettings`);
`restart_burst`, `restarts_per_hour` (pod-restart limit), `sync_pod_weights`,
`retry_attempts`, `request_timeout_s`.

Local options: the fields of `actuator.local.LocalSettings` except `spec_path` and
`mode` (`log_dir`, `command`, `extra_args`, `start_timeout_s`, `drain_timeout_s`, ...).

To extend: a new option is one key in the matching `_KEYS` tuple, read where the
settings are built.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import fields
from pathlib import Path
from typing import Any

import yaml

from actuator.base import ActuationMode
from actuator.kubernetes import KubernetesActuator, KubernetesSettings
from actuator.kubernetes_api import KubernetesDeploymentApi, RetryPolicy, connect
from actuator.local import BackendsCallback, LocalActuator, LocalSettings
from actuator.manifests import ManifestSettings
from actuator.metrics_mode import DesiredReplicasGauges
from actuator.ratelimit import TokenBucket
from specs.documents import FleetSpec
from specs.errors import SpecError

_MANIFEST_KEYS = ("container", "accelerator_label", "accelerator_values", "gpu_resource",
                  "max_batch_arg", "max_batch_env", "token_budget_arg", "token_budget_env",
                  "chunked_prefill_arg")
_KUBERNETES_KEYS = ("api_url", "kubeconfig", "context", "templates", "template",
                    "restart_burst", "restarts_per_hour", "sync_pod_weights",
                    "retry_attempts", "request_timeout_s", *_MANIFEST_KEYS)
_LOCAL_KEYS = tuple(f.name for f in fields(LocalSettings) if f.name not in ("spec_path", "mode"))
_PATH = "$.actuator.options"


def _check_keys(options: Mapping[str, Any], known: tuple[str, ...]) -> None:
    for key in options:
        if key not in known:
            raise SpecError(f"unknown actuator option {key!r}", json_path=f"{_PATH}.{key}",
                            hint="known: " + ", ".join(sorted(known)))


def load_template(path: str | Path) -> dict[str, Any]:
    """A Deployment template from a JSON or YAML file (the first Deployment in it)."""
    path = Path(path)
    try:
        text = path.read_text()
        documents = ([json.loads(text)] if path.suffix == ".json"
                     else list(yaml.safe_load_all(text)))
    except (OSError, ValueError, yaml.YAMLError) as exc:
        raise SpecError(f"cannot read Deployment template: {exc}", file=path) from None
    for document in documents:
        if isinstance(document, dict) and document.get("kind") == "Deployment":
            return document
    raise SpecError("no Deployment in the template file", file=path)


def _templates(options: Mapping[str, Any], base_dir: Path | None) -> dict[str, Any]:
    raw = dict(options.get("templates") or {})
    if "template" in options:
        raw["*"] = options["template"]
    if not raw:
        raise SpecError("the kubernetes actuator needs 'templates' or 'template'",
                        json_path=_PATH, hint="see deploy/kubernetes/variants/")
    out = {}
    for model, template in raw.items():
        if isinstance(template, str):
            path = Path(template)
            template = load_template(path if path.is_absolute() or base_dir is None
                                     else base_dir / path)
        out[model] = template
    return out


def kubernetes_actuator(spec: FleetSpec | None, *, namespace: str, mode: ActuationMode,
                        options: Mapping[str, Any], base_dir: Path | None = None,
                        gauges: DesiredReplicasGauges | None = None) -> KubernetesActuator:
    """A `KubernetesActuator` for `namespace` from plain options (see the docstring)."""
    _check_keys(options, _KUBERNETES_KEYS)
    manifests = ManifestSettings(templates=_templates(options, base_dir),
                                 **{k: options[k] for k in _MANIFEST_KEYS if k in options})
    limit = TokenBucket(burst=int(options.get("restart_burst", 2)),
                        per_hour=float(options.get("restarts_per_hour", 12.0)))
    settings = KubernetesSettings(manifests=manifests, mode=mode, restart_limit=limit,
                                  sync_pod_weights=bool(options.get("sync_pod_weights", True)))
    api = None
    if mode != "metrics" or options.get("api_url") or options.get("kubeconfig"):
        policy = RetryPolicy(attempts=int(options.get("retry_attempts", 5)),
                             timeout_s=float(options.get("request_timeout_s", 10.0)))
        client = connect(options.get("api_url"), kubeconfig=options.get("kubeconfig"),
                         context=options.get("context"))
        api = KubernetesDeploymentApi(client, namespace, policy)
    return KubernetesActuator(api, spec, settings, gauges=gauges)


def local_actuator(spec_path: str | Path, *, mode: ActuationMode, options: Mapping[str, Any],
                   on_backends_changed: BackendsCallback | None = None) -> LocalActuator:
    """A `LocalActuator` whose workers read `spec_path`, from plain options."""
    _check_keys(options, _LOCAL_KEYS)
    if mode == "metrics":
        raise SpecError("the local actuator has no metrics mode (use apply or dry-run)",
                        json_path="$.mode")
    values = dict(options)
    for key in ("log_dir", "cwd"):
        if values.get(key) is not None:
            values[key] = Path(values[key])
    for key in ("command", "extra_args"):
        if key in values:
            values[key] = tuple(str(v) for v in values[key])
    settings = LocalSettings(spec_path=Path(spec_path), mode=mode, **values)
    return LocalActuator(settings, on_backends_changed=on_backends_changed)
