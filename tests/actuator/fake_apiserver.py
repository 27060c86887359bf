"""A small Kubernetes API server fake on 127.0.0.1, for the real `kubernetes` client.

No real kube-apiserver can run on the test machines, so the integration tests point the
official client (through `actuator.kubernetes_api`) at this HTTP server. It implements
what the actuator calls, for `apps/v1` Deployments and `v1` Pods in any namespace:

- `GET .../deployments?labelSelector=` (equality selectors), `GET`, `POST` (409
  AlreadyExists), `PATCH` (strategic merge, merge patch; JSON patch answers 415),
  `DELETE`; `GET|PATCH .../deployments/NAME/scale`;
- `GET .../pods?labelSelector=`, `PATCH .../pods/NAME` (merge patch).

Objects get uid, resourceVersion, generation and creationTimestamp; status follows spec
at once (every replica ready). `fail(...)` injects faults: an error status (409, 5xx,
...) for the next N matching requests, optionally after a delay longer than the
client's timeout. Every request is logged (`requests`) for assertions.

Run in a background thread (`with FakeApiServer() as server: server.url`).

Why not `kmock`'s KubernetesEmulator: it has no label selectors and no strategic merge
of lists (a container patch would drop the image), and its pytest plugin makes every
pytest run of the project depend on pytest-asyncio; this fake is small and enough.
"""

from __future__ import annotations

import copy
import itertools
import json
import re
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.actuator.fakes import matches, merge_patch, settle, strategic_merge

Json = dict[str, Any]
ROUTE = re.compile(r"^/(?:apis/apps/v1|api/v1)/namespaces/(?P<ns>[^/]+)/(?P<kind>deployments|pods)"
                   r"(?:/(?P<name>[^/]+))?(?:/(?P<sub>scale))?$")


@dataclass
class Fault:
    """Answer `status` to the next `count` requests of `method` whose path contains `path`."""

    method: str
    path: str
    status: int
    reason: str
    count: int = 1
    delay_s: float = 0.0


def status_body(code: int, reason: str, message: str) -> Json:
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "reason": reason, "message": message, "code": code}


