"""Bad input to the servers' command lines: one clear line on stderr and exit code 2."""

from __future__ import annotations

import json
import socket
import subprocess
from pathlib import Path

import pytest

from tests.integration.processes import EXAMPLE_SPEC, REPO_ROOT, cli

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]
HETEROGENEOUS = REPO_ROOT / "specs" / "examples" / "heterogeneous-fleet.json"


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(cli(*args), capture_output=True, text=True, cwd=REPO_ROOT, timeout=60)


def _one_line_error(done: subprocess.CompletedProcess, *words: str) -> None:
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert all(w in lines[0] for w in words), lines[0]


def _config(tmp_path: Path, port: int) -> Path:
    config = tmp_path / "controller.json"
    config.write_text(json.dumps({
        "spec": str(HETEROGENEOUS), "mode": "dry-run", "port": port, "period_s": 3600,
        "state_path": "state.json", "decision_log": "decisions.jsonl"}))
    return config


def test_a_port_in_use_is_one_line_and_exit_2(tmp_path: Path) -> None:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = str(held.getsockname()[1])
        worker = _run("worker", "--model", "llama_3_1_8b", "--accelerator", "H100", "--spec",
                      str(EXAMPLE_SPEC), "--port", port)
        router = _run("router", "--port", port)
        daemon = _run("run", "--config", str(_config(tmp_path, int(port))))
    for done in (worker, router, daemon):
        _one_line_error(done, "cannot listen on 127.0.0.1:" + port)


def test_a_state_file_that_is_not_utf8_is_one_line_and_exit_2(tmp_path: Path) -> None:
    (tmp_path / "state.json").write_bytes(b'{"tick": 3, "x": "\xff\xfe"}')
    done = _run("run", "--config", str(_config(tmp_path, 0)))
    _one_line_error(done, "state.json", "not UTF-8")


def test_insecure_no_auth_is_refused_off_loopback(tmp_path: Path) -> None:
    worker = _run("worker", "--model", "llama_3_1_8b", "--accelerator", "H100", "--spec",
                  str(EXAMPLE_SPEC), "--host", "0.0.0.0", "--port", "0", "--insecure-no-auth")
    router = _run("router", "--host", "0.0.0.0", "--port", "0", "--insecure-no-auth")
    config = json.loads(_config(tmp_path, 0).read_text())
    (tmp_path / "public.json").write_text(json.dumps({**config, "host": "0.0.0.0"}))
    daemon = _run("run", "--config", str(tmp_path / "public.json"), "--insecure-no-auth")
    for done in (worker, router, daemon):
        _one_line_error(done, "--insecure-no-auth", "loopback", "0.0.0.0")
