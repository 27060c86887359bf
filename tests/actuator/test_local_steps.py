"""LocalActuator's pure part (which workers to start, drain, reconfigure) and its dry run."""

from __future__ import annotations

from actuator.desired import desired_variants
from actuator.local import (
    LocalActuator,
    LocalSettings,
    backends_file_writer,
    describe,
    local_steps,
)
from serving.router_config import load_backends
from tests.actuator.plans import SPEC_PATH, allocation, plan, variant

START = plan(allocation("premium-llama", variant("H100", 2, 32, 0.7), variant("A100", 1, 16, 0.3)),
             allocation("standard-llama", variant("L4", 1, 8)))


def running(p, counts=None):
    counts = counts or {}
    return {d.name: (d, counts.get(d.name, d.replicas)) for d in desired_variants(p)}


def test_from_nothing_every_variant_is_created():
    steps = local_steps(START, {})
    assert [(s.desired.name, s.create, s.start) for s in steps] == [
        ("premium-llama-a100", True, 1), ("premium-llama-h100", True, 2),
        ("standard-llama-l4", True, 1)]
    assert [c.detail for c in describe(steps[1])] == ["replicas 2, max batch 32"]


def test_changes_scale_reconfigure_and_retire_only_planned_servers():
    nxt = plan(allocation("premium-llama", variant("H100", 1, 64, 1.0)),
               unserved=("standard-llama",))
    steps = local_steps(nxt, running(START))
    assert [(s.desired.name, s.start, s.drain, s.max_batch, s.weight) for s in steps] == [
        ("premium-llama-a100", 0, 1, None, None),
        ("premium-llama-h100", 0, 1, (32, 64), (0.7, 1.0))]
    assert [c.detail for c in describe(steps[1])] == [
        "max batch 32 -> 64", "router weight 0.7 -> 1", "replicas 2 -> 1"]


def test_missing_workers_are_started_again_and_nothing_else_moves():
    steps = local_steps(START, running(START, {"premium-llama-h100": 1}))
    assert [(s.desired.name, s.start, s.drain) for s in steps] == [("premium-llama-h100", 1, 0)]
    assert local_steps(START, running(START)) == []


def test_dry_run_starts_nothing(tmp_path):
    act = LocalActuator(LocalSettings(spec_path=SPEC_PATH, mode="dry-run", log_dir=tmp_path))
    result = act.apply(START, plan_id="p1", reason="what if")
    assert result.mode == "dry-run" and result.ok
    assert [(c.variant, c.kind) for c in result.changes] == [
        ("premium-llama-a100", "create"), ("premium-llama-h100", "create"),
        ("standard-llama-l4", "create")]
    assert act.observe().variants == () and act.backends() == []
    assert list(tmp_path.iterdir()) == []
    act.close()


def test_the_backends_file_is_a_router_backends_document(tmp_path):
    path = tmp_path / "router" / "backends.json"
    write = backends_file_writer(path)
    write([{"url": "http://127.0.0.1:8001", "model": "llama_3_1_8b",
            "variant": "premium-llama-h100", "weight": 0.7, "service_class": "premium"},
           {"url": "http://127.0.0.1:8002", "model": "llama_3_1_8b",
            "variant": "premium-llama-a100", "weight": 0.3, "service_class": "premium"}])
    document = load_backends(path)
    assert [(b.url, b.variant, b.weight) for b in document.backends] == [
        ("http://127.0.0.1:8001", "premium-llama-h100", 0.7),
        ("http://127.0.0.1:8002", "premium-llama-a100", 0.3)]
    write([])
    assert load_backends(path).backends == []
