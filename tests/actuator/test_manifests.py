"""Variant Deployments from a template: labels, accelerator, GPUs, max batch, patches."""

from __future__ import annotations

import kubernetes_validate
import pytest

from actuator.base import variant_name
from actuator.desired import DesiredVariant, desired_variants, label_value, retired
from actuator.manifests import (
    build_deployment,
    flag_value,
    read_gpus,
    read_max_batch,
    read_node_value,
    read_token_budget,
    template_patch,
    with_flag,
)
from tests.actuator.plans import allocation, plan, settings, spec, variant

KUBERNETES_VERSION = "1.30"


def desired(accelerator: str = "H100", replicas: int = 2, max_batch: int = 64,
            cards: int = 1, token_budget: int | None = None) -> DesiredVariant:
    return DesiredVariant(name=variant_name("premium-llama", accelerator), server="premium-llama",
                          model="llama_3_1_8b", service_class="premium", accelerator=accelerator,
                          card_type=accelerator.split("x")[-1], replicas=replicas,
                          max_batch=max_batch, router_weight=0.5, cards_per_replica=cards,
                          token_budget=token_budget)


def test_a_built_deployment_is_valid_in_strict_mode():
    body = build_deployment(settings().manifests, desired("2xL4", cards=2), plan_id="p",
                            reason="r")
    kubernetes_validate.validate(body, KUBERNETES_VERSION, strict=True)
    pod = body["spec"]["template"]
    assert body["spec"]["selector"]["matchLabels"] == {
        "fleetplan.io/managed": "true", "fleetplan.io/variant": "premium-llama-2xl4"}
    assert pod["metadata"]["labels"]["app.kubernetes.io/name"] == "vllm"  # template kept
    assert pod["metadata"]["labels"]["fleetplan.io/variant"] == "premium-llama-2xl4"
    assert pod["metadata"]["annotations"] == {"fleetplan.io/router-weight": "0.5"}
    assert pod["spec"]["nodeSelector"] == {"nvidia.com/gpu.product": "L4"}
    container = pod["spec"]["containers"][0]
    assert container["resources"]["limits"] == {"nvidia.com/gpu": "2"}
    assert container["args"] == ["--model", "$(FLEETPLAN_MODEL)", "--port", "8000",
                                 "--max-num-seqs", "64"]
    assert {"name": "FLEETPLAN_MODEL", "value": "llama_3_1_8b"} in container["env"]


def test_node_selector_values_and_gpu_requests_follow_the_settings():
    chosen = settings(accelerator_values={"H100": "NVIDIA-H100-80GB-HBM3"}).manifests
    template = chosen.templates["*"]
    template["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"] = {
        "nvidia.com/gpu": "1", "cpu": "4"}
    body = build_deployment(chosen, desired(cards=4), plan_id="p", reason="r")
    assert read_node_value(chosen, body) == "NVIDIA-H100-80GB-HBM3"
    resources = body["spec"]["template"]["spec"]["containers"][0]["resources"]
    assert resources == {"limits": {"nvidia.com/gpu": "4"},
                         "requests": {"nvidia.com/gpu": "4", "cpu": "4"}}
    assert read_gpus(chosen, body) == 4


def test_gpu_less_clusters_get_no_node_selector_nor_gpus():
    chosen = settings(accelerator_label=None, gpu_resource=None).manifests
    del chosen.templates["*"]["spec"]["template"]["spec"]["containers"][0]["resources"]
    body = build_deployment(chosen, desired(), plan_id="p", reason="r")
    pod_spec = body["spec"]["template"]["spec"]
    assert "nodeSelector" not in pod_spec and "resources" not in pod_spec["containers"][0]
    assert template_patch(chosen, body, desired()) == (None, ())


@pytest.mark.parametrize(("args", "expected"), [
    (["--max-num-seqs", "8"], ["--max-num-seqs", "32"]),
    (["--max-num-seqs=8", "--x"], ["--max-num-seqs=32", "--x"]),
    (["--model", "m"], ["--model", "m", "--max-num-seqs", "32"]),
])
def test_the_max_batch_flag_keeps_its_form(args, expected):
    assert with_flag(args, "--max-num-seqs", "32") == expected
    assert flag_value(expected, "--max-num-seqs") == "32"


def test_template_patch_names_each_difference():
    chosen = settings().manifests
    observed = build_deployment(chosen, desired(), plan_id="p", reason="r")
    assert template_patch(chosen, observed, desired()) == (None, ())
    patch, details = template_patch(chosen, observed, desired(max_batch=96, cards=2))
    assert details == ("max batch 64 -> 96", "nvidia.com/gpu per replica 1 -> 2")
    assert patch == {"spec": {"template": {"spec": {"containers": [{
        "name": "vllm",
        "args": ["--model", "$(FLEETPLAN_MODEL)", "--port", "8000", "--max-num-seqs", "96"],
        "resources": {"limits": {"nvidia.com/gpu": "2"}},
        "env": [{"name": "FLEETPLAN_GPUS", "value": "2"}]}]}}}}
    moved = desired()
    moved = DesiredVariant(**{**moved.__dict__, "card_type": "A100"})
    patch, details = template_patch(chosen, observed, moved)
    assert details == ("node selector nvidia.com/gpu.product H100 -> A100",)
    assert read_max_batch(chosen, observed) == 64


