"""KubernetesActuator over the in-memory FakeDeploymentApi: what it changes, and what not."""

from __future__ import annotations

import copy

import pytest

from actuator.base import ActuatorUnavailable
from actuator.kubernetes import KubernetesActuator, diff_fleet
from actuator.manifests import read_gpus, read_max_batch, read_node_value, read_token_budget
from actuator.metrics_mode import DesiredReplicasGauges
from actuator.ratelimit import TokenBucket
from specs.clock import FakeClock
from tests.actuator.fakes import FakeDeploymentApi
from tests.actuator.plans import allocation, plan, settings, spec, variant

SPLIT = plan(allocation("premium-llama", variant("H100", 2, 128, 0.6),
                        variant("A100", 1, 64, 0.4)),
             allocation("premium-qwen", variant("2xL4", 1, 32)))


def actuator(api: FakeDeploymentApi | None, mode: str = "apply", **kwargs) -> KubernetesActuator:
    limit = kwargs.pop("limit", None)
    gauges = kwargs.pop("gauges", None)
    clock = kwargs.pop("clock", None)
    chosen = settings(mode, limit, **kwargs) if limit else settings(mode, **kwargs)
    return KubernetesActuator(api, spec(), chosen, clock=clock, gauges=gauges)


def started(p=SPLIT) -> FakeDeploymentApi:
    """A fake cluster where `p` has been applied."""
    api = FakeDeploymentApi()
    assert actuator(api).apply(p, plan_id="p0", reason="start").ok
    api.calls.clear()
    return api


def test_heterogeneous_split_becomes_one_deployment_per_variant():
    api = FakeDeploymentApi()
    result = actuator(api).apply(SPLIT, plan_id="p1", reason="load up")
    assert result.ok and not result.deferred
    assert [(c.variant, c.kind) for c in result.changes] == [
        ("premium-llama-a100", "create"), ("premium-llama-h100", "create"),
        ("premium-qwen-2xl4", "create")]
    h100 = api.deployments["premium-llama-h100"]
    manifests = settings().manifests
    assert h100["spec"]["replicas"] == 2
    assert read_max_batch(manifests, h100) == 128
    assert read_node_value(manifests, h100) == "H100"
    assert read_gpus(manifests, api.deployments["premium-qwen-2xl4"]) == 2  # 2 cards per unit
    labels = h100["metadata"]["labels"]
    assert labels["fleetplan.io/managed"] == "true"
    assert labels["fleetplan.io/server"] == "premium-llama"
    assert labels["fleetplan.io/model"] == "llama_3_1_8b"
    assert labels["fleetplan.io/service-class"] == "premium"
    assert labels["fleetplan.io/accelerator"] == "H100"
    annotations = h100["metadata"]["annotations"]
    assert annotations["fleetplan.io/plan-id"] == "p1"
    assert annotations["fleetplan.io/reason"] == "load up"
    assert annotations["fleetplan.io/router-weight"] == "0.6"


def test_applying_the_same_plan_again_writes_nothing():
    api = started()
    result = actuator(api).apply(SPLIT, plan_id="p1", reason="again")
    assert result.ok and result.changes == () and result.deferred == ()
    assert api.writes() == []


def test_replicas_go_through_scale_and_max_batch_through_the_template():
    api = started()
    moved = plan(allocation("premium-llama", variant("H100", 4, 96, 0.6),
                            variant("A100", 1, 64, 0.4)),
                 allocation("premium-qwen", variant("2xL4", 1, 32)))
    result = actuator(api).apply(moved, plan_id="p2", reason="busier")
    assert [(c.variant, c.kind, c.detail, c.restarts_pods) for c in result.changes] == [
        ("premium-llama-h100", "reconfigure", "max batch 128 -> 96", True),
        ("premium-llama-h100", "scale", "replicas 2 -> 4", False)]
    assert [(c["op"], c["name"]) for c in api.writes()] == [
        ("patch", "premium-llama-h100"), ("scale", "premium-llama-h100")]
    h100 = api.deployments["premium-llama-h100"]
    assert h100["spec"]["replicas"] == 4
    assert read_max_batch(settings().manifests, h100) == 96
    assert h100["spec"]["template"]["spec"]["containers"][0]["image"].startswith("vllm/")
    assert h100["metadata"]["annotations"]["fleetplan.io/plan-id"] == "p2"


