"""Native fleet documents: the examples load, and broken documents fail precisely."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from specs.documents import FleetSpec, ModelTarget
from specs.errors import SpecError
from specs.loading import load_fleet

EXAMPLES = Path(__file__).resolve().parents[2] / "specs" / "examples"


def example() -> dict:
    return json.loads((EXAMPLES / "heterogeneous-fleet.json").read_text())


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.json")), ids=lambda p: p.name)
def test_examples_load(path: Path) -> None:
    loaded = load_fleet(path)
    assert loaded.format == "native"
    assert loaded.spec.servers, "examples should carry servers"
    for server in loaded.spec.servers:
        assert loaded.spec.profiles_for(server.model)


def test_example_lookups() -> None:
    spec = load_fleet(EXAMPLES / "heterogeneous-fleet.json").spec
    assert spec.accelerator("2xL4").multiplicity == 2
    assert spec.profile("qwen_2_5_14b", "2xL4") is not None
    assert spec.profile("qwen_2_5_14b", "L4") is None
    premium = spec.service_class("premium").target_for("llama_3_1_8b")
    assert premium is not None and ModelTarget.percentile(premium.ttft_statistic) == 95.0
    batch_llama = next(s for s in spec.servers if s.name == "batch-llama")
    assert spec.targets_for(batch_llama).itl_ms == 200


def _set(doc: dict, path: list, value: object) -> dict:
    doc = copy.deepcopy(doc)
    node = doc
    for key in path[:-1]:
        node = node[key]
    if value is _DELETE:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return doc


_DELETE = object()

BROKEN = [
    # (id, path to change, new value, expected JSON path, words expected in the message)
    ("unknown-accelerator", ["profiles", 2, "accelerator"], "T4", "$.profiles[2].accelerator", "unknown accelerator"),
    ("model-without-profile", ["servers", 1, "model"], "mistral_7b", "$.servers[1].model", "no profile"),
    ("negative-rate", ["servers", 0, "load", "arrival_rate_rps"], -1.0, "$.servers[0].load.arrival_rate_rps", "greater than or equal"),
    ("missing-field", ["accelerators", 1, "cost_per_hour"], _DELETE, "$.accelerators[1].cost_per_hour", "missing field"),
    ("unknown-key", ["servers", 0, "lod"], {}, "$.servers[0].lod", "unknown field"),
    ("unknown-class", ["servers", 3, "service_class"], "gold", "$.servers[3].service_class", "unknown service class"),
    ("duplicate-server", ["servers", 1, "name"], "premium-llama", "$.servers[1]", "duplicate server"),
    ("bad-statistic", ["service_classes", 0, "targets", 0, "ttft_statistic"], "p100", "$.service_classes[0].targets[0].ttft_statistic", "percentile"),
    ("min-above-max", ["servers", 0, "max_replicas"], 0, "$.servers[0].max_replicas", "greater than or equal"),
    ("replica-bounds", ["servers", 0, "min_replicas"], 20, "$.servers[0]", "max_replicas must be >= min_replicas"),
    ("wrong-type", ["servers", 0, "current", "replicas"], "two", "$.servers[0].current.replicas", "integer"),
    ("unknown-solver", ["optimizer", "solver"], "simplex", "$.optimizer.solver", "milp"),
    ("zero-output-tokens", ["servers", 0, "load", "out_tokens"], 0, "$.servers[0].load", "out_tokens"),
    ("current-unknown-accelerator", ["servers", 0, "current", "accelerator"], "B200", "$.servers[0].current.accelerator", "unknown accelerator"),
    ("keep-without-current", ["servers", 1, "keep_accelerator"], True, "$.servers[1].keep_accelerator", "no current allocation"),
    ("duplicate-profile", ["profiles", 1, "accelerator"], "H100", "$.profiles[1]", "duplicate profile"),
    ("priority-range", ["service_classes", 1, "priority"], 0, "$.service_classes[1].priority", "greater than or equal"),
    ("no-accelerators", ["accelerators"], [], "$.accelerators", "at least 1"),
    ("negative-capacity", ["capacity", "L4"], -3, "$.capacity.L4", "greater than or equal"),
]


@pytest.mark.parametrize("case", BROKEN, ids=[c[0] for c in BROKEN])
def test_broken_native_document(tmp_path: Path, case: tuple) -> None:
    _, path, value, where, words = case
    file = tmp_path / "fleet.json"
    file.write_text(json.dumps(_set(example(), path, value)))
    with pytest.raises(SpecError) as info:
        load_fleet(file)
    err = info.value
    assert err.file == str(file)
    assert err.json_path == where, str(err)
    assert words in str(err), str(err)


def test_nan_is_rejected(tmp_path: Path) -> None:
    file = tmp_path / "fleet.json"
    file.write_text(json.dumps(example()).replace('"arrival_rate_rps": 4.0', '"arrival_rate_rps": NaN'))
    with pytest.raises(SpecError, match="NaN is not allowed"):
        load_fleet(file)


def test_nan_is_rejected_programmatically() -> None:
    doc = _set(example(), ["servers", 0, "load", "arrival_rate_rps"], float("nan"))
    with pytest.raises(ValueError, match="finite"):
        FleetSpec.model_validate(doc)


def test_malformed_json_and_missing_file(tmp_path: Path) -> None:
    file = tmp_path / "fleet.json"
    file.write_text('{"accelerators": [')
    with pytest.raises(SpecError, match="not valid JSON"):
        load_fleet(file)
    with pytest.raises(SpecError, match="no such file"):
        load_fleet(tmp_path / "absent.json")


def test_documents_are_frozen() -> None:
    spec = load_fleet(EXAMPLES / "h100-vllm.json").spec
    with pytest.raises(ValueError):
        spec.servers[0].min_replicas = 3  # type: ignore[misc]
