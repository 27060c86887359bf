"""LocalActuator with real `fleetplan worker` processes on 127.0.0.1.

One scenario, to keep worker start-ups (about 3 s of imports each) few: start a split
fleet (one variant fails to start), change max batch and the token budget live, reweight, drain a worker that
is still serving a request, retire a variant, leave an unplanned server alone, replace
a worker that died, and stop everything. Every process started is checked gone at the
end, whatever happened.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
import urllib.request
from pathlib import Path

import pytest

import actuator.local as local_module
from actuator.local import LocalActuator, LocalSettings
from actuator.local_process import WorkerProcess
from tests.actuator.plans import SPEC_PATH, allocation, plan, variant

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

REPO_ROOT = Path(__file__).resolve().parents[2]

START = plan(allocation("premium-llama", variant("H100", 2, 32, 0.7, token_budget=2048),
                        variant("A100", 1, 16, 0.3)),
             allocation("standard-llama", variant("L4", 1, 8)),
             allocation("standard-qwen", variant("L4", 1, 8)))  # qwen has no L4 profile
NEXT = plan(allocation("premium-llama", variant("H100", 1, 64, 1.0, token_budget=512)),
            unserved=("standard-llama", "standard-qwen"))


@pytest.fixture
def launched(monkeypatch):
    """Every worker process the actuator starts; all must be gone at the end."""
    started: list[WorkerProcess] = []
    real_launch = local_module.launch

    def recording_launch(*args, **kwargs):
        worker = real_launch(*args, **kwargs)
        started.append(worker)
        return worker

    monkeypatch.setattr(local_module, "launch", recording_launch)
    yield started
    for worker in started:
        if worker.alive:
            worker.process.kill()
            worker.process.wait(5)
            pytest.fail(f"worker {worker.url} was left running")


def get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


def slow_request(url: str, out: dict) -> None:
    body = json.dumps({"model": "llama_3_1_8b", "prompt": "hello", "max_tokens": 150}).encode()
    request = urllib.request.Request(url + "/v1/completions", data=body,
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            out["status"] = response.status
            out["usage"] = json.loads(response.read())["usage"]
    except Exception as exc:  # noqa: BLE001 - reported by the assertion
        out["error"] = repr(exc)


def test_local_actuator_lifecycle(tmp_path, launched):
    sent: list[list[dict]] = []
    settings = LocalSettings(spec_path=SPEC_PATH, log_dir=tmp_path, cwd=REPO_ROOT,
                             start_timeout_s=60, drain_timeout_s=20)
    with LocalActuator(settings, on_backends_changed=sent.append) as act:
        first = act.apply(START, plan_id="p1", reason="start")
        assert [(f.variant, "no profile" in f.reason) for f in first.failures] == [
            ("standard-qwen-l4", True)]
        assert {(c.variant, c.kind) for c in first.changes} >= {
            ("premium-llama-h100", "create"), ("premium-llama-a100", "create"),
            ("standard-llama-l4", "create")}
        state = {v.variant: v for v in act.observe().variants}
        assert state["premium-llama-h100"].ready_replicas == 2
        assert state["standard-qwen-l4"].ready_replicas == 0
        h100 = list(state["premium-llama-h100"].endpoints)
        assert [get_json(u + "/admin/max_batch")["max_batch"] for u in h100] == [32, 32]
        assert [get_json(u + "/admin/token_budget")["token_budget"] for u in h100] == [2048] * 2
        a100 = state["premium-llama-a100"].endpoints[0]  # no budget planned: the profile's
        assert get_json(a100 + "/admin/token_budget")["token_budget"] == 8192
        assert {(b["variant"], b["weight"]) for b in sent[-1]} == {
            ("premium-llama-h100", 0.7), ("premium-llama-a100", 0.3), ("standard-llama-l4", 1.0)}
        assert len(sent[-1]) == 4
        keeper, leaver = (w for w in launched if w.url in h100)  # the newest one drains
        unplanned = next(w for w in launched if w.url == state["standard-llama-l4"].endpoints[0])

        answer: dict = {}
        request = threading.Thread(target=slow_request, args=(leaver.url, answer))
        request.start()
        for _ in range(200):  # until the worker runs it (at most ~10 s)
            if get_json(leaver.url + "/admin/stats")["running"]:
                break
            time.sleep(0.05)
        second = act.apply(NEXT, plan_id="p2", reason="premium only")
        request.join(30)
        assert answer.get("status") == 200, answer  # drained, not cut
        assert answer["usage"]["completion_tokens"] == 150
        assert not leaver.alive and keeper.alive
        assert {(c.variant, c.detail) for c in second.changes} == {
            ("premium-llama-h100", "max batch 32 -> 64"),
            ("premium-llama-h100", "token budget 2048 -> 512"),
            ("premium-llama-h100", "router weight 0.7 -> 1"),
            ("premium-llama-h100", "replicas 2 -> 1"),
            ("premium-llama-a100", "replicas 1 -> 0")}
        assert get_json(keeper.url + "/admin/max_batch")["max_batch"] == 64  # live, same pid
        assert get_json(keeper.url + "/admin/token_budget")["token_budget"] == 512
        assert unplanned.alive  # standard-llama has no allocation: left alone
        assert {b["variant"] for b in sent[-1]} == {"premium-llama-h100", "standard-llama-l4"}

        os.kill(keeper.process.pid, signal.SIGKILL)
        keeper.process.wait(10)
        third = act.apply(NEXT, plan_id="p3", reason="heal")
        assert [f.variant for f in third.failures] == ["premium-llama-h100"]
        assert "exited" in third.failures[0].reason
        assert [(c.variant, c.detail) for c in third.changes] == [
            ("premium-llama-h100", "replicas 0 -> 1")]
        replacement = {v.variant: v for v in act.observe().variants}["premium-llama-h100"]
        assert replacement.ready_replicas == 1
        assert get_json(replacement.endpoints[0] + "/admin/max_batch")["max_batch"] == 64
        assert get_json(replacement.endpoints[0] + "/admin/token_budget")["token_budget"] == 512
    assert all(not w.alive for w in launched)
    assert sent[-1] == []
