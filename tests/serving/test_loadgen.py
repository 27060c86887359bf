"""The load generator as a library against an in-process worker, and its report."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import numpy as np
import pytest

from serving.loadclient import ClientOptions, RequestResult, request_body
from serving.loadgen import LoadGenerator, LoadOptions
from serving.openai_api import parse_request
from serving.report import build_report
from specs.documents import ModelTarget
from tests.serving.conftest import running_worker, settings
from workloads.arrivals import Arrival, PoissonArrivals, TokenSizes, assign_classes

EXAMPLE = Path(__file__).resolve().parents[2] / "specs" / "examples" / "h100-vllm.json"


def run(options_kwargs: dict, arrivals: list[Arrival], worker_kwargs: dict | None = None,
        ) -> tuple[list[RequestResult], float, dict]:
    async def scenario() -> tuple[list[RequestResult], float, dict]:
        async with running_worker(settings(**(worker_kwargs or {}))) as (url, state):
            options = LoadOptions(targets=(url,), **options_kwargs)
            results, elapsed = await LoadGenerator(options).run(arrivals)
            return results, elapsed, {"finished": state.engine.stats.finished,
                                      "tokens": state.engine.stats.decode_tokens}

    return asyncio.run(scenario())


def test_request_bodies_fix_lengths_for_the_worker() -> None:
    arrival = Arrival(0.0, 37, 9)
    for endpoint, fmt in (("completions", "ids"), ("completions", "text"), ("chat", "ids")):
        body = json.loads(request_body(arrival, ClientOptions(endpoint=endpoint, prompt_format=fmt,
                                                              model="m")))
        kind = "chat" if endpoint == "chat" else "completion"
        parsed = parse_request(kind, body, 16)
        assert (parsed.prompt_tokens, parsed.max_tokens, parsed.stream) == (37, 9, True)
        assert body["ignore_eos"] is True and body["model"] == "m"


def test_poisson_run_counts_and_latencies() -> None:
    arrivals = list(assign_classes(
        PoissonArrivals(40, 1.0, TokenSizes(64, 8)).arrivals(np.random.default_rng(0)),
        {"premium": 1, "bronze": 1}, np.random.default_rng(1)))
    results, elapsed, worker = run({}, arrivals)
    assert len(results) == len(arrivals) and all(r.ok for r in results)
    assert worker["finished"] == len(results)
    assert sum(r.output_tokens for r in results) == worker["tokens"] == 8 * len(results)
    assert all(r.chunks == 8 and len(r.itl_s) == 7 for r in results)
    targets = {"premium": ModelTarget(model="m", ttft_ms=10_000, itl_ms=10_000)}
    report = build_report(results, ["u"], elapsed, targets)
    assert report.overall.requests == len(results) and report.overall.errors == 0
    assert {c.service_class for c in report.classes} == {"bronze", "premium"}
    premium = next(c for c in report.classes if c.service_class == "premium")
    assert premium.slo is not None and premium.slo.attainment == 1.0 and premium.slo.ttft_met
    assert next(c for c in report.classes if c.service_class == "bronze").slo is None
    assert report.overall.itl_ms.count == 7 * len(results)
    assert report.overall.ttft_ms.p50 <= report.overall.ttft_ms.p99


def test_bounds_duration_max_requests_and_drain() -> None:
    arrivals = [Arrival(0.01 * i, 10, 4) for i in range(100)]
    results, _, _ = run({"max_requests": 5}, arrivals)
    assert len(results) == 5
    results, _, _ = run({"duration_s": 0.1}, arrivals)
    assert len(results) == 11  # arrivals at 0.00 .. 0.10
    start = time.perf_counter()
    long = [Arrival(0.0, 10, 50_000)]
    results, _, _ = run({"drain_timeout_s": 0.2}, long)
    assert time.perf_counter() - start < 5
    assert results[0].error == "cancelled" and not results[0].ok


def test_errors_are_counted_by_kind() -> None:
    arrivals = [Arrival(0.0, 10, 200) for _ in range(6)]
    results, elapsed, _ = run({}, arrivals, {"max_batch": 1, "max_queue": 1})
    report = build_report(results, ["u"], elapsed)
    assert report.overall.ok == 2 and report.overall.errors_by_kind == {"http 429": 4}
    targets = {"(none)": ModelTarget(model="m", ttft_ms=1)}
    none_class = build_report(results, ["u"], elapsed, targets).classes[0]
    assert none_class.slo.attainment == 0.0 and none_class.slo.ttft_met is False


def test_unreachable_target_is_an_error_not_a_hang() -> None:
    options = LoadOptions(targets=("http://127.0.0.1:9",),
                          client=ClientOptions(timeout_s=2.0))
    results, _ = asyncio.run(LoadGenerator(options).run([Arrival(0.0, 1, 1)]))
    assert results[0].error.startswith("connection")


def test_options_only_take_http_urls() -> None:
    with pytest.raises(ValueError):
        LoadOptions(targets=("ftp://x",))
    with pytest.raises(ValueError):
        LoadOptions(targets=())


def _args(*argv: str):
    from controller.cli import build_parser

    return build_parser().parse_args(["loadgen", "--target", "http://127.0.0.1:1", *argv])


def test_cli_arrival_sources() -> None:
    from controller.commands.loadgen import build_arrivals, class_targets
    from specs.errors import SpecError

    rng = np.random.default_rng(0)
    schedule = list(build_arrivals(_args("--schedule", "0:10,10:10"), rng))
    assert len(schedule) == pytest.approx(100, rel=0.3)
    diurnal = list(build_arrivals(_args("--diurnal", "1:20:10", "--duration", "20",
                                        "--service-class", "premium"), rng))
    assert diurnal and all(a.service_class == "premium" for a in diurnal)
    with pytest.raises(SpecError, match="--duration"):
        build_arrivals(_args("--rate", "5"), rng)
    with pytest.raises(SpecError, match="class-mix"):
        list(build_arrivals(_args("--rate", "5", "--duration", "1", "--class-mix", "a:1"), rng))
    spec = str(EXAMPLE)
    targets = class_targets(_args("--rate", "1", "--spec", spec, "--model", "llama_3_1_8b"),
                            {"Premium", "Bronze"})
    assert set(targets) == {"Premium"} and targets["Premium"].itl_ms == 30
    with pytest.raises(SpecError, match="unknown service class"):
        class_targets(_args("--rate", "1", "--spec", spec, "--model", "m"), {"Gold"})
