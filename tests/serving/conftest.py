"""Helpers for serving tests: an in-process worker on 127.0.0.1 and metric parsing."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from prometheus_client.parser import text_string_to_metric_families

from queue_models.engine import EngineConfig
from serving.auth import AuthPolicy, bearer
from serving.http import listen, make_runner
from serving.worker import WORKER, WorkerState, build_app
from serving.worker_config import WorkerSettings

FAST = dict(alpha_ms=2.0, beta_ms=0.01, gamma_ms=1e-5)
"""A fast profile so in-process tests take milliseconds per request."""
TOKEN = "test-token-for-in-process-servers"
ADMIN = bearer(TOKEN)
"""Headers of a state-changing request the test servers accept."""


def settings(**engine: object) -> WorkerSettings:
    values = dict(FAST, max_batch=8, kv_capacity_tokens=100_000)
    values.update(engine)
    return WorkerSettings(
        model="m", accelerator="A", engine=EngineConfig(**values), served_model_name="m",
        class_priorities={"premium": 1, "bronze": 2}, auth=AuthPolicy(token=TOKEN),
    )


@contextlib.asynccontextmanager
async def running_worker(worker_settings: WorkerSettings) -> AsyncIterator[tuple[str, WorkerState]]:
    """Serve the worker on a free port; yields (base URL, state); always cleans up."""
    app = build_app(worker_settings)
    runner = make_runner(app)  # as `fleetplan worker` runs it (handlers cancelled on disconnect)
    try:
        yield await listen(runner, "127.0.0.1", 0), app[WORKER]
    finally:
        await runner.cleanup()


def metric_samples(text: str) -> dict[str, float]:
    """Parse /metrics (prometheus_client's parser) into {sample name: summed value}."""
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[sample.name] = out.get(sample.name, 0.0) + sample.value
    return out