def test_dry_run_reports_the_changes_and_changes_nothing():
    api = started()
    before = copy.deepcopy(api.deployments)
    moved = plan(allocation("premium-llama", variant("H100", 3, 64, 1.0)),
                 allocation("premium-qwen", variant("A100", 2, 32)))
    dry = actuator(api, "dry-run", limit=TokenBucket(burst=1, per_hour=0))
    first = dry.apply(moved, plan_id="p3", reason="what if")
    second = dry.apply(moved, plan_id="p3", reason="what if")
    assert first == second  # the restart budget is not spent by a dry run
    assert first.mode == "dry-run" and first.changes
    kinds = {(c.variant, c.kind) for c in first.changes}
    assert ("premium-qwen-a100", "create") in kinds
    assert ("premium-llama-a100", "scale") in kinds  # retired: would scale to 0
    assert ("premium-qwen-2xl4", "scale") in kinds
    assert api.writes() == []
    assert api.deployments == before
    assert dry.last_result == second


def test_servers_without_allocation_are_never_zero_filled():
    api = started()
    # premium-qwen could not be served this time (capacity): it has no allocation
    only_llama = plan(allocation("premium-llama", variant("H100", 2, 128, 1.0)),
                      unserved=("premium-qwen",))
    result = actuator(api).apply(only_llama, plan_id="p4", reason="capacity")
    touched = {c.variant for c in result.changes}
    assert "premium-qwen-2xl4" not in touched
    assert api.deployments["premium-qwen-2xl4"]["spec"]["replicas"] == 1
    # the retired A100 variant of a planned server is scaled to 0 and kept
    assert ("premium-llama-a100", "scale", "replicas 1 -> 0") in {
        (c.variant, c.kind, c.detail) for c in result.changes}
    assert api.deployments["premium-llama-a100"]["spec"]["replicas"] == 0


def test_an_allocation_with_no_variants_scales_the_server_to_zero():
    api = started()
    result = actuator(api).apply(plan(allocation("premium-qwen")), plan_id="p5", reason="idle")
    assert [(c.variant, c.detail) for c in result.changes] == [
        ("premium-qwen-2xl4", "replicas 1 -> 0")]
    assert api.deployments["premium-llama-h100"]["spec"]["replicas"] == 2


def test_pod_restarting_changes_are_rate_limited_and_deferred():
    api = started()
    clock = FakeClock(100.0)
    act = actuator(api, limit=TokenBucket(burst=1, per_hour=60), clock=clock)
    moved = plan(allocation("premium-llama", variant("H100", 3, 64, 0.6),
                            variant("A100", 1, 32, 0.4)),
                 allocation("premium-qwen", variant("2xL4", 1, 32)))
    first = act.apply(moved, plan_id="p6", reason="new batch sizes")
    assert [(c.variant, c.kind) for c in first.changes] == [
        ("premium-llama-a100", "reconfigure"), ("premium-llama-h100", "scale")]
    assert [c.variant for c in first.deferred] == ["premium-llama-h100"]
    assert "pod-restart limit" in first.deferred[0].detail
    assert api.deployments["premium-llama-h100"]["spec"]["replicas"] == 3  # scale still done
    assert act.apply(moved, plan_id="p6", reason="retry").deferred  # no token yet
    clock.advance(60.0)  # one token a minute
    third = act.apply(moved, plan_id="p6", reason="retry")
    assert [(c.variant, c.kind) for c in third.changes] == [("premium-llama-h100", "reconfigure")]
    assert third.deferred == ()


def test_a_failing_variant_is_reported_and_the_others_go_on():
    api = started()
    api.fail("patch", "premium-llama-h100", 500)
    moved = plan(allocation("premium-llama", variant("H100", 3, 128, 0.6),
                            variant("A100", 2, 64, 0.4)),
                 allocation("premium-qwen", variant("2xL4", 1, 32)))
    result = actuator(api).apply(moved, plan_id="p7", reason="up")
    assert not result.ok
    assert [(f.variant, f.server) for f in result.failures] == [
        ("premium-llama-h100", "premium-llama")]
    assert "HTTP 500" in result.failures[0].reason
    assert [(c.variant, c.kind) for c in result.changes] == [("premium-llama-a100", "scale")]
    assert api.deployments["premium-llama-a100"]["spec"]["replicas"] == 2
    assert api.deployments["premium-llama-h100"]["spec"]["replicas"] == 2


def test_a_failed_scale_keeps_the_patch_change_and_reports_the_scale():
    api = started()
    api.fail("scale", "premium-llama-h100", 503, "ServiceUnavailable")
    moved = plan(allocation("premium-llama", variant("H100", 3, 96, 0.6),
                            variant("A100", 1, 64, 0.4)),
                 allocation("premium-qwen", variant("2xL4", 1, 32)))
    result = actuator(api).apply(moved, plan_id="p8", reason="up")
    assert [c.kind for c in result.changes] == ["reconfigure"]
    assert [f.variant for f in result.failures] == ["premium-llama-h100"]


