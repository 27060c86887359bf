"""Local `fleetplan worker` processes: launch, wait until ready, talk to, drain and stop.

A worker is started as a command line (by default `python -m controller.cli worker`,
with `--port 0`), its stdout and stderr going to a log file. It is ready once it has
printed `fleetplan worker: listening on URL` (so ports are chosen at run time without
races) and `GET URL/health` answers 200. Its admin routes change max batch and the token
budget live (`POST /admin/max_batch`, `POST /admin/token_budget`) and report running and
waiting requests (`GET /admin/stats`),
which draining polls until the worker is idle. The admin writes need the worker's
bearer token: `launch(..., token=T)` starts the worker with `TOKEN_ENV` set to T (in its
environment, not on its command line) and `set_max_batch` / `set_token_budget` send it.
Stopping is SIGTERM, a wait, then SIGKILL, only ever for processes started here (by their
`Popen` handle).

Blocking helpers with explicit timeouts; no threads. To extend: another worker admin
call is one more small function over `_request`.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

TOKEN_ENV = "FLEETPLAN_AUTH_TOKEN"
"""Where `fleetplan worker` reads its bearer token from (`serving.auth.TOKEN_ENV`)."""
READY_PREFIX = "fleetplan worker: listening on "
"""The line `fleetplan worker` prints once listening (controller/commands/worker.py)."""
POLL_S = 0.05


@dataclass(eq=False)
class WorkerProcess:
    """One started worker: its process, log file and (once ready) base URL."""

    process: subprocess.Popen[bytes]
    log: Path
    url: str | None = None
    started_at: float = field(default_factory=time.monotonic)

    @property
    def alive(self) -> bool:
        """True while the process runs."""
        return self.process.poll() is None

    def log_tail(self, chars: int = 600) -> str:
        """The end of the worker's log, for error messages."""
        with contextlib.suppress(OSError):
            return self.log.read_text(errors="replace")[-chars:].strip()
        return ""


def launch(command: Sequence[str], log: Path, cwd: Path | None = None,
           token: str | None = None) -> WorkerProcess:
    """Start `command` with stdout and stderr appended to `log` (and `token`, if any, in
    its environment as `TOKEN_ENV`)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, TOKEN_ENV: token} if token else None
    with log.open("ab") as handle:
        process = subprocess.Popen(list(command), stdout=handle, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, cwd=cwd, env=env)
    return WorkerProcess(process, log)


def _request(url: str, method: str = "GET", body: Any = None, timeout_s: float = 2.0,
             token: str | None = None) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            raw = response.read()
            return response.status, (json.loads(raw) if raw.strip() else None)
    except urllib.error.HTTPError as error:
        return error.code, None


def healthy(url: str, timeout_s: float = 1.0) -> bool:
    """True when `GET url/health` answers 200."""
    try:
        return _request(url + "/health", timeout_s=timeout_s)[0] == 200
    except (OSError, ValueError):
        return False


def _ready_url(worker: WorkerProcess) -> str | None:
    with contextlib.suppress(OSError):
        for line in worker.log.read_text(errors="replace").splitlines():
            if line.startswith(READY_PREFIX):
                return line[len(READY_PREFIX):].split()[0]
    return None


def wait_ready(workers: Sequence[WorkerProcess], timeout_s: float,
               clock: Callable[[], float] = time.monotonic) -> list[WorkerProcess]:
    """Wait (together) until each worker is listening and healthy; returns those that are
    not by the deadline or have exited (their `url` stays None)."""
    deadline = clock() + timeout_s
    pending = list(workers)
    while pending and clock() < deadline:
        for worker in list(pending):
            if not worker.alive:
                pending.remove(worker)
                continue
            url = _ready_url(worker)
            if url is not None and healthy(url):
                worker.url = url
                pending.remove(worker)
        if pending:
            time.sleep(POLL_S)
    return [w for w in workers if w.url is None]


def _set_live(url: str, key: str, value: int, timeout_s: float, token: str | None) -> int:
    status, body = _request(f"{url}/admin/{key}", "POST", {key: value}, timeout_s, token)
    if status != 200 or not isinstance(body, dict):
        raise OSError(f"{url}/admin/{key} answered {status}")
    return int(body[key])


def set_max_batch(url: str, max_batch: int, timeout_s: float = 2.0,
                  token: str | None = None) -> int:
    """Change a worker's max batch live; returns the value it reports (OSError on failure)."""
    return _set_live(url, "max_batch", max_batch, timeout_s, token)


def set_token_budget(url: str, token_budget: int, timeout_s: float = 2.0,
                     token: str | None = None) -> int:
    """Change a worker's token budget live; returns the value it reports (OSError on failure)."""
    return _set_live(url, "token_budget", token_budget, timeout_s, token)


def in_flight(url: str, timeout_s: float = 1.0) -> int | None:
    """Running + waiting requests of a worker (None when it cannot say)."""
    try:
        status, body = _request(url + "/admin/stats", timeout_s=timeout_s)
    except (OSError, ValueError):
        return None
    if status != 200 or not isinstance(body, dict):
        return None
    return int(body.get("running", 0)) + int(body.get("waiting", 0))


def wait_idle(workers: Sequence[WorkerProcess], timeout_s: float,
              clock: Callable[[], float] = time.monotonic) -> list[WorkerProcess]:
    """Wait until each worker has no running or waiting request (or has exited or stopped
    answering); returns those still busy at the deadline."""
    deadline = clock() + timeout_s
    busy = [w for w in workers if w.url is not None and w.alive]
    while busy:
        busy = [w for w in busy if w.alive and (in_flight(w.url or "") or 0) > 0]
        if not busy or clock() >= deadline:
            break
        time.sleep(POLL_S * 2)
    return busy


def terminate(workers: Sequence[WorkerProcess], timeout_s: float = 10.0) -> None:
    """SIGTERM every worker, wait for all up to `timeout_s`, then SIGKILL the rest."""
    for worker in workers:
        if worker.alive:
            worker.process.terminate()
    deadline = time.monotonic() + timeout_s
    for worker in workers:
        try:
            worker.process.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            worker.process.kill()
            worker.process.wait(timeout=timeout_s)
