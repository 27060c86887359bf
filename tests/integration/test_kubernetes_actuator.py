"""The Kubernetes actuator through the real `kubernetes` client, against an API server fake.

`tests/actuator/fake_apiserver.py` serves Deployments and Pods on 127.0.0.1; the official
client makes every HTTP call (`actuator.kubernetes_api.KubernetesDeploymentApi`), so
these tests cover the wire: paths, patch content types, status codes, retries,
timeouts and partial failures.
"""

from __future__ import annotations

import pytest

from actuator.base import ActuatorUnavailable
from actuator.kubernetes import KubernetesActuator
from actuator.kubernetes_api import ApiError, KubernetesDeploymentApi, RetryPolicy, connect
from tests.actuator.fake_apiserver import FakeApiServer
from tests.actuator.plans import allocation, plan, settings, spec, variant

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

SPLIT = plan(allocation("premium-llama", variant("H100", 2, 128, 0.6),
                        variant("A100", 1, 64, 0.4)),
             allocation("premium-qwen", variant("2xL4", 1, 32)))
MOVED = plan(allocation("premium-llama", variant("H100", 3, 96, 0.6),
                        variant("A100", 2, 64, 0.4)),
             allocation("premium-qwen", variant("2xL4", 1, 32)))
FAST = RetryPolicy(attempts=4, base_delay_s=0.01, max_delay_s=0.05, timeout_s=1.0)


@pytest.fixture
def server():
    with FakeApiServer() as fake:
        yield fake


def api_for(url: str, policy: RetryPolicy = FAST) -> KubernetesDeploymentApi:
    return KubernetesDeploymentApi(connect(url), "fleet", policy)


def actuator(url: str, mode: str = "apply", policy: RetryPolicy = FAST) -> KubernetesActuator:
    return KubernetesActuator(api_for(url, policy), spec(), settings(mode))


def test_apply_creates_patches_and_scales_over_http(server):
    act = actuator(server.url)
    assert act.apply(SPLIT, plan_id="p1", reason="start").ok
    assert server.names() == ["premium-llama-a100", "premium-llama-h100", "premium-qwen-2xl4"]
    server.requests.clear()
    result = act.apply(MOVED, plan_id="p2", reason="busier")
    assert result.ok, result.failures
    writes = [(r["method"], r["path"].rsplit("/deployments/", 1)[-1], r["content_type"])
              for r in server.writes()]
    assert writes == [
        ("PATCH", "premium-llama-a100", "application/strategic-merge-patch+json"),
        ("PATCH", "premium-llama-a100/scale", "application/merge-patch+json"),
        ("PATCH", "premium-llama-h100", "application/strategic-merge-patch+json"),
        ("PATCH", "premium-llama-h100/scale", "application/merge-patch+json"),
    ]
    h100 = server.get("deployments", "premium-llama-h100")
    container = h100["spec"]["template"]["spec"]["containers"][0]
    assert container["args"][-2:] == ["--max-num-seqs", "96"]
    assert container["image"].startswith("vllm/")  # the strategic merge kept the rest
    assert h100["spec"]["replicas"] == 3
    assert h100["metadata"]["annotations"]["fleetplan.io/plan-id"] == "p2"
    state = act.observe()
    assert [(v.variant, v.replicas, v.ready_replicas, v.max_batch) for v in state.variants] == [
        ("premium-llama-a100", 2, 2, 64), ("premium-llama-h100", 3, 3, 96),
        ("premium-qwen-2xl4", 1, 1, 32)]


def test_dry_run_only_reads(server):
    actuator(server.url).apply(SPLIT, plan_id="p1", reason="start")
    server.requests.clear()
    result = actuator(server.url, "dry-run").apply(MOVED, plan_id="p2", reason="what if")
    assert {c.kind for c in result.changes} == {"reconfigure", "scale"}
    assert server.writes() == []
    assert server.get("deployments", "premium-llama-h100")["spec"]["replicas"] == 2


@pytest.mark.parametrize(("status", "reason"), [
    (409, "Conflict"), (429, "TooManyRequests"), (500, "InternalError"),
    (503, "ServiceUnavailable"), (504, "Timeout")])
def test_conflicts_and_server_errors_are_retried(server, status, reason):
    act = actuator(server.url)
    act.apply(SPLIT, plan_id="p1", reason="start")
    server.fail("PATCH", "/deployments/premium-llama-h100", status, reason, count=2)
    server.fail("PATCH", "/deployments/premium-llama-a100/scale", status, reason, count=1)
    server.requests.clear()
    result = act.apply(MOVED, plan_id="p2", reason="busier")
    assert result.ok, result.failures
    attempts = [r["path"] for r in server.writes()]
    assert attempts.count("/apis/apps/v1/namespaces/fleet/deployments/premium-llama-h100") == 3
    assert attempts.count(
        "/apis/apps/v1/namespaces/fleet/deployments/premium-llama-a100/scale") == 2
    assert server.get("deployments", "premium-llama-h100")["spec"]["replicas"] == 3


