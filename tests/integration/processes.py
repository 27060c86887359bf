"""Start and always stop `fleetplan` processes (workers, load generator) for integration tests.

Workers run as `python -m controller.cli worker ... --port 0` on 127.0.0.1: each prints
the URL it bound, so ports are chosen at run time without races; they accept the bearer
token `TOKEN` (sent by `post_json`; `ADMIN` is the header for other clients). `started_workers()`
stops every worker it started (SIGTERM, then SIGKILL) however the test ends.
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_SPEC = REPO_ROOT / "specs" / "examples" / "h100-vllm.json"
READY_PREFIX = "fleetplan worker: listening on "
TOKEN = "integration-test-token"
"""The bearer token the workers started here accept (FLEETPLAN_AUTH_TOKEN)."""
ADMIN = {"Authorization": f"Bearer {TOKEN}"}


def cli(*args: str) -> list[str]:
    """The command line of `fleetplan ARGS` run with this interpreter."""
    return [sys.executable, "-m", "controller.cli", *args]


@dataclass
class WorkerProcess:
    """A running worker: its process, base URL and log file."""

    process: subprocess.Popen
    url: str
    log: Path

    def get(self, path: str, timeout_s: float = 5.0) -> bytes:
        """GET a path of the worker."""
        with urllib.request.urlopen(self.url + path, timeout=timeout_s) as response:
            return response.read()

    def get_json(self, path: str) -> dict:
        """GET a JSON document of the worker."""
        return json.loads(self.get(path))

    def post_json(self, path: str, body: dict) -> dict:
        """POST a JSON body, return the JSON answer."""
        request = urllib.request.Request(self.url + path, data=json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json", **ADMIN})
        with urllib.request.urlopen(request, timeout=5) as response:
            return json.loads(response.read())


def _read_ready_line(process: subprocess.Popen, timeout_s: float) -> str:
    selector = selectors.DefaultSelector()
    selector.register(process.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            if selector.select(timeout=0.1):
                line = process.stdout.readline()
                if not line:
                    break
                if line.startswith(READY_PREFIX):
                    return line[len(READY_PREFIX):].split()[0]
            elif process.poll() is not None:
                break
    finally:
        selector.close()
    raise RuntimeError(f"worker did not start (exit code {process.poll()})")


def _wait_healthy(url: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), urllib.request.urlopen(
                url + "/health", timeout=1) as response:
            if response.status == 200:
                return
        time.sleep(0.05)
    raise RuntimeError(f"{url}/health did not answer 200")


def start_worker(log: Path, args: Sequence[str], timeout_s: float = 30.0) -> WorkerProcess:
    """Start a worker on a free port and wait until /health answers."""
    handle = log.open("w")
    process = subprocess.Popen(
        cli("worker", "--host", "127.0.0.1", "--port", "0", *args), cwd=REPO_ROOT,
        stdout=subprocess.PIPE, stderr=handle, text=True,
        env={**os.environ, "FLEETPLAN_AUTH_TOKEN": TOKEN},
    )
    handle.close()
    try:
        url = _read_ready_line(process, timeout_s)
        _wait_healthy(url, timeout_s)
    except BaseException:
        stop(process)
        raise RuntimeError(f"worker failed to start; log:\n{log.read_text()}") from None
    return WorkerProcess(process, url, log)


def stop(process: subprocess.Popen, timeout_s: float = 10.0) -> int:
    """SIGTERM, wait, then SIGKILL; returns the exit code."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=timeout_s)
    if process.stdout is not None:
        process.stdout.close()
    return process.returncode


@contextlib.contextmanager
def started_workers(tmp_path: Path, args_list: Sequence[Sequence[str]]) -> Iterator[list[WorkerProcess]]:
    """Start one worker per argument list; stop them all on exit, whatever happened."""
    workers: list[WorkerProcess] = []
    try:
        for i, args in enumerate(args_list):
            workers.append(start_worker(tmp_path / f"worker-{i}.log", args))
        yield workers
    finally:
        for worker in workers:
            stop(worker.process)