def test_a_fleet_that_cannot_be_listed_is_unavailable():
    api = FakeDeploymentApi()
    api.fail("list", "fleetplan.io/managed=true", 503)
    with pytest.raises(ActuatorUnavailable):
        actuator(api).apply(SPLIT, plan_id="p9", reason="x")
    with pytest.raises(ActuatorUnavailable):
        actuator(api).observe()


def test_observe_reads_the_managed_deployments():
    state = actuator(started()).observe()
    assert [(v.variant, v.server, v.model, v.accelerator, v.replicas, v.ready_replicas,
             v.max_batch, v.service_class) for v in state.variants] == [
        ("premium-llama-a100", "premium-llama", "llama_3_1_8b", "A100", 1, 1, 64, "premium"),
        ("premium-llama-h100", "premium-llama", "llama_3_1_8b", "H100", 2, 2, 128, "premium"),
        ("premium-qwen-2xl4", "premium-qwen", "qwen_2_5_14b", "2xL4", 1, 1, 32, "premium")]


def test_router_weights_change_without_restart_and_reach_the_pods():
    api = started()
    api.pods = {f"premium-llama-h100-{i}": {"metadata": {
        "name": f"premium-llama-h100-{i}",
        "labels": {"fleetplan.io/managed": "true", "fleetplan.io/variant": "premium-llama-h100"},
        "annotations": {"fleetplan.io/router-weight": "0.6"}}} for i in range(2)}
    reweighted = plan(allocation("premium-llama", variant("H100", 2, 128, 0.75),
                                 variant("A100", 1, 64, 0.25)),
                      allocation("premium-qwen", variant("2xL4", 1, 32)))
    result = actuator(api).apply(reweighted, plan_id="p10", reason="reweight")
    assert {(c.variant, c.detail, c.restarts_pods) for c in result.changes} == {
        ("premium-llama-h100", "router weight 0.6 -> 0.75", False),
        ("premium-llama-a100", "router weight 0.4 -> 0.25", False)}
    assert {p["metadata"]["annotations"]["fleetplan.io/router-weight"]
            for p in api.pods.values()} == {"0.75"}
    assert all("template" not in c["body"].get("spec", {}) for c in api.writes()
               if c["op"] == "patch")


def test_a_model_without_template_fails_alone():
    api = FakeDeploymentApi()
    act = actuator(api)
    act.settings.manifests.templates["llama_3_1_8b"] = act.settings.manifests.templates.pop("*")
    result = act.apply(SPLIT, plan_id="p11", reason="x")
    assert [f.variant for f in result.failures] == ["premium-qwen-2xl4"]
    assert "no Deployment template for model 'qwen_2_5_14b'" in result.failures[0].reason
    assert sorted(api.deployments) == ["premium-llama-a100", "premium-llama-h100"]


def test_max_batch_through_an_env_var():
    api = FakeDeploymentApi()
    act = actuator(api, max_batch_env="MAX_NUM_SEQS", max_batch_arg=None)
    act.apply(SPLIT, plan_id="p12", reason="x")
    container = api.deployments["premium-llama-h100"]["spec"]["template"]["spec"]["containers"][0]
    assert {"name": "MAX_NUM_SEQS", "value": "128"} in container["env"]
    assert container["args"][-1] == "256"  # the template's own arg is left alone
    moved = plan(allocation("premium-llama", variant("H100", 2, 100, 0.6),
                            variant("A100", 1, 64, 0.4)),
                 allocation("premium-qwen", variant("2xL4", 1, 32)))
    api.calls.clear()
    act.apply(moved, plan_id="p13", reason="x")
    patch = api.writes()[0]["body"]["spec"]["template"]["spec"]["containers"][0]
    assert patch == {"name": "vllm", "env": [{"name": "MAX_NUM_SEQS", "value": "100"}]}
    assert read_max_batch(act.settings.manifests, api.deployments["premium-llama-h100"]) == 100


def test_metrics_mode_exports_desired_replicas_and_calls_nothing():
    gauges = DesiredReplicasGauges()
    act = actuator(None, "metrics", gauges=gauges)
    first = act.apply(SPLIT, plan_id="m1", reason="x")
    assert first.mode == "metrics"
    assert gauges.values() == {"premium-llama-a100": 1, "premium-llama-h100": 2,
                               "premium-qwen-2xl4": 1}
    text = gauges.exposition().decode()
    assert ('fleetplan_actuator_desired_replicas{accelerator="H100",model="llama_3_1_8b",'
            'server="premium-llama",variant="premium-llama-h100"} 2.0') in text
    moved = plan(allocation("premium-llama", variant("H100", 5, 128, 1.0)),
                 unserved=("premium-qwen",))
    second = act.apply(moved, plan_id="m2", reason="x")
    assert {(c.variant, c.detail) for c in second.changes} == {
        ("premium-llama-h100", "desired replicas gauge 2 -> 5"),
        ("premium-llama-a100", "desired replicas gauge 1 -> 0")}
    assert gauges.values()["premium-qwen-2xl4"] == 1  # unplanned server: kept


