"""`fleetplan run --config FILE`: endpoints, decision log, state file, SIGTERM, bad config."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from controller.decision_log import read_reports

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "specs" / "examples" / "heterogeneous-fleet.json"

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


TOKEN = "daemon-test-token"


def _start(config: Path) -> tuple[subprocess.Popen, str]:
    process = subprocess.Popen([sys.executable, "-m", "controller.cli", "run", "--config",
                                str(config)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                               text=True, cwd=REPO,
                               env={**os.environ, "FLEETPLAN_AUTH_TOKEN": TOKEN})
    line = process.stdout.readline()
    match = re.search(r"listening on (http://\S+)", line)
    if not match:
        process.kill()
        raise AssertionError(f"no ready line: {line!r}")
    return process, match.group(1)


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_daemon_dry_run_endpoints_and_sigterm(tmp_path):
    config = tmp_path / "controller.json"
    config.write_text(json.dumps({
        "spec": str(EXAMPLE), "period_s": 3600, "mode": "dry-run", "port": 0,
        "actuator": {"kind": "local"}, "collector": {"kind": "scrape"},
        "state_path": "state.json", "decision_log": "decisions.jsonl"}))
    process, url = _start(config)
    try:
        deadline = time.monotonic() + 30
        while _get(url + "/readyz")[0] != 200 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _get(url + "/healthz")[0] == 200
        assert _get(url + "/readyz")[0] == 200
        request = urllib.request.Request(url + "/invoke", data=b"{}", method="POST")
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=60)
        assert refused.value.code == 401  # POST /invoke needs the token
        request.add_header("Authorization", f"Bearer {TOKEN}")
        with urllib.request.urlopen(request, timeout=60) as response:
            answer = json.loads(response.read())
        assert answer["tick"] == 2 and answer["status"] == "dry-run"
        status, body = _get(url + "/plan")
        plan = json.loads(body)
        assert status == 200 and plan["plan"]["allocations"] and plan["backends"] == []
        status, body = _get(url + "/metrics")
        text = body.decode()
        assert "fleetplan_plan_cost_per_hour" in text
        assert "fleetplan_desired_replicas{" in text
        assert 'fleetplan_tick_stage_seconds{stage="optimize"}' in text
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    reports = read_reports(tmp_path / "decisions.jsonl")
    assert [r.status for r in reports] == ["dry-run", "dry-run"]
    assert (tmp_path / "state.json").is_file()
    assert not (tmp_path / "workers").exists()  # dry-run started nothing


def test_bad_config_exits_2(tmp_path):
    config = tmp_path / "controller.json"
    config.write_text(json.dumps({"spec": str(EXAMPLE), "forecaster": "prophet"}))
    done = subprocess.run([sys.executable, "-m", "controller.cli", "run", "--config",
                           str(config)], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert done.returncode == 2
    assert "forecaster" in done.stderr and "holt" in done.stderr
    config.write_text(json.dumps({"spec": str(EXAMPLE), "surprise": 1}))
    done = subprocess.run([sys.executable, "-m", "controller.cli", "run", "--config",
                           str(config)], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert done.returncode == 2 and "surprise" in done.stderr
