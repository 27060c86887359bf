"""Start and always stop a private Prometheus server for integration tests.

The binary comes from the system package (`scripts/install-prometheus.sh`); without it the
calling test skips, naming the binary. Each server gets its own config, its own storage
folder under the test's tmp_path and a free port on 127.0.0.1, so a packaged service on
:9090 (systemd hosts) is neither needed nor touched. `backfill` loads OpenMetrics text
into a storage folder with `promtool tsdb create-blocks-from openmetrics`.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest


def binary(name: str) -> str:
    """Path of a Prometheus binary, or skip the test naming it."""
    found = shutil.which(name)
    if found is None:
        pytest.skip(f"{name} not found on PATH (scripts/install-prometheus.sh installs it)")
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass(frozen=True)
class ScrapeTarget:
    """One target (host:port) with its static labels."""

    address: str
    labels: dict[str, str]


def config_text(targets: Sequence[ScrapeTarget], interval_s: float) -> str:
    every = f"{round(interval_s * 1000)}ms"
    lines = ["global:", f"  scrape_interval: {every}", f"  evaluation_interval: {every}"]
    if targets:
        lines += ["scrape_configs:", "  - job_name: workers",
                  f"    scrape_timeout: {round(interval_s * 800)}ms", "    static_configs:"]
        for target in targets:
            labels = ", ".join(f'{k}: "{v}"' for k, v in sorted(target.labels.items()))
            lines += [f"      - targets: ['{target.address}']", f"        labels: {{{labels}}}"]
    return "\n".join(lines) + "\n"


def _wait_ready(url: str, process: subprocess.Popen, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            break
        with contextlib.suppress(OSError), urllib.request.urlopen(
                url + "/-/ready", timeout=1) as response:
            if response.status == 200:
                return
        time.sleep(0.1)
    raise RuntimeError(f"prometheus did not become ready (exit code {process.poll()})")


def wait_for_sample(url: str, promql: str, at_least: float = 1.0,
                    timeout_s: float = 30.0) -> None:
    """Block until `promql` answers with a series whose value is `at_least` or more.

    Used before load is sent, so that Prometheus has a sample of the counters from
    before the load (its first scrape may come a few seconds after it is ready) and
    a rate over the window sees the load.
    """
    query = urllib.parse.urlencode({"query": promql})
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError, ValueError), urllib.request.urlopen(
                f"{url}/api/v1/query?{query}", timeout=2) as response:
            result = json.loads(response.read())["data"]["result"]
            if any(float(series["value"][1]) >= at_least for series in result):
                return
        time.sleep(0.2)
    raise RuntimeError(f"no sample for {promql} within {timeout_s} s")


@contextlib.contextmanager
def started_prometheus(tmp_path: Path, targets: Sequence[ScrapeTarget] = (),
                       interval_s: float = 1.0, storage: Path | None = None,
                       ) -> Iterator[str]:
    """Run prometheus on a free loopback port; yields its URL; always stops it."""
    exe = binary("prometheus")
    config = tmp_path / "prometheus.yml"
    config.write_text(config_text(targets, interval_s))
    storage = storage or tmp_path / "tsdb"
    storage.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log = (tmp_path / "prometheus.log").open("w")
    process = subprocess.Popen(
        [exe, f"--config.file={config}", f"--storage.tsdb.path={storage}",
         f"--web.listen-address=127.0.0.1:{port}", "--storage.tsdb.retention.time=10y",
         "--log.level=warn"], stdout=log, stderr=log)
    log.close()
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url, process, 30.0)
        yield url
    except RuntimeError:
        raise RuntimeError((tmp_path / "prometheus.log").read_text()) from None
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


def backfill(openmetrics: str, storage: Path, tmp_path: Path) -> None:
    """Write OpenMetrics text into a TSDB folder with promtool (blocks for prometheus)."""
    exe = binary("promtool")
    source = tmp_path / "backfill.om"
    source.write_text(openmetrics)
    storage.mkdir(parents=True, exist_ok=True)
    done = subprocess.run([exe, "tsdb", "create-blocks-from", "openmetrics", str(source),
                           str(storage)], capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        raise RuntimeError(f"promtool failed: {done.stderr or done.stdout}")