class FakeApiServer:
    """Deployments and Pods in memory behind a threaded HTTP server; see the module doc."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str, str], Json] = {}
        self.requests: list[Json] = []
        self.faults: list[Fault] = []
        self._lock = threading.Lock()
        self._versions = itertools.count(1)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        assert self._server is not None, "not started"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> FakeApiServer:
        handler = type("Handler", (_Handler,), {"api": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,),
                                        daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._server is not None and self._thread is not None
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def fail(self, method: str, path: str, status: int, reason: str = "", count: int = 1,
             delay_s: float = 0.0) -> None:
        """Inject a fault (see `Fault`)."""
        with self._lock:
            self.faults.append(Fault(method, path, status, reason, count, delay_s))

    def add(self, kind: str, body: Json, namespace: str = "fleet") -> None:
        """Store an object directly (e.g. the Pods a Deployment would have)."""
        with self._lock:
            self._store(kind, namespace, copy.deepcopy(body), created=True)

    def get(self, kind: str, name: str, namespace: str = "fleet") -> Json | None:
        with self._lock:
            found = self.objects.get((kind, namespace, name))
            return copy.deepcopy(found) if found else None

    def names(self, kind: str = "deployments", namespace: str = "fleet") -> list[str]:
        with self._lock:
            return sorted(n for k, ns, n in self.objects if k == kind and ns == namespace)

    def writes(self) -> list[Json]:
        """Logged requests other than GET."""
        return [r for r in self.requests if r["method"] != "GET"]

    def _store(self, kind: str, namespace: str, body: Json, created: bool) -> Json:
        meta = body.setdefault("metadata", {})
        meta["namespace"] = namespace
        meta["resourceVersion"] = str(next(self._versions))
        if created:
            meta.setdefault("uid", f"uid-{meta['resourceVersion']}")
            meta.setdefault("creationTimestamp", "2025-01-01T00:00:00Z")
            meta["generation"] = 1
        else:
            meta["generation"] = int(meta.get("generation", 1)) + 1
        if kind == "deployments":
            body.update(apiVersion="apps/v1", kind="Deployment")
            settle(body)
        else:
            body.update(apiVersion="v1", kind="Pod")
        self.objects[(kind, namespace, meta["name"])] = body
        return body

    def fault_for(self, method: str, path: str) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if fault.count > 0 and fault.method == method and fault.path in path:
                    fault.count -= 1
                    return fault
        return None

    def handle(self, method: str, path: str, query: dict[str, list[str]], content_type: str,
               body: Any) -> tuple[int, Json]:
        """Serve one request (already past fault injection)."""
        route = ROUTE.match(path)
        if route is None:
            return 404, status_body(404, "NotFound", f"no route {path}")
        ns, kind, name, sub = route.group("ns", "kind", "name", "sub")
        with self._lock:
            if name is None:
                return self._collection(method, kind, ns, query, body)
            return self._item(method, kind, ns, name, sub, content_type, body)

    def _collection(self, method: str, kind: str, ns: str, query: dict[str, list[str]],
                    body: Any) -> tuple[int, Json]:
        if method == "GET":
            selector = (query.get("labelSelector") or [""])[0]
            items = [copy.deepcopy(o) for (k, n, _), o in sorted(self.objects.items())
                     if k == kind and n == ns and matches(o["metadata"].get("labels"), selector)]
            list_kind = "DeploymentList" if kind == "deployments" else "PodList"
            return 200, {"kind": list_kind, "apiVersion": "apps/v1" if kind == "deployments"
                         else "v1", "metadata": {"resourceVersion": "1"}, "items": items}
        if method == "POST":
            name = (body.get("metadata") or {}).get("name")
            if not name:
                return 422, status_body(422, "Invalid", "metadata.name: Required value")
            if (kind, ns, name) in self.objects:
                return 409, status_body(409, "AlreadyExists", f'{kind} "{name}" already exists')
            return 201, copy.deepcopy(self._store(kind, ns, copy.deepcopy(body), created=True))
        return 405, status_body(405, "MethodNotAllowed", method)

    def _item(self, method: str, kind: str, ns: str, name: str, sub: str | None,
              content_type: str, body: Any) -> tuple[int, Json]:
        current = self.objects.get((kind, ns, name))
        if current is None:
            return 404, status_body(404, "NotFound", f'{kind} "{name}" not found')
        if method == "DELETE":
            del self.objects[(kind, ns, name)]
            return 200, status_body(200, "", "deleted") | {"status": "Success"}
        if sub == "scale":
            if method == "PATCH":
                patched = merge_patch({"spec": {"replicas": current["spec"].get("replicas")}},
                                      body)
                current = copy.deepcopy(current)
                current["spec"]["replicas"] = patched["spec"]["replicas"]
                current = self._store(kind, ns, current, created=False)
            replicas = current["spec"]["replicas"]
            return 200, {"kind": "Scale", "apiVersion": "autoscaling/v1",
                         "metadata": {"name": name, "namespace": ns},
                         "spec": {"replicas": replicas}, "status": {"replicas": replicas}}
        if method == "GET":
            return 200, copy.deepcopy(current)
        if method != "PATCH":
            return 405, status_body(405, "MethodNotAllowed", method)
        if content_type.startswith("application/strategic-merge-patch+json"):
            merged = strategic_merge(current, body)
        elif content_type.startswith("application/merge-patch+json"):
            merged = merge_patch(current, body)
        else:
            return 415, status_body(415, "UnsupportedMediaType", content_type)
        return 200, copy.deepcopy(self._store(kind, ns, merged, created=False))


class _Handler(BaseHTTPRequestHandler):
    api: FakeApiServer
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass

    def _serve(self) -> None:
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        body = json.loads(raw) if raw else None
        content_type = self.headers.get("Content-Type") or ""
        self.api.requests.append({"method": self.command, "path": parts.path,
                                  "query": parts.query, "content_type": content_type,
                                  "body": body})
        fault = self.api.fault_for(self.command, parts.path)
        if fault is not None:
            time.sleep(fault.delay_s)
            code, answer = fault.status, status_body(fault.status, fault.reason, "injected")
        else:
            code, answer = self.api.handle(self.command, parts.path, parse_qs(parts.query),
                                           content_type, body)
        data = json.dumps(answer).encode()
        try:
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (timeout tests)

    do_GET = do_POST = do_PATCH = do_DELETE = _serve