def test_a_token_budget_becomes_vllms_argument_with_chunked_prefill():
    chosen = settings().manifests
    body = build_deployment(chosen, desired(token_budget=2048), plan_id="p", reason="r")
    kubernetes_validate.validate(body, KUBERNETES_VERSION, strict=True)
    args = body["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args == ["--model", "$(FLEETPLAN_MODEL)", "--port", "8000", "--max-num-seqs", "64",
                    "--max-num-batched-tokens", "2048", "--enable-chunked-prefill"]
    assert read_token_budget(chosen, body) == 2048
    assert template_patch(chosen, body, desired(token_budget=2048)) == (None, ())
    # no budget in the plan: the template's own arguments are left as they are
    plain = build_deployment(chosen, desired(), plan_id="p", reason="r")
    assert "--max-num-batched-tokens" not in plain["spec"]["template"]["spec"]["containers"][0][
        "args"]
    assert read_token_budget(chosen, plain) is None
    assert template_patch(chosen, body, desired()) == (None, ())


def test_a_token_budget_change_patches_the_args_once():
    chosen = settings().manifests
    observed = build_deployment(chosen, desired(token_budget=8192), plan_id="p", reason="r")
    patch, details = template_patch(chosen, observed, desired(max_batch=32, token_budget=1024))
    assert details == ("max batch 64 -> 32", "token budget 8192 -> 1024")
    assert patch == {"spec": {"template": {"spec": {"containers": [{
        "name": "vllm",
        "args": ["--model", "$(FLEETPLAN_MODEL)", "--port", "8000", "--max-num-seqs", "32",
                 "--max-num-batched-tokens", "1024", "--enable-chunked-prefill"]}]}}}}
    unset = build_deployment(chosen, desired(), plan_id="p", reason="r")
    _, details = template_patch(chosen, unset, desired(token_budget=4096))
    assert details == ("token budget None -> 4096",)


@pytest.mark.parametrize(("args", "expected"), [
    (["--max-num-batched-tokens=512", "--enable-chunked-prefill"],
     ["--max-num-batched-tokens=4096", "--enable-chunked-prefill"]),
    (["--enable-chunked-prefill=True", "--max-num-batched-tokens", "512"],
     ["--enable-chunked-prefill=True", "--max-num-batched-tokens", "4096"]),
])
def test_the_token_budget_flag_keeps_its_form_and_chunking_is_not_repeated(args, expected):
    chosen = settings().manifests
    chosen.templates["*"]["spec"]["template"]["spec"]["containers"][0]["args"] = args
    body = build_deployment(chosen, desired(token_budget=4096), plan_id="p", reason="r")
    assert body["spec"]["template"]["spec"]["containers"][0]["args"] == [
        *expected, "--max-num-seqs", "64"]


def test_the_token_budget_through_an_env_var_or_another_flag():
    chosen = settings(token_budget_env="MAX_NUM_BATCHED_TOKENS").manifests
    body = build_deployment(chosen, desired(token_budget=2048), plan_id="p", reason="r")
    container = body["spec"]["template"]["spec"]["containers"][0]
    assert {"name": "MAX_NUM_BATCHED_TOKENS", "value": "2048"} in container["env"]
    assert container["args"][-2:] == ["--max-num-seqs", "64"]
    patch, _ = template_patch(chosen, body, desired(token_budget=512))
    assert patch["spec"]["template"]["spec"]["containers"][0] == {
        "name": "vllm", "env": [{"name": "MAX_NUM_BATCHED_TOKENS", "value": "512"}]}
    worker = settings(token_budget_arg="--token-budget", chunked_prefill_arg=None).manifests
    body = build_deployment(worker, desired(token_budget=2048), plan_id="p", reason="r")
    assert body["spec"]["template"]["spec"]["containers"][0]["args"][-2:] == [
        "--token-budget", "2048"]
    unmanaged = settings(token_budget_arg=None).manifests
    body = build_deployment(unmanaged, desired(token_budget=2048), plan_id="p", reason="r")
    assert "--max-num-batched-tokens" not in body["spec"]["template"]["spec"]["containers"][0][
        "args"]
    assert template_patch(unmanaged, body, desired(token_budget=1)) == (None, ())


def test_desired_variants_carry_the_plans_token_budget():
    p = plan(allocation("premium-llama", variant("H100", 1, 64, 0.5, token_budget=2048),
                        variant("A100", 1, 64, 0.5)))
    assert [(d.name, d.token_budget) for d in desired_variants(p, spec())] == [
        ("premium-llama-a100", None), ("premium-llama-h100", 2048)]


def test_a_template_without_the_serving_container_is_an_error():
    chosen = settings(container="sidecar").manifests
    with pytest.raises(ValueError, match="no container 'sidecar'"):
        build_deployment(chosen, desired(), plan_id="p", reason="r")


def test_desired_variants_compute_cards_per_replica_from_the_spec():
    p = plan(allocation("premium-qwen", variant("2xL4", 3, 32, 0.5), variant("H100", 1, 64, 0.5)))
    found = desired_variants(p, spec())
    assert [(d.name, d.cards_per_replica, d.card_type) for d in found] == [
        ("premium-qwen-2xl4", 2, "L4"), ("premium-qwen-h100", 1, "H100")]
    assert desired_variants(p)[0].cards_per_replica == 2  # without a spec: cards / replicas


def test_retired_only_touches_planned_servers():
    p = plan(allocation("premium-llama", variant("H100", 1, 64)))
    running = [("premium-llama-h100", "premium-llama"), ("premium-llama-a100", "premium-llama"),
               ("standard-qwen-l4", "standard-qwen")]
    assert retired(running, p, desired_variants(p, spec())) == ["premium-llama-a100"]


def test_label_values_are_valid():
    assert label_value("premium-llama") == "premium-llama"
    assert label_value("meta-llama/Llama 3.1 8B!") == "meta-llama-Llama-3.1-8B"
    assert len(label_value("x" * 100)) == 63
