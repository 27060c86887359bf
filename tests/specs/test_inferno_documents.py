"""inferno's documents read as they are; errors name inferno's own files and paths."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from specs.errors import SpecError
from specs.inferno import to_inferno_solution
from specs.loading import load_fleet
from specs.plan import Plan, ServerAllocation, VariantAllocation
from tests.conftest import shared_path


def test_small_directory_and_envelope_agree() -> None:
    directory = load_fleet(shared_path("inferno", "sample-data-small"))
    envelope = load_fleet(shared_path("inferno", "sample-data-small", "system-data.json"))
    assert directory.format == envelope.format == "inferno"
    # the published envelope and directory differ only in the saturation policy
    assert directory.spec.model_dump(exclude={"optimizer"}) == envelope.spec.model_dump(
        exclude={"optimizer"}
    )
    spec = directory.spec
    assert len(spec.accelerators) == 6 and len(spec.servers) == 15
    assert spec.capacity == {"L4": 1024, "A100": 768, "AIU2": 1024, "G2": 512}
    assert spec.optimizer.solver == "greedy"


def test_rates_are_converted_from_per_minute() -> None:
    spec = load_fleet(shared_path("inferno", "sample-data-small")).spec
    raw = json.loads(shared_path("inferno", "sample-data-small", "server-data.json").read_text())
    for server, doc in zip(spec.servers, raw["servers"], strict=True):
        load = doc["currentAlloc"]["load"]
        assert server.load.arrival_rate_rps == pytest.approx(load["arrivalRate"] / 60.0)
        assert server.load.in_tokens == load["AvgInTokens"]


def test_profiles_keep_units_and_at_tokens() -> None:
    spec = load_fleet(shared_path("inferno", "sample-data-small")).spec
    l4 = spec.profile("granite_13b", "L4")
    assert l4 is not None
    assert (l4.units_per_replica, l4.max_batch, l4.at_tokens) == (2, 18, 512)
    assert (l4.alpha_ms, l4.beta_ms, l4.gamma_ms) == (137.2, 0.273, 0.00853125)


def test_large_and_vllm_folders_load() -> None:
    large = load_fleet(shared_path("inferno", "sample-data-large")).spec
    assert len(large.servers) == 27 and len(large.accelerators) == 21
    vllm = load_fleet(shared_path("inferno", "control-loop-vllm-gpu")).spec
    assert vllm.servers == [] and vllm.optimizer.saturation_policy == "PriorityExhaustive"


def _copy_small(tmp_path: Path) -> Path:
    target = tmp_path / "small"
    shutil.copytree(shared_path("inferno", "sample-data-small"), target)
    for f in target.iterdir():
        f.chmod(0o644)
    (target / "system-data.json").unlink()
    (target / "solution-data.json").unlink()
    return target


def _edit(folder: Path, name: str, edit: object) -> None:
    path = folder / name
    doc = json.loads(path.read_text())
    edit(doc)  # type: ignore[operator]
    path.write_text(json.dumps(doc))


BROKEN_INFERNO = [
    ("negative-rate", "server-data.json",
     lambda d: d["servers"][2]["currentAlloc"]["load"].__setitem__("arrivalRate", -5),
     "$.servers[2].currentAlloc.load.arrivalRate", "greater than or equal"),
    ("unknown-acc", "model-data.json", lambda d: d["models"][4].__setitem__("acc", "T4"),
     "$.models[4].acc", "unknown accelerator"),
    ("wrong-type", "accelerator-data.json",
     lambda d: d["accelerators"][1].__setitem__("cost", "cheap"),
     "$.accelerators[1].cost", "expected a number"),
    ("missing-perf", "model-data.json", lambda d: d["models"][0].pop("perfParms"),
     "$.models[0].perfParms", "missing field"),
    ("unknown-class", "server-data.json", lambda d: d["servers"][0].__setitem__("class", "Gold"),
     "$.servers[0].class", "unknown service class"),
    ("model-without-profile", "server-data.json",
     lambda d: d["servers"][1].__setitem__("model", "gpt_5"), "$.servers[1].model", "no profile"),
    ("not-a-list", "capacity-data.json", lambda d: d.__setitem__("count", {"L4": 3}),
     "$.count", "expected a list"),
]


@pytest.mark.parametrize("case", BROKEN_INFERNO, ids=[c[0] for c in BROKEN_INFERNO])
def test_broken_inferno_directory(tmp_path: Path, case: tuple) -> None:
    _, name, edit, where, words = case
    folder = _copy_small(tmp_path)
    _edit(folder, name, edit)
    with pytest.raises(SpecError) as info:
        load_fleet(folder)
    assert info.value.file == str(folder / name), str(info.value)
    assert info.value.json_path == where, str(info.value)
    assert words in str(info.value)


def test_missing_inferno_file(tmp_path: Path) -> None:
    folder = _copy_small(tmp_path)
    (folder / "model-data.json").unlink()
    with pytest.raises(SpecError, match="missing inferno file 'model-data.json'"):
        load_fleet(folder)


def test_older_format_is_named() -> None:
    with pytest.raises(SpecError, match="decodeParms/prefillParms"):
        load_fleet(shared_path("inferno", "api-v1alpha1"))


def test_solution_writer_uses_inferno_names() -> None:
    spec = load_fleet(shared_path("inferno", "sample-data-small")).spec
    server = spec.servers[0]
    variant = VariantAllocation(
        accelerator="G2", card_type="G2", replicas=3, max_batch=38, cards=3, cost_per_hour=69,
        arrival_rate_rps=server.load.arrival_rate_rps, router_weight=1.0,
        predicted_ttft_ms=425.1, predicted_itl_ms=36.4,
    )
    plan = Plan(allocations=[ServerAllocation(
        server=server.name, model=server.model, service_class=server.service_class, priority=1,
        load=server.load, variants=[variant], cost_per_hour=69,
    )], total_cost_per_hour=69)
    doc = to_inferno_solution(plan)
    entry = doc["allocations"][server.name]
    assert (entry["accelerator"], entry["numReplicas"], entry["maxBatch"]) == ("G2", 3, 38)
    assert entry["load"]["arrivalRate"] == pytest.approx(server.load.arrival_rate_rps * 60)
