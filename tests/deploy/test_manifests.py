"""Every manifest in deploy/ validated offline, so a typo fails CI.

Kubernetes objects are checked with `kubernetes-validate` in strict mode (unknown fields
and wrong types fail) against the schemas of one fixed Kubernetes version shipped inside
the package (`KUBERNETES_VERSION`), so no cluster or network is needed. The CRD objects
under deploy/kubernetes/optional/ (ServiceMonitor, KEDA ScaledObject) have no schema
there: they are parsed and checked for their apiVersion, kind and references instead.
The ConfigMap's embedded config, spec and Deployment templates are checked too: the spec
equals the bundled example, the config is a valid controller config, and the templates
build valid variant Deployments for every profile of the spec.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from actuator.base import variant_name
from actuator.desired import DesiredVariant
from actuator.kubernetes_api import KubernetesDeploymentApi
from actuator.manifests import ManifestSettings, build_deployment, read_token_budget
from actuator.options import kubernetes_actuator
from controller.cli import build_parser
from specs.documents import FleetSpec

REPO_ROOT = Path(__file__).resolve().parents[2]
DEPLOY = REPO_ROOT / "deploy"
KUBERNETES = DEPLOY / "kubernetes"
KUBERNETES_VERSION = "1.32"
"""A fixed version whose schemas kubernetes-validate ships (offline)."""
CRDS = {"servicemonitor.yaml": ("monitoring.coreos.com/v1", "ServiceMonitor"),
        "keda-scaledobject.yaml": ("keda.sh/v1alpha1", "ScaledObject")}


def documents(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


def core_manifests() -> list[dict]:
    """Every document of every manifest except the optional CRD objects."""
    return [doc for path in sorted(KUBERNETES.rglob("*.yaml"))
            if path.parent.name != "optional" for doc in documents(path)]


def manifest_params() -> list:
    return [pytest.param(doc, id=f"{path.relative_to(KUBERNETES)}#{i}")
            for path in sorted(KUBERNETES.rglob("*.yaml")) if path.parent.name != "optional"
            for i, doc in enumerate(documents(path))]


def configmap_data(name: str = "configmap.yaml") -> dict[str, str]:
    return documents(KUBERNETES / name)[0]["data"]


@pytest.mark.parametrize("doc", manifest_params())
def test_every_manifest_is_valid_in_strict_mode(doc):
    kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def test_strict_mode_catches_a_typo():
    doc = documents(KUBERNETES / "controller.yaml")[0]
    doc["spec"]["template"]["spec"]["containers"][0]["imagePullPolcy"] = "Always"
    with pytest.raises(kubernetes_validate.ValidationError, match="imagePullPolcy"):
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
    doc = documents(KUBERNETES / "controller.yaml")[0]
    doc["spec"]["replicas"] = "one"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def test_the_expected_objects_are_there():
    kinds = {(d["kind"], d["metadata"]["name"]) for d in core_manifests()}
    assert {("Namespace", "fleetplan"), ("ServiceAccount", "fleetplan-controller"),
            ("Role", "fleetplan-controller"), ("RoleBinding", "fleetplan-controller"),
            ("ConfigMap", "fleetplan-config"), ("Deployment", "fleetplan-controller"),
            ("Service", "fleetplan-controller"), ("Deployment", "fleetplan-router"),
            ("Service", "fleetplan-router")} <= kinds
    assert all(d["metadata"].get("namespace") == "fleetplan" for d in core_manifests()
               if d["kind"] != "Namespace")


@pytest.mark.parametrize("name", sorted(CRDS))
def test_optional_crd_objects_parse_and_reference_real_objects(name):
    # Not schema-checked: CRD schemas are not among kubernetes-validate's built-in ones.
    (doc,) = documents(KUBERNETES / "optional" / name)
    assert (doc["apiVersion"], doc["kind"]) == CRDS[name]
    assert doc["metadata"]["namespace"] == "fleetplan"
    if doc["kind"] == "ServiceMonitor":
        service = documents(KUBERNETES / "controller.yaml")[1]
        assert doc["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
        assert {e["port"] for e in doc["spec"]["endpoints"]} <= {
            p["name"] for p in service["spec"]["ports"]}
    else:
        variants = {d["metadata"]["name"] for p in (KUBERNETES / "variants").glob("*.yaml")
                    for d in documents(p)}
        assert doc["spec"]["scaleTargetRef"]["name"] in variants
        assert "fleetplan_actuator_desired_replicas" in doc["spec"]["triggers"][0]["metadata"]["query"]


def test_rbac_is_least_privilege_and_enough_for_the_actuator():
    role = next(d for d in documents(KUBERNETES / "rbac.yaml")
                if d["kind"] == "Role" and d["metadata"]["name"] == "fleetplan-controller")
    rules = {(g, r): set(rule["verbs"]) for rule in role["rules"]
             for g in rule["apiGroups"] for r in rule["resources"]}
    assert rules == {("apps", "deployments"): {"get", "list", "create", "patch"},
                     ("apps", "deployments/scale"): {"get", "patch"},
                     ("", "pods"): {"get", "list", "patch"}}
    # every call of the wrapper is covered (delete is never used by the actuator)
    calls = {"list", "read", "create", "patch", "scale", "list_pods", "patch_pod"}
    assert calls <= set(dir(KubernetesDeploymentApi))


def test_the_configmap_spec_is_the_bundled_example():
    data = configmap_data()
    example = json.loads((REPO_ROOT / "specs/examples/heterogeneous-fleet.json").read_text())
    assert json.loads(data["spec.json"]) == example, (
        "update spec.json in deploy/kubernetes/configmap*.yaml from the example")
    assert json.loads(configmap_data("configmap-emulated.yaml")["spec.json"]) == example


@pytest.mark.parametrize("name", ["configmap.yaml", "configmap-emulated.yaml"])
def test_the_controller_config_is_valid(name):
    config_module = pytest.importorskip("controller.config")
    config = config_module.ControllerConfig.model_validate(
        json.loads(configmap_data(name)["config.json"]))
    assert config.actuator.kind == "kubernetes" and config.actuator.namespace == "fleetplan"
    assert config.spec == "/etc/fleetplan/spec.json"


@pytest.mark.parametrize("name", ["configmap.yaml", "configmap-emulated.yaml"])
def test_the_configured_templates_build_valid_variants(name, tmp_path):
    data = configmap_data(name)
    options = json.loads(data["config.json"])["actuator"]["options"]
    for key, text in data.items():  # the ConfigMap as mounted at /etc/fleetplan
        (tmp_path / key).write_text(text)
    rebased = json.loads(json.dumps(options).replace("/etc/fleetplan/", f"{tmp_path}/"))
    spec = FleetSpec.model_validate(json.loads(data["spec.json"]))
    act = kubernetes_actuator(spec, namespace="fleetplan", mode="apply",
                              options={**rebased, "api_url": "http://127.0.0.1:1"})
    manifests: ManifestSettings = act.settings.manifests
    for profile in spec.profiles:
        unit = spec.accelerator(profile.accelerator)
        server = next(s for s in spec.servers if s.model == profile.model)
        d = DesiredVariant(variant_name(server.name, unit.name), server.name, server.model,
                           server.service_class, unit.name, unit.card_type, 2, 48, 0.5,
                           profile.units_per_replica * unit.multiplicity, token_budget=4096)
        body = build_deployment(manifests, d, plan_id="p", reason="test")
        body["metadata"]["namespace"] = "fleetplan"
        kubernetes_validate.validate(body, KUBERNETES_VERSION, strict=True)
        args = body["spec"]["template"]["spec"]["containers"][0]["args"]
        assert read_token_budget(manifests, body) == 4096
        if name == "configmap.yaml":  # vLLM: the budget needs chunked prefill on V0 engines
            assert args[-3:] == ["--max-num-batched-tokens", "4096",
                                       "--enable-chunked-prefill"]
        else:
            assert args[-2:] == ["--token-budget", "4096"]


def test_emulated_variants_start_with_arguments_the_worker_accepts(tmp_path):
    data = configmap_data("configmap-emulated.yaml")
    options = json.loads(data["config.json"])["actuator"]["options"]
    template = yaml.safe_load(data["emulated-worker.yaml"])
    keys = ("max_batch_arg", "token_budget_arg", "chunked_prefill_arg", "accelerator_label",
            "gpu_resource")
    manifests = ManifestSettings(templates={"*": template},
                                 **{k: options[k] for k in keys if k in options})
    spec = FleetSpec.model_validate(json.loads(data["spec.json"]))
    server = spec.servers[0]
    d = DesiredVariant(variant_name(server.name, "H100"), server.name, server.model,
                       server.service_class, "H100", "H100", 1, 48, 1.0, 1, token_budget=2048)
    container = build_deployment(manifests, d, plan_id="p", reason="test")["spec"]["template"][
        "spec"]["containers"][0]
    env = {e["name"]: e["value"] for e in container["env"] if "value" in e}
    args = [re.sub(r"\$\((\w+)\)", lambda m: env[m.group(1)], a) for a in container["args"]]
    parsed = build_parser("worker").parse_args(args)
    assert (parsed.model, parsed.max_batch, parsed.token_budget) == (server.model, 48, 2048)


def test_example_variants_look_like_what_the_actuator_builds():
    for path in sorted((KUBERNETES / "variants").glob("*.yaml")):
        (doc,) = documents(path)
        labels = doc["metadata"]["labels"]
        server, accelerator = labels["fleetplan.io/server"], labels["fleetplan.io/accelerator"]
        assert doc["metadata"]["name"] == variant_name(server, accelerator) == \
            labels["fleetplan.io/variant"], path.name
        assert doc["spec"]["selector"]["matchLabels"] == {
            "fleetplan.io/managed": "true", "fleetplan.io/variant": doc["metadata"]["name"]}
        pod_labels = doc["spec"]["template"]["metadata"]["labels"]
        assert {k: v for k, v in labels.items() if k.startswith("fleetplan.io/")}.items() \
            <= pod_labels.items(), path.name


def test_prometheus_config_and_grafana_dashboard_parse():
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yaml").read_text())
    jobs = {job["job_name"] for job in config["scrape_configs"]}
    assert jobs == {"fleetplan-variants", "fleetplan-router", "fleetplan-controller"}
    dashboard = json.loads((DEPLOY / "grafana" / "fleetplan-dashboard.json").read_text())
    assert dashboard["uid"] and dashboard["panels"]
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    assert all(t["expr"] for p in dashboard["panels"] for t in p["targets"])


def test_the_image_runs_the_controller_with_the_mounted_config():
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    assert 'CMD ["run", "--config", "/etc/fleetplan/config.json"]' in dockerfile
    controller = documents(KUBERNETES / "controller.yaml")[0]
    pod = controller["spec"]["template"]["spec"]
    mounts = {m["mountPath"]: m["name"] for m in pod["containers"][0]["volumeMounts"]}
    assert mounts["/etc/fleetplan"] == "config"
    assert pod["serviceAccountName"] == "fleetplan-controller"


def _fleetplan_containers() -> list[tuple[str, dict]]:
    """(where, container) for every fleetplan server the manifests run, templates included."""
    found = []
    for doc in core_manifests():
        if doc["kind"] == "Deployment":
            found += [(doc["metadata"]["name"], c)
                      for c in doc["spec"]["template"]["spec"]["containers"]]
    template = yaml.safe_load(configmap_data("configmap-emulated.yaml")["emulated-worker.yaml"])
    found += [("configmap-emulated template", c)
              for c in template["spec"]["template"]["spec"]["containers"]]
    return [(where, c) for where, c in found if c["image"].startswith("fleetplan")]


def test_every_fleetplan_server_gets_its_auth_token_from_the_secret():
    containers = _fleetplan_containers()
    assert {w for w, _ in containers} >= {"fleetplan-controller", "fleetplan-router",
                                          "premium-llama-h100", "configmap-emulated template"}
    for where, container in containers:
        env = {e["name"]: e for e in container.get("env", [])}
        assert env["FLEETPLAN_AUTH_TOKEN"]["valueFrom"]["secretKeyRef"] == {
            "name": "fleetplan-auth", "key": "token"}, where
        assert "--insecure-no-auth" not in container.get("args", []), where
