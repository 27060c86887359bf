"""`fleetplan up` on a short schedule: closed loop, report, and no process left behind."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from controller.decision_log import read_reports

REPO = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]


def _workers_of(spec: Path) -> list[str]:
    done = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True)
    return [line for line in done.stdout.splitlines()
            if "controller.cli worker" in line and str(spec) in line]


def test_up_short_run(tmp_path):
    out = tmp_path / "run"
    done = subprocess.run([sys.executable, "-m", "controller.cli", "up", "--duration", "45",
                           "-o", str(out), "--cache-dir", str(tmp_path / "cache")],
                          capture_output=True, text=True, cwd=REPO,
                          timeout=220)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "attainment" in done.stdout and "cost" in done.stdout
    for name in ("report.md", "load_capacity.png", "replicas.png", "latency.png", "cost.png",
                 "decisions.jsonl", "state.json", "fleet.json"):
        assert (out / name).is_file(), name
    reports = read_reports(out / "decisions.jsonl")
    applied = [r for r in reports if r.status == "applied"]
    assert len(applied) >= 3
    totals = [sum(v.replicas for a in r.plan.allocations for v in a.variants) for r in applied]
    assert max(totals) > min(totals)  # replicas followed the load
    assert _workers_of(out / "fleet.json") == []