def test_timeouts_are_retried(server):
    act = actuator(server.url, policy=RetryPolicy(attempts=3, base_delay_s=0.01, timeout_s=0.3))
    server.fail("GET", "/deployments", 504, "Timeout", count=1, delay_s=1.0)
    assert act.apply(SPLIT, plan_id="p1", reason="start").ok
    assert len([r for r in server.requests if r["method"] == "GET"]) >= 2


def test_a_persistent_failure_is_reported_and_the_rest_applied(server):
    act = actuator(server.url)
    act.apply(SPLIT, plan_id="p1", reason="start")
    server.fail("PATCH", "/deployments/premium-llama-h100", 503, "ServiceUnavailable",
                count=100)
    result = act.apply(MOVED, plan_id="p2", reason="busier")
    assert [f.variant for f in result.failures] == ["premium-llama-h100"]
    assert "HTTP 503 ServiceUnavailable" in result.failures[0].reason
    assert [(c.variant, c.kind) for c in result.changes] == [("premium-llama-a100", "scale")]
    assert server.get("deployments", "premium-llama-a100")["spec"]["replicas"] == 2
    assert server.get("deployments", "premium-llama-h100")["spec"]["replicas"] == 2


def test_an_unmanaged_deployment_of_the_same_name_is_not_taken_over(server):
    server.add("deployments", {"metadata": {"name": "premium-qwen-2xl4", "labels": {"app": "x"}},
                               "spec": {"replicas": 7}})
    result = actuator(server.url).apply(SPLIT, plan_id="p1", reason="start")
    assert [f.variant for f in result.failures] == ["premium-qwen-2xl4"]
    assert "AlreadyExists" in result.failures[0].reason
    creates = [r for r in server.requests if r["method"] == "POST"]
    assert len(creates) == 3  # AlreadyExists is not retried
    assert server.get("deployments", "premium-qwen-2xl4")["spec"]["replicas"] == 7


def test_pods_get_the_new_router_weight(server):
    act = actuator(server.url)
    act.apply(SPLIT, plan_id="p1", reason="start")
    server.add("pods", {"metadata": {"name": "premium-llama-h100-x1", "labels": {
        "fleetplan.io/managed": "true", "fleetplan.io/variant": "premium-llama-h100"},
        "annotations": {"fleetplan.io/router-weight": "0.6"}}})
    reweighted = plan(allocation("premium-llama", variant("H100", 2, 128, 0.9),
                                 variant("A100", 1, 64, 0.1)),
                      allocation("premium-qwen", variant("2xL4", 1, 32)))
    assert act.apply(reweighted, plan_id="p2", reason="reweight").ok
    pod = server.get("pods", "premium-llama-h100-x1")
    assert pod["metadata"]["annotations"]["fleetplan.io/router-weight"] == "0.9"
    assert pod["metadata"]["generation"] == 2


def test_an_unreachable_api_server_is_unavailable():
    with FakeApiServer() as fake:
        url = fake.url
    act = actuator(url, policy=RetryPolicy(attempts=2, base_delay_s=0.01, timeout_s=0.5))
    with pytest.raises(ActuatorUnavailable, match="list deployments"):
        act.observe()


def test_the_wrapper_reads_and_deletes(server):
    api = api_for(server.url)
    assert api.read("nothing") is None
    actuator(server.url).apply(SPLIT, plan_id="p1", reason="start")
    assert api.read("premium-qwen-2xl4")["spec"]["replicas"] == 1
    api.delete("premium-qwen-2xl4")
    api.delete("premium-qwen-2xl4")  # absent is fine
    assert server.names() == ["premium-llama-a100", "premium-llama-h100"]
    with pytest.raises(ApiError, match="HTTP 404"):
        api.scale("premium-qwen-2xl4", 3)


def test_a_token_budget_change_rolls_the_pod_template_over_http(server):
    act = actuator(server.url)
    budgeted = plan(allocation("premium-llama", variant("H100", 2, 128, token_budget=8192)))
    assert act.apply(budgeted, plan_id="b1", reason="start").ok
    server.requests.clear()
    smaller = plan(allocation("premium-llama", variant("H100", 2, 128, token_budget=2048)))
    result = act.apply(smaller, plan_id="b2", reason="smaller budget")
    assert result.ok, result.failures
    assert [(c.kind, c.detail, c.restarts_pods) for c in result.changes] == [
        ("reconfigure", "token budget 8192 -> 2048", True)]
    assert [(r["method"], r["content_type"]) for r in server.writes()] == [
        ("PATCH", "application/strategic-merge-patch+json")]
    h100 = server.get("deployments", "premium-llama-h100")
    container = h100["spec"]["template"]["spec"]["containers"][0]
    assert container["args"][-5:] == ["--max-num-seqs", "128", "--max-num-batched-tokens",
                                      "2048", "--enable-chunked-prefill"]
    assert container["image"].startswith("vllm/")
    assert [v.token_budget for v in act.observe().variants] == [2048]
