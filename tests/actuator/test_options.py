"""Actuators from the controller config's plain options."""

from __future__ import annotations

from pathlib import Path

import pytest

from actuator.options import kubernetes_actuator, load_template, local_actuator
from specs.errors import SpecError
from tests.actuator.plans import SPEC_PATH, VLLM_TEMPLATE, spec

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_kubernetes_options_become_settings(tmp_path):
    (tmp_path / "t.yaml").write_text("kind: ConfigMap\n---\n" + (
        REPO_ROOT / "deploy/kubernetes/variants/vllm-h100.yaml").read_text())
    act = kubernetes_actuator(spec(), namespace="llm", mode="dry-run", base_dir=tmp_path, options={
        "api_url": "http://127.0.0.1:1", "templates": {"llama_3_1_8b": "t.yaml"},
        "template": VLLM_TEMPLATE, "gpu_resource": None, "restart_burst": 1,
        "restarts_per_hour": 6, "retry_attempts": 2})
    manifests = act.settings.manifests
    assert manifests.template_for("llama_3_1_8b")["metadata"]["name"] == "premium-llama-h100"
    assert manifests.template_for("qwen_2_5_14b") == VLLM_TEMPLATE
    assert manifests.gpu_resource is None
    assert (act.settings.restart_limit.burst, act.settings.restart_limit.per_hour) == (1, 6.0)
    assert act.api is not None and act.api.namespace == "llm"


def test_metrics_mode_needs_no_api_server():
    act = kubernetes_actuator(spec(), namespace="llm", mode="metrics",
                              options={"template": VLLM_TEMPLATE})
    assert act.api is None and act.gauges is not None


@pytest.mark.parametrize(("options", "message"), [
    ({"template": {}, "max_num_seqs": 3}, "unknown actuator option 'max_num_seqs'"),
    ({}, "needs 'templates' or 'template'"),
    ({"template": "/nonexistent.yaml"}, "cannot read Deployment template"),
])
def test_bad_kubernetes_options_are_user_errors(options, message):
    with pytest.raises(SpecError, match=message):
        kubernetes_actuator(spec(), namespace="x", mode="metrics", options=options)


def test_a_template_file_must_hold_a_deployment(tmp_path):
    path = tmp_path / "t.json"
    path.write_text('{"kind": "Service"}')
    with pytest.raises(SpecError, match="no Deployment"):
        load_template(path)


def test_local_options_become_settings(tmp_path):
    act = local_actuator(SPEC_PATH, mode="apply", options={
        "log_dir": str(tmp_path), "start_timeout_s": 5, "extra_args": ["--max-queue", 8]})
    assert act.settings.log_dir == tmp_path
    assert act.settings.extra_args == ("--max-queue", "8")
    with pytest.raises(SpecError, match="no metrics mode"):
        local_actuator(SPEC_PATH, mode="metrics", options={})
    with pytest.raises(SpecError, match="unknown actuator option 'spec_path'"):
        local_actuator(SPEC_PATH, mode="apply", options={"spec_path": "x"})