def test_diff_is_pure_and_makes_before_it_breaks():
    observed = {name: body for name, body in started().deployments.items()}
    frozen = copy.deepcopy(observed)
    moved = plan(allocation("premium-llama", variant("L4", 2, 16, 1.0)))
    diffs, failures = diff_fleet(settings().manifests, moved, spec(), observed, "p", "r")
    assert failures == []
    assert [d.name for d in diffs] == ["premium-llama-l4", "premium-llama-a100",
                                       "premium-llama-h100"]  # create first, then retire
    assert observed == frozen


BUDGETED = plan(allocation("premium-llama", variant("H100", 2, 128, 0.6, token_budget=8192),
                           variant("A100", 1, 64, 0.4, token_budget=8192)),
                allocation("premium-qwen", variant("2xL4", 1, 32, token_budget=2048)))


def test_a_token_budget_change_is_a_rolling_reconfigure():
    api = started(BUDGETED)
    manifests = settings().manifests
    assert read_token_budget(manifests, api.deployments["premium-qwen-2xl4"]) == 2048
    smaller = plan(allocation("premium-llama", variant("H100", 2, 128, 0.6, token_budget=2048),
                              variant("A100", 1, 64, 0.4, token_budget=8192)),
                   allocation("premium-qwen", variant("2xL4", 1, 32, token_budget=2048)))
    result = actuator(api).apply(smaller, plan_id="b1", reason="long prompts stall decodes")
    assert result.ok and not result.deferred
    assert [(c.variant, c.kind, c.detail, c.restarts_pods) for c in result.changes] == [
        ("premium-llama-h100", "reconfigure", "token budget 8192 -> 2048", True)]
    (write,) = api.writes()
    assert write["op"] == "patch" and write["name"] == "premium-llama-h100"
    (container,) = write["body"]["spec"]["template"]["spec"]["containers"]
    assert container["args"][-5:] == ["--max-num-seqs", "128", "--max-num-batched-tokens",
                                      "2048", "--enable-chunked-prefill"]
    h100 = api.deployments["premium-llama-h100"]
    assert read_token_budget(manifests, h100) == 2048
    assert h100["spec"]["template"]["spec"]["containers"][0]["args"].count(
        "--enable-chunked-prefill") == 1
    assert {(v.variant, v.token_budget) for v in actuator(api).observe().variants} == {
        ("premium-llama-a100", 8192), ("premium-llama-h100", 2048), ("premium-qwen-2xl4", 2048)}


def test_a_token_budget_change_spends_the_restart_limit():
    api = started(BUDGETED)
    act = actuator(api, limit=TokenBucket(burst=1, per_hour=0), clock=FakeClock(0.0))
    smaller = plan(allocation("premium-llama", variant("H100", 2, 128, 0.6, token_budget=4096),
                              variant("A100", 1, 64, 0.4, token_budget=4096)),
                   allocation("premium-qwen", variant("2xL4", 1, 32, token_budget=2048)))
    result = act.apply(smaller, plan_id="b2", reason="smaller budgets")
    assert [(c.variant, c.detail) for c in result.changes] == [
        ("premium-llama-a100", "token budget 8192 -> 4096")]
    assert [c.variant for c in result.deferred] == ["premium-llama-h100"]
    assert read_token_budget(settings().manifests, api.deployments["premium-llama-h100"]) == 8192


def test_a_plan_without_a_token_budget_leaves_the_running_one():
    api = started(BUDGETED)
    result = actuator(api).apply(SPLIT, plan_id="b3", reason="no budget chosen")
    assert result.changes == () and api.writes() == []
    assert read_token_budget(settings().manifests, api.deployments["premium-llama-h100"]) == 8192


def test_a_new_variant_is_created_with_its_token_budget():
    api = FakeDeploymentApi()
    result = actuator(api).apply(BUDGETED, plan_id="b4", reason="start")
    assert ("premium-qwen-2xl4", "create", "replicas 1, max batch 32, token budget 2048, "
            "2 nvidia.com/gpu per replica, node nvidia.com/gpu.product=L4") in {
        (c.variant, c.kind, c.detail) for c in result.changes}


def test_metrics_mode_exports_the_desired_token_budget():
    gauges = DesiredReplicasGauges()
    actuator(None, "metrics", gauges=gauges).apply(BUDGETED, plan_id="m3", reason="x")
    text = gauges.exposition().decode()
    assert ('fleetplan_actuator_desired_token_budget{accelerator="2xL4",model="qwen_2_5_14b",'
            'server="premium-qwen",variant="premium-qwen-2xl4"} 2048.0') in text
