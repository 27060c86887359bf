"""LocalActuator's pure part (which workers to start, drain, reconfigure) and its dry run."""

from __future__ import annotations

import itertools

import pytest

import actuator.local as local_module
from actuator.desired import desired_variants
from actuator.local import (
    LocalActuator,
    LocalSettings,
    backends_file_writer,
    describe,
    local_steps,
)
from actuator.local_process import WorkerProcess
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


BUDGETED = plan(allocation("premium-llama", variant("H100", 2, 32, 0.7, token_budget=2048),
                           variant("A100", 1, 16, 0.3)))


def test_a_token_budget_change_is_a_live_reconfigure():
    nxt = plan(allocation("premium-llama", variant("H100", 2, 32, 0.7, token_budget=512),
                          variant("A100", 1, 16, 0.3, token_budget=4096)))
    steps = local_steps(nxt, running(BUDGETED))
    assert [(s.desired.name, s.start, s.drain, s.token_budget) for s in steps] == [
        ("premium-llama-a100", 0, 0, (None, 4096)), ("premium-llama-h100", 0, 0, (2048, 512))]
    assert [c.detail for c in describe(steps[1])] == ["token budget 2048 -> 512"]
    assert {c.kind for s in steps for c in describe(s)} == {"reconfigure"}


def test_a_plan_without_a_token_budget_keeps_the_running_one():
    unset = plan(allocation("premium-llama", variant("H100", 3, 32, 0.7),
                            variant("A100", 1, 16, 0.3)))
    (step,) = local_steps(unset, running(BUDGETED))
    assert (step.desired.name, step.start, step.token_budget) == ("premium-llama-h100", 1, None)
    assert step.desired.token_budget == 2048  # the new worker starts with the running budget
    assert local_steps(unset, running(BUDGETED, {"premium-llama-h100": 3})) == []


class _Process:
    pid = 0

    def poll(self) -> None:
        return None


@pytest.fixture
def fake_workers(monkeypatch):
    """Launches, readiness and admin calls of the local actuator, recorded, no processes."""
    calls: dict[str, list] = {"launch": [], "token_budget": [], "max_batch": [], "tokens": []}

    def launch(command, log, cwd=None, token=None):
        calls["launch"].append(list(command))
        calls["tokens"].append(token)
        return WorkerProcess(_Process(), log)

    ports = itertools.count(9000)

    def wait_ready(workers, timeout_s):
        for worker in workers:
            worker.url = f"http://127.0.0.1:{next(ports)}"
        return []

    monkeypatch.setattr(local_module, "launch", launch)
    monkeypatch.setattr(local_module, "wait_ready", wait_ready)
    monkeypatch.setattr(local_module, "terminate", lambda workers, timeout_s=0: None)
    def admin(key):
        def call(url, n, token=None):
            calls[key].append((url, n))
            calls["tokens"].append(token)
            return n
        return call

    monkeypatch.setattr(local_module, "set_max_batch", admin("max_batch"))
    monkeypatch.setattr(local_module, "set_token_budget", admin("token_budget"))
    return calls


def _flag(command: list[str], flag: str) -> str | None:
    return command[command.index(flag) + 1] if flag in command else None


def test_workers_start_with_the_budget_and_change_it_live(tmp_path, fake_workers):
    act = LocalActuator(LocalSettings(spec_path=SPEC_PATH, log_dir=tmp_path))
    first = act.apply(BUDGETED, plan_id="p1", reason="start")
    assert first.ok
    assert sorted((_flag(c, "--accelerator"), _flag(c, "--max-batch"), _flag(c, "--token-budget"))
                  for c in fake_workers["launch"]) == [
        ("A100", "16", None), ("H100", "32", "2048"), ("H100", "32", "2048")]
    assert ("premium-llama-h100", "replicas 2, max batch 32, token budget 2048") in {
        (c.variant, c.detail) for c in first.changes}
    nxt = plan(allocation("premium-llama", variant("H100", 2, 32, 0.7, token_budget=512),
                          variant("A100", 1, 16, 0.3)))
    second = act.apply(nxt, plan_id="p2", reason="smaller budget")
    assert [(c.variant, c.kind, c.detail, c.restarts_pods) for c in second.changes] == [
        ("premium-llama-h100", "reconfigure", "token budget 2048 -> 512", False)]
    assert sorted(fake_workers["token_budget"]) == [
        ("http://127.0.0.1:9001", 512), ("http://127.0.0.1:9002", 512)]
    assert len(fake_workers["launch"]) == 3 and fake_workers["max_batch"] == []  # no restart
    assert {v.variant: v.token_budget for v in act.observe().variants} == {
        "premium-llama-a100": None, "premium-llama-h100": 512}
    act.close()


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


def test_workers_get_one_secret_token_and_admin_calls_send_it(tmp_path, fake_workers):
    act = LocalActuator(LocalSettings(spec_path=SPEC_PATH, log_dir=tmp_path))
    assert act.apply(BUDGETED, plan_id="p1", reason="start").ok
    smaller = plan(allocation("premium-llama", variant("H100", 2, 24, 0.7, token_budget=512),
                              variant("A100", 1, 16, 0.3)))
    assert act.apply(smaller, plan_id="p2", reason="live").ok
    tokens = set(fake_workers["tokens"])
    assert len(tokens) == 1 and len(next(iter(tokens))) >= 32
    assert len(fake_workers["max_batch"]) == len(fake_workers["token_budget"]) == 2
    assert not any(act.token in " ".join(c) for c in fake_workers["launch"])  # not in argv
    act.close()
