"""Kubernetes discovery for the router: ready Pods of labelled Deployments become backends.

The only module that imports the official `kubernetes` client. `KubernetesSource` lists
the Pods matching a label selector (in one namespace, or all) and turns each Pod that is
running, Ready and not terminating into a backend:

- url: `http://<pod IP>:<port>`, the port being `--kubernetes-port`, else the container
  port named `port_name` (default `http`), else the first container port, else 8000;
- model: the label `labels.model` (default `fleetplan.io/model`); Pods without it are
  skipped;
- variant: the label `labels.variant` (default `fleetplan.io/variant`), else the Pod's
  controller (its ReplicaSet), so replicas of one Deployment share a variant;
- weight: the annotation `labels.weight` (default `fleetplan.io/router-weight`), a number
  >= 0; service class: the label `labels.service_class` (default
  `fleetplan.io/service-class`);
- max batch (which `least_loaded` divides in-flight requests by): the value of the
  argument `labels.max_batch_arg` (default vLLM's `--max-num-seqs`, as `--max-num-seqs
  64` or `--max-num-seqs=64`) in a container's command or args, when a positive integer.

The list call is the client's blocking call, run in a worker thread (`asyncio.to_thread`)
so the event loop keeps routing. API errors and unreachable API servers raise
`SourceUnavailable` (polled again with backoff, the last good backends kept).

`api_client(api_url)` builds the client: an explicit API URL (tests point it at a local
fake), else the in-cluster service account, else the local kubeconfig.

To extend: EndpointSlices (Services) instead of Pods would be another `_list_*` method
producing the same entries.
"""

from __future__ import annotations

import asyncio
import logging
import math
from dataclasses import dataclass
from typing import Any

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError

from serving.discovery import SourceUnavailable
from serving.router_config import BackendsDocument, parse_backends

LOG = logging.getLogger(__name__)
DEFAULT_PORT = 8000


@dataclass(frozen=True)
class PodLabels:
    """Which labels and annotation carry a Pod's model, variant, class and weight, and
    which container argument its max batch."""

    model: str = "fleetplan.io/model"
    variant: str = "fleetplan.io/variant"
    weight: str = "fleetplan.io/router-weight"
    service_class: str = "fleetplan.io/service-class"
    max_batch_arg: str = "--max-num-seqs"


def api_client(api_url: str | None = None) -> client.ApiClient:
    """A Kubernetes API client: `api_url` (no auth), in-cluster, or kubeconfig."""
    if api_url:
        return client.ApiClient(client.Configuration(host=api_url))
    try:
        config.load_incluster_config()
    except config.ConfigException:
        config.load_kube_config()
    return client.ApiClient()


def _ready(pod: Any) -> bool:
    status = pod.status
    if pod.metadata.deletion_timestamp is not None or status is None or not status.pod_ip:
        return False
    if status.phase != "Running":
        return False
    return any(c.type == "Ready" and c.status == "True" for c in status.conditions or ())


def _port(pod: Any, port_name: str) -> int:
    ports = [p for c in pod.spec.containers or () for p in c.ports or ()]
    named = [p.container_port for p in ports if p.name == port_name]
    if named:
        return named[0]
    return ports[0].container_port if ports else DEFAULT_PORT


def _weight(pod: Any, annotation: str, warned: set[tuple[str, str]]) -> float | None:
    text = (pod.metadata.annotations or {}).get(annotation)
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not math.isfinite(value) or value < 0:
        if (pod.metadata.name, text) not in warned:  # once per pod and value, not per poll
            warned.add((pod.metadata.name, text))
            LOG.warning("pod %s: ignoring %s=%r (expected a number >= 0)", pod.metadata.name,
                        annotation, text)
        return None
    return value


def _max_batch(pod: Any, arg: str) -> int | None:
    """The positive integer after `arg` (or `arg=`) in any container's command or args."""
    for container in pod.spec.containers or []:
        words = [*(container.command or []), *(container.args or [])]
        for i, word in enumerate(words):
            text = words[i + 1] if word == arg and i + 1 < len(words) else (
                word.removeprefix(arg + "=") if word.startswith(arg + "=") else None)
            if text is not None and text.isdigit() and int(text) > 0:
                return int(text)
    return None


def _variant(pod: Any, labels: dict[str, str], label: str) -> str | None:
    if labels.get(label):
        return labels[label]
    owners = [o for o in pod.metadata.owner_references or () if o.controller]
    return owners[0].name if owners else None


class KubernetesSource:
    """Ready Pods matching a label selector, as a backends document."""

    def __init__(self, selector: str, api: client.ApiClient, namespace: str | None = None,
                 port: int | None = None, port_name: str = "http",
                 labels: PodLabels | None = None, timeout_s: float = 10.0) -> None:
        self.selector = selector
        self.name = f"kubernetes pods {selector!r}" + (f" in {namespace}" if namespace else "")
        self._core = client.CoreV1Api(api)
        self._namespace = namespace
        self._port = port
        self._port_name = port_name
        self._labels = labels or PodLabels()
        self._timeout_s = timeout_s
        self._last: list[dict[str, Any]] | None = None
        self._warned: set[tuple[str, str]] = set()

    def _list(self) -> list[Any]:
        if self._namespace:
            pods = self._core.list_namespaced_pod(self._namespace, label_selector=self.selector,
                                                  _request_timeout=self._timeout_s)
        else:
            pods = self._core.list_pod_for_all_namespaces(label_selector=self.selector,
                                                          _request_timeout=self._timeout_s)
        return list(pods.items or ())

    def entry(self, pod: Any) -> dict[str, Any] | None:
        """The backend entry of a Pod, or None if it is not ready or has no model label."""
        labels = pod.metadata.labels or {}
        model = labels.get(self._labels.model)
        if not model or not _ready(pod):
            return None
        entry: dict[str, Any] = {
            "url": f"http://{pod.status.pod_ip}:{self._port or _port(pod, self._port_name)}",
            "model": model, "variant": _variant(pod, labels, self._labels.variant),
            "weight": _weight(pod, self._labels.weight, self._warned),
            "service_class": labels.get(self._labels.service_class) or None,
            "pod": f"{pod.metadata.namespace}/{pod.metadata.name}",
        }
        max_batch = _max_batch(pod, self._labels.max_batch_arg)
        if max_batch is not None:
            entry["max_batch"] = max_batch
        return entry

    async def fetch(self) -> BackendsDocument | None:
        """The ready Pods' backends, or None when they are the same as last time."""
        try:
            pods = await asyncio.to_thread(self._list)
        except (ApiException, HTTPError, OSError) as exc:
            raise SourceUnavailable(f"{self.name}: {type(exc).__name__}: {exc}") from None
        entries = sorted((e for p in pods if (e := self.entry(p)) is not None),
                         key=lambda e: (e["model"], e["url"]))
        if entries == self._last:
            return None
        self._last = entries
        return parse_backends({"backends": entries}, self.name)
