"""The Kubernetes API behind one thin wrapper: the only module that imports `kubernetes`.

`DeploymentApi` is what the Kubernetes actuator needs from the API server, in one
namespace, on plain JSON dicts (camelCase, as the API speaks): list, read, create,
patch (strategic merge) and delete Deployments, set replicas through the scale
subresource, and list and patch the Pods of a variant (to keep their router-weight
annotation current without restarting them). `KubernetesDeploymentApi` implements it
with the official client; tests fake this Protocol, or run this class against an HTTP
API server fake on 127.0.0.1.

Every call is retried with exponential backoff (`RetryPolicy`) on 409 Conflict (not on
AlreadyExists), 429, 500, 502, 503, 504, timeouts and connection failures; what is still
failing after the last attempt raises `ApiError` (`transient` says whether retrying
later may help). urllib3's own retries are switched off so this policy is the only one.

To extend: a new call is a Protocol method plus a method here that goes through
`_call`, so it gets the same retries and error translation.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import urllib3
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

Json = dict[str, Any]
T = TypeVar("T")
RETRY_STATUSES = frozenset({409, 429, 500, 502, 503, 504})
STRATEGIC_MERGE = "application/strategic-merge-patch+json"
MERGE_PATCH = "application/merge-patch+json"


class ApiError(Exception):
    """A call that failed for good: HTTP status (0: no answer), reason and message."""

    def __init__(self, operation: str, status: int, reason: str, message: str = "",
                 retry_after_s: float | None = None) -> None:
        self.operation = operation
        self.status = status
        self.reason = reason
        self.message = message
        self.retry_after_s = retry_after_s
        text = f"{operation}: " + (f"HTTP {status} {reason}" if status else reason)
        super().__init__(text + (f": {message}" if message else ""))

    @property
    def transient(self) -> bool:
        """True when the same call may succeed later (conflict, throttling, 5xx, no answer)."""
        if self.status == 409:
            return self.reason != "AlreadyExists"
        return self.status == 0 or self.status in RETRY_STATUSES


@dataclass(frozen=True)
class RetryPolicy:
    """Attempts per call and the backoff between them (doubling, capped)."""

    attempts: int = 5
    base_delay_s: float = 0.5
    max_delay_s: float = 8.0
    timeout_s: float = 10.0
    """Read timeout of one request, seconds (connect timeout: the smaller of it and 5)."""

    def delay(self, attempt: int, retry_after_s: float | None = None) -> float:
        """Seconds to wait after failed attempt number `attempt` (0-based)."""
        backoff = min(self.max_delay_s, self.base_delay_s * (2 ** attempt))
        if retry_after_s is not None:
            backoff = max(backoff, min(self.max_delay_s, retry_after_s))
        return backoff


def with_retries(operation: str, call: Callable[[], T], policy: RetryPolicy,
                 sleep: Callable[[float], None]) -> T:
    """Run `call`, retrying transient `ApiError`s as `policy` says; raise the last one."""
    for attempt in range(max(1, policy.attempts)):
        try:
            return call()
        except ApiError as error:
            if not error.transient or attempt >= policy.attempts - 1:
                raise
            sleep(policy.delay(attempt, error.retry_after_s))
    raise AssertionError("unreachable")  # pragma: no cover


class DeploymentApi(Protocol):
    """Deployments (and a variant's Pods) in one namespace, as JSON dicts."""

    namespace: str

    def list(self, label_selector: str) -> list[Json]:
        """Deployments matching a label selector."""
        ...

    def read(self, name: str) -> Json | None:
        """One Deployment, or None when it does not exist."""
        ...

    def create(self, body: Json) -> Json:
        """Create a Deployment."""
        ...

    def patch(self, name: str, patch: Json) -> Json:
        """Strategic-merge patch a Deployment."""
        ...

    def scale(self, name: str, replicas: int) -> Json:
        """Set replicas through the scale subresource; returns the Scale."""
        ...

    def delete(self, name: str) -> None:
        """Delete a Deployment (absent is fine)."""
        ...

    def list_pods(self, label_selector: str) -> list[Json]:
        """Pods matching a label selector."""
        ...

    def patch_pod(self, name: str, patch: Json) -> Json:
        """Merge-patch a Pod (metadata only; this never restarts it)."""
        ...


def connect(api_url: str | None = None, *, kubeconfig: str | None = None,
            context: str | None = None) -> client.ApiClient:
    """An API client: `api_url` without auth (a fake, or `kubectl proxy`), else the
    in-cluster service account, else the kubeconfig (`kubeconfig`, `context`)."""
    configuration = client.Configuration()
    if api_url:
        configuration.host = api_url.rstrip("/")
    else:
        try:
            config.load_incluster_config(client_configuration=configuration)
        except config.ConfigException:
            config.load_kube_config(config_file=kubeconfig, context=context,
                                    client_configuration=configuration)
    configuration.retries = 0  # RetryPolicy is the only retry loop
    return client.ApiClient(configuration)


def _retry_after(exc: ApiException) -> float | None:
    value = (exc.headers or {}).get("Retry-After")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _translate(operation: str, exc: Exception) -> ApiError:
    if isinstance(exc, ApiException):
        reason, message = exc.reason or "", ""
        try:
            status_body = json.loads(exc.body or "{}")
            reason = status_body.get("reason") or reason
            message = status_body.get("message") or ""
        except (ValueError, AttributeError):
            message = (exc.body or "")[:200]
        return ApiError(operation, int(exc.status or 0), reason, message, _retry_after(exc))
    return ApiError(operation, 0, f"{type(exc).__name__}: {exc}")


class KubernetesDeploymentApi:
    """`DeploymentApi` over the official client, with retries; see the module docstring."""

    def __init__(self, api_client: client.ApiClient, namespace: str,
                 policy: RetryPolicy | None = None,
                 sleep: Callable[[float], None] = time.sleep,
                 field_manager: str = "fleetplan") -> None:
        self.namespace = namespace
        self._client = api_client
        self._policy = policy or RetryPolicy()
        self._sleep = sleep
        self._field_manager = field_manager

    def _call(self, operation: str, call: Callable[[Any], Any]) -> Any:
        timeout = (min(5.0, self._policy.timeout_s), self._policy.timeout_s)

        def once() -> Any:
            try:
                response = call(timeout)
                return json.loads(response.data or b"null")
            except (ApiException, urllib3.exceptions.HTTPError, OSError, ValueError) as exc:
                raise _translate(operation, exc) from exc

        return with_retries(operation, once, self._policy, self._sleep)

    def _apps(self) -> client.AppsV1Api:
        return client.AppsV1Api(self._client)

    def _core(self) -> client.CoreV1Api:
        return client.CoreV1Api(self._client)

    def list(self, label_selector: str) -> list[Json]:
        """Deployments matching a label selector."""
        found = self._call(f"list deployments {label_selector}", lambda t: (
            self._apps().list_namespaced_deployment(
                self.namespace, label_selector=label_selector, _request_timeout=t,
                _preload_content=False)))
        return list(found.get("items") or [])

    def read(self, name: str) -> Json | None:
        """One Deployment, or None when it does not exist."""
        try:
            return self._call(f"read deployment {name}", lambda t: (
                self._apps().read_namespaced_deployment(
                    name, self.namespace, _request_timeout=t, _preload_content=False)))
        except ApiError as error:
            if error.status == 404:
                return None
            raise

    def create(self, body: Json) -> Json:
        """Create a Deployment."""
        name = body.get("metadata", {}).get("name", "?")
        return self._call(f"create deployment {name}", lambda t: (
            self._apps().create_namespaced_deployment(
                self.namespace, body, field_manager=self._field_manager,
                _request_timeout=t, _preload_content=False)))

    def patch(self, name: str, patch: Json) -> Json:
        """Strategic-merge patch a Deployment."""
        return self._call(f"patch deployment {name}", lambda t: (
            self._apps().patch_namespaced_deployment(
                name, self.namespace, patch, field_manager=self._field_manager,
                _content_type=STRATEGIC_MERGE, _request_timeout=t, _preload_content=False)))

    def scale(self, name: str, replicas: int) -> Json:
        """Set replicas through the scale subresource."""
        return self._call(f"scale deployment {name}", lambda t: (
            self._apps().patch_namespaced_deployment_scale(
                name, self.namespace, {"spec": {"replicas": replicas}},
                field_manager=self._field_manager, _content_type=MERGE_PATCH,
                _request_timeout=t, _preload_content=False)))

    def delete(self, name: str) -> None:
        """Delete a Deployment (absent is fine)."""
        try:
            self._call(f"delete deployment {name}", lambda t: (
                self._apps().delete_namespaced_deployment(
                    name, self.namespace, _request_timeout=t, _preload_content=False)))
        except ApiError as error:
            if error.status != 404:
                raise

    def list_pods(self, label_selector: str) -> list[Json]:
        """Pods matching a label selector."""
        found = self._call(f"list pods {label_selector}", lambda t: (
            self._core().list_namespaced_pod(
                self.namespace, label_selector=label_selector, _request_timeout=t,
                _preload_content=False)))
        return list(found.get("items") or [])

    def patch_pod(self, name: str, patch: Json) -> Json:
        """Merge-patch a Pod's metadata."""
        return self._call(f"patch pod {name}", lambda t: (
            self._core().patch_namespaced_pod(
                name, self.namespace, patch, field_manager=self._field_manager,
                _content_type=MERGE_PATCH, _request_timeout=t, _preload_content=False)))
