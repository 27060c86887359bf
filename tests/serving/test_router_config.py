"""The backends document (file and plan URL share one parser), settings and the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from controller.cli import build_parser, main
from controller.commands.router import settings_from_args, source_from_args
from serving.router_config import RouterSettings, load_backends, parse_backends
from specs.errors import SpecError

GOOD = {"backends": [
    {"url": "http://127.0.0.1:8001/", "model": "llama", "variant": "llama-h100", "weight": 0.75,
     "max_batch": 64, "accelerator": "H100"},
    {"url": "http://127.0.0.1:8002", "model": "llama", "variant": "llama-h100", "weight": 0.75},
    {"url": "http://127.0.0.1:8003", "model": "llama", "variant": "llama-a100", "weight": 0.25,
     "service_class": "Premium"},
], "plan": {"allocations": []}, "policies": {"llama": "weighted"}}


def test_a_good_document_with_extra_fields_parses() -> None:
    document = parse_backends(GOOD, "plan-url")
    first = document.backends[0]
    assert first.url == "http://127.0.0.1:8001", "trailing slash dropped"
    assert first.model_extra == {"accelerator": "H100"}, "unknown per-backend fields are kept"
    assert first.max_batch == 64 and document.backends[1].max_batch is None
    assert document.backends[2].service_class == "Premium"
    assert document.policies == {"llama": "weighted"}
    minimal = parse_backends({"backends": [{"url": "https://x.example", "model": "m"}]}, "f")
    assert minimal.backends[0].variant_name == "https://x.example"
    assert minimal.backends[0].weight is None


@pytest.mark.parametrize(("change", "path", "words"), [
    (lambda d: d["backends"][1].pop("url"), "$.backends[1].url", "missing field 'url'"),
    (lambda d: d["backends"][0].update(url="ftp://x"), "$.backends[0].url", "http(s) URL"),
    (lambda d: d["backends"][0].update(weight=-1), "$.backends[0].weight", "greater than"),
    (lambda d: d["backends"][1].update(weight=0.5), "$.backends[1].weight", "disagree"),
    (lambda d: d["backends"][0].update(max_batch=0), "$.backends[0].max_batch", "greater than"),
    (lambda d: d["backends"].append(dict(d["backends"][1])), "$.backends[3]", "listed twice"),
    (lambda d: d.update(policies={"llama": "fastest"}), "$.policies.llama", "unknown router"),
    (lambda d: d.pop("backends"), "$.backends", "missing field 'backends'"),
])
def test_bad_documents_name_the_json_path(change, path: str, words: str) -> None:
    document = json.loads(json.dumps(GOOD))
    change(document)
    with pytest.raises(SpecError) as info:
        parse_backends(document, "http://controller/plan")
    assert info.value.json_path == path
    assert words in str(info.value)
    assert info.value.file == "http://controller/plan"


def test_files(tmp_path: Path) -> None:
    good = tmp_path / "backends.json"
    good.write_text(json.dumps(GOOD))
    assert len(load_backends(good).backends) == 3
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(SpecError, match="not valid JSON"):
        load_backends(bad)
    with pytest.raises(SpecError, match="no such backends file"):
        load_backends(tmp_path / "absent.json")
    listed = tmp_path / "list.json"
    listed.write_text("[]")
    with pytest.raises(SpecError, match="expected a JSON object"):
        load_backends(listed)


def test_policy_precedence() -> None:
    s = RouterSettings(default_policy=None, model_policies={"a": "round_robin"})
    assert s.policy_name("a", {"a": "weighted"}, planned=True) == "round_robin"
    assert s.policy_name("b", {"b": "power_of_two"}, planned=True) == "power_of_two"
    assert s.policy_name("c", {}, planned=True) == "least_loaded"
    assert s.policy_name("c", {}, planned=False) == "least_outstanding"
    assert RouterSettings(default_policy="session_affinity").policy_name(
        "c", {}, planned=True) == "session_affinity"


def test_cli_options_become_settings() -> None:
    args = build_parser().parse_args([
        "router", "--port", "0", "--backends", "b.json", "--policy", "power_of_two",
        "--model-policy", "m=workload_aware", "--max-outstanding", "0", "--cache-size", "10",
        "--session-header", "X-User", "--p2c-metric", "latency", "--seed", "3"])
    s = settings_from_args(args)
    assert s.default_policy == "power_of_two" and s.model_policies == {"m": "workload_aware"}
    assert s.max_outstanding is None and s.cache_size == 10 and s.seed == 3
    assert s.session_header == "x-user" and s.policy_options.p2c_metric == "latency"


def test_cli_bad_input_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "b.json"
    bad.write_text(json.dumps({"backends": [{"url": "http://x:1", "model": "m", "weight": "a"}]}))
    assert main(["router", "--port", "0", "--backends", str(bad)]) == 2
    assert "$.backends[0].weight" in capsys.readouterr().err
    assert main(["router", "--port", "0", "--model-policy", "m=nope"]) == 2
    assert "known: least_loaded, least_outstanding" in capsys.readouterr().err
    assert main(["router", "--port", "0", "--model-policy", "nope"]) == 2
    with pytest.raises(SystemExit):
        build_parser().parse_args(["router", "--backends", "a", "--plan", "http://x"])


def test_cli_sources() -> None:
    from serving.discovery import FileSource, PlanSource
    from serving.discovery_kubernetes import KubernetesSource

    parse = build_parser().parse_args
    assert source_from_args(parse(["router"])) is None
    assert isinstance(source_from_args(parse(["router", "--backends", "b.json"]))(None),
                      FileSource)
    assert isinstance(source_from_args(parse(["router", "--plan", "http://c/plan"]))(None),
                      PlanSource)
    kube = source_from_args(parse([
        "router", "--kubernetes", "app=llm", "--namespace", "serving",
        "--kubernetes-api", "http://127.0.0.1:9", "--model-label", "example.com/model"]))(None)
    assert isinstance(kube, KubernetesSource) and kube.selector == "app=llm"
    assert kube.name == "kubernetes pods 'app=llm' in serving"
