"""`fleetplan run` with the Prometheus collector, end to end against a real Prometheus.

The daemon (a subprocess) reads its fleet from the Kubernetes API server fake, in which
one variant (premium-llama-h100) runs; its one replica is an emulated worker started
here and scraped every second by a private Prometheus with the labels the shipped scrape
configuration gives Pods (`variant`, `namespace`). The daemon must ask Prometheus about
that variant and size premium-llama from the measured load; once Prometheus is stopped,
the outage must show in the tick's status, /readyz, the log and /metrics.

Skipped without the prometheus binary (scripts/install-prometheus.sh). Every process
started here is stopped in a `finally` (context managers).
"""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

import pytest

from actuator.options import kubernetes_actuator
from controller.decision_log import read_reports
from tests.actuator.fake_apiserver import FakeApiServer
from tests.actuator.plans import SPEC_PATH, VLLM_TEMPLATE, allocation, plan, spec, variant
from tests.collector.prometheus_server import (
    ScrapeTarget,
    binary,
    started_prometheus,
    wait_for_sample,
)
from tests.integration.processes import REPO_ROOT, started_workers, stop

pytestmark = [pytest.mark.integration, pytest.mark.timeout(150)]

NAMESPACE = "fleet"
VARIANT = "premium-llama-h100"
OPTIONS = {"accelerator_label": None, "gpu_resource": None}


def _actuator_options(api_url: str, template: Path) -> dict:
    return {"api_url": api_url, "template": str(template), "retry_attempts": 2,
            "request_timeout_s": 5.0, **OPTIONS}


def _config(tmp_path: Path, api_url: str, template: Path, prometheus: str) -> Path:
    config = tmp_path / "controller.json"
    config.write_text(json.dumps({
        "spec": str(SPEC_PATH), "period_s": 3600, "mode": "dry-run", "port": 0,
        "actuator": {"kind": "kubernetes", "namespace": NAMESPACE,
                     "options": _actuator_options(api_url, template)},
        "collector": {"kind": "prometheus", "url": prometheus, "window_s": 60},
        "state_path": "state.json", "decision_log": "decisions.jsonl"}))
    return config


def _start_daemon(config: Path, log: Path) -> tuple[subprocess.Popen, str]:
    with log.open("w") as handle:
        process = subprocess.Popen(
            [sys.executable, "-m", "controller.cli", "run", "--config", str(config),
             "--insecure-no-auth"], stdout=subprocess.PIPE, stderr=handle, text=True,
            cwd=REPO_ROOT)
    line = process.stdout.readline()
    match = re.search(r"listening on (http://\S+)", line)
    if not match:
        stop(process)
        raise AssertionError(f"no ready line: {line!r}\n{log.read_text()}")
    return process, match.group(1)


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _invoke(url: str) -> dict:
    request = urllib.request.Request(url + "/invoke", data=b"{}", method="POST")
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())


def _metric(text: str, name: str) -> float | None:
    found = re.search(rf"^{name} (\S+)$", text, re.MULTILINE)
    return float(found.group(1)) if found else None


def _send_requests(worker_url: str, count: int, gap_s: float) -> None:
    """`count` requests one after the other, `gap_s` apart (so scrapes see them arrive)."""
    body = json.dumps({"prompt": "x" * 200, "max_tokens": 8}).encode()
    for _ in range(count):
        time.sleep(gap_s)
        request = urllib.request.Request(worker_url + "/v1/completions", data=body,
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 200


def _create_variant(api_url: str, template: Path) -> None:
    actuator = kubernetes_actuator(spec(), namespace=NAMESPACE, mode="apply",
                                   options=_actuator_options(api_url, template))
    result = actuator.apply(plan(allocation("premium-llama", variant("H100", 1, 32))),
                            plan_id="test", reason="test fleet")
    assert result.ok, result.failures


def test_daemon_reads_prometheus_and_reports_its_outage(tmp_path: Path) -> None:
    binary("prometheus")
    template = tmp_path / "template.json"
    template.write_text(json.dumps(VLLM_TEMPLATE))
    worker_args = ["--model", "llama_3_1_8b", "--accelerator", "H100", "--spec", str(SPEC_PATH)]
    log = tmp_path / "daemon.log"
    with FakeApiServer() as api, started_workers(tmp_path, [worker_args]) as workers, \
            contextlib.ExitStack() as prometheus_scope:
        _create_variant(api.url, template)
        target = ScrapeTarget(urlparse(workers[0].url).netloc,
                              {"variant": VARIANT, "namespace": NAMESPACE})
        prometheus = prometheus_scope.enter_context(
            started_prometheus(tmp_path, [target], interval_s=1.0))
        wait_for_sample(prometheus, f'up{{variant="{VARIANT}"}}')  # counters before load
        _send_requests(workers[0].url, 20, 0.25)
        time.sleep(2.5)  # two more scrapes after the last request
        daemon, url = _start_daemon(_config(tmp_path, api.url, template, prometheus), log)
        try:
            answer = _invoke(url)
            assert answer["metrics_status"] == "ok", answer
            assert not any("premium-llama" in r for r in answer["reasons"]), answer
            assert _get(url + "/readyz")[0] == 200
            assert _metric(_get(url + "/metrics")[1].decode(), "fleetplan_metrics_up") == 1
            measured = read_reports(tmp_path / "decisions.jsonl")[-1].measured
            assert measured["premium-llama"].arrival_rate_rps > 0

            prometheus_scope.close()  # stops Prometheus; the daemon keeps running
            answer = _invoke(url)
            assert answer["status"] == "held" and answer["metrics_status"] == "unavailable"
            assert any("metrics unavailable" in r for r in answer["reasons"]), answer
            status, body = _get(url + "/readyz")
            ready = json.loads(body)
            assert status == 503 and not ready["ready"], ready
            assert ready["metrics_status"] == "unavailable"
            assert "metrics unavailable" in ready["reason"]
            assert _metric(_get(url + "/metrics")[1].decode(), "fleetplan_metrics_up") == 0
        finally:
            stop(daemon)
    text = log.read_text()
    assert re.search(r"WARNING .*tick \d+ held, metrics unavailable: metrics unavailable",
                     text), text
