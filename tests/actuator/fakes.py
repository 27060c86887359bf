"""Test doubles for the Kubernetes actuator: patch semantics and an in-memory DeploymentApi.

`strategic_merge` and `merge_patch` apply patches the way the API server does for the
fields fleetplan patches (strategic merge: maps merge, `null` deletes, lists of named
items such as containers and env merge by `name`, other lists are replaced).
`FakeDeploymentApi` implements `actuator.kubernetes_api.DeploymentApi` in memory,
records every call (the golden files are made of these records) and fails the calls
a test asks it to. `tests/actuator/fake_apiserver.py` serves the same semantics over
HTTP for the real client.
"""

from __future__ import annotations

import copy
from typing import Any

from actuator.kubernetes_api import ApiError

Json = dict[str, Any]
MERGE_BY_NAME = frozenset({"containers", "initContainers", "env", "ports", "volumes",
                           "volumeMounts"})


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


def _merge_named(target: list[Any], patch: list[Any]) -> list[Any]:
    out = [copy.deepcopy(item) for item in target]
    for item in patch:
        index = next((i for i, old in enumerate(out) if old.get("name") == item.get("name")),
                     None)
        if index is None:
            out.append(copy.deepcopy(item))
        else:
            out[index] = strategic_merge(out[index], item)
    return out


def strategic_merge(target: Any, patch: Any) -> Any:
    """Strategic merge patch, for the list types of a Deployment fleetplan patches."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        elif key in MERGE_BY_NAME and isinstance(value, list):
            out[key] = _merge_named(out.get(key) or [], value)
        else:
            out[key] = strategic_merge(out.get(key), value)
    return out


def matches(labels: dict[str, str] | None, selector: str) -> bool:
    """Equality-based label selector (`a=b,c=d`; `a!=b` and bare `a` too)."""
    labels = labels or {}
    for term in filter(None, (t.strip() for t in selector.split(","))):
        if "!=" in term:
            key, value = term.split("!=", 1)
            if labels.get(key) == value:
                return False
        elif "=" in term:
            key, value = term.split("=", 1)
            if labels.get(key) != value.lstrip("="):
                return False
        elif term not in labels:
            return False
    return True


def settle(deployment: Json) -> Json:
    """Pretend the Deployment controller has caught up: status follows spec."""
    replicas = (deployment.get("spec") or {}).get("replicas", 1)
    deployment["status"] = {"replicas": replicas, "readyReplicas": replicas,
                            "availableReplicas": replicas}
    return deployment


class FakeDeploymentApi:
    """In-memory `DeploymentApi` that records calls and fails on request."""

    def __init__(self, namespace: str = "fleet", deployments: list[Json] | None = None,
                 pods: list[Json] | None = None) -> None:
        self.namespace = namespace
        self.deployments: dict[str, Json] = {d["metadata"]["name"]: copy.deepcopy(d)
                                             for d in deployments or []}
        self.pods: dict[str, Json] = {p["metadata"]["name"]: copy.deepcopy(p)
                                      for p in pods or []}
        self.calls: list[Json] = []
        self.failures: dict[tuple[str, str], ApiError] = {}

    def fail(self, op: str, name: str, status: int = 500, reason: str = "InternalError",
             ) -> None:
        """Make every later `op` on `name` fail with this status."""
        self.failures[(op, name)] = ApiError(f"{op} {name}", status, reason, "injected")

    def _record(self, op: str, name: str, body: Any = None) -> None:
        self.calls.append({"op": op, "name": name, "body": copy.deepcopy(body)})
        if (op, name) in self.failures:
            raise self.failures[(op, name)]

    def writes(self) -> list[Json]:
        """Every recorded call except reads."""
        return [c for c in self.calls if c["op"] not in ("list", "read", "list_pods")]

    def list(self, label_selector: str) -> list[Json]:
        self._record("list", label_selector)
        return [copy.deepcopy(d) for _, d in sorted(self.deployments.items())
                if matches(d["metadata"].get("labels"), label_selector)]

    def read(self, name: str) -> Json | None:
        self._record("read", name)
        found = self.deployments.get(name)
        return copy.deepcopy(found) if found else None

    def create(self, body: Json) -> Json:
        name = body["metadata"]["name"]
        self._record("create", name, body)
        if name in self.deployments:
            raise ApiError(f"create {name}", 409, "AlreadyExists", "exists")
        self.deployments[name] = settle(copy.deepcopy(body))
        return copy.deepcopy(self.deployments[name])

    def _existing(self, op: str, name: str) -> Json:
        if name not in self.deployments:
            raise ApiError(f"{op} {name}", 404, "NotFound", "not found")
        return self.deployments[name]

    def patch(self, name: str, patch: Json) -> Json:
        self._record("patch", name, patch)
        merged = strategic_merge(self._existing("patch", name), patch)
        self.deployments[name] = settle(merged)
        return copy.deepcopy(merged)

    def scale(self, name: str, replicas: int) -> Json:
        self._record("scale", name, {"spec": {"replicas": replicas}})
        self._existing("scale", name)["spec"]["replicas"] = replicas
        settle(self.deployments[name])
        return {"kind": "Scale", "spec": {"replicas": replicas}}

    def delete(self, name: str) -> None:
        self._record("delete", name)
        self.deployments.pop(name, None)

    def list_pods(self, label_selector: str) -> list[Json]:
        self._record("list_pods", label_selector)
        return [copy.deepcopy(p) for _, p in sorted(self.pods.items())
                if matches(p["metadata"].get("labels"), label_selector)]

    def patch_pod(self, name: str, patch: Json) -> Json:
        self._record("patch_pod", name, patch)
        if name not in self.pods:
            raise ApiError(f"patch pod {name}", 404, "NotFound", "not found")
        self.pods[name] = merge_patch(self.pods[name], patch)
        return copy.deepcopy(self.pods[name])
