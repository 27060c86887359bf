"""Sizing for targets and the best-max-batch search: edge cases and invariants."""

from __future__ import annotations

from dataclasses import replace

import pytest

from queue_models import (
    ServiceParams,
    Targets,
    TargetsInfeasible,
    best_max_batch,
    get_queue_model,
    max_rate_for_targets,
    optimize_problem,
    size_prepared,
    target_problem,
)
from queue_models.sizing import bisect_rate

MODELS = ["batch-queue", "batch-queue-v06"]
PARAMS = ServiceParams(12.0, 0.05, 0.0005, 128, 512, max_batch=48, max_queue=128)


@pytest.mark.parametrize("name", MODELS)
def test_no_targets_gives_the_max_rate(name):
    model = get_queue_model(name)
    sizing = max_rate_for_targets(model, PARAMS, Targets())
    assert sizing.feasible and sizing.binding == "max_rate"
    assert sizing.rate_rps == sizing.max_rate_rps == model.max_rate_rps(PARAMS)
    assert sizing.performance.arrival_rate_rps == sizing.rate_rps


@pytest.mark.parametrize("name", MODELS)
def test_target_missed_at_a_trickle_is_infeasible(name):
    model = get_queue_model(name)
    targets = Targets(ttft_ms=60.0, itl_ms=5.0)  # ITL of a lone request is > 12 ms
    sizing = max_rate_for_targets(model, PARAMS, targets)
    assert not sizing.feasible and sizing.binding == "itl" and sizing.rate_rps == 0
    assert sizing.itl_rate_rps == 0 and sizing.ttft_rate_rps > 0
    assert sizing.performance.arrival_rate_rps == sizing.min_rate_rps
    with pytest.raises(TargetsInfeasible, match="itl"):
        target_problem(model, PARAMS, 1.0, targets)


@pytest.mark.parametrize("name", MODELS)
def test_target_never_reached_gives_the_max_rate(name):
    sizing = max_rate_for_targets(get_queue_model(name), PARAMS, Targets(ttft_ms=1e7, itl_ms=1e4))
    assert sizing.feasible and sizing.binding == "max_rate"
    assert sizing.ttft_rate_rps == sizing.itl_rate_rps == sizing.max_rate_rps


def test_tokens_per_s_target_caps_at_ninety_percent():
    sizing = max_rate_for_targets(get_queue_model("batch-queue"), PARAMS, Targets(tokens_per_s=1))
    assert sizing.binding == "tokens_per_s"
    assert sizing.rate_rps == pytest.approx(0.9 * sizing.max_rate_rps)


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize(
    "targets",
    [
        Targets(ttft_ms=60.0, itl_ms=20.0),
        Targets(ttft_ms=400.0, ttft_percentile=99.0),
        Targets(itl_ms=20.5, itl_percentile=90.0),
        Targets(ttft_ms=300.0, itl_ms=21.0, ttft_percentile=95.0, itl_percentile=50.0),
    ],
)
def test_binding_target_is_met_with_equality(name, targets):
    model = get_queue_model(name)
    sizing = max_rate_for_targets(model, PARAMS, targets)
    assert sizing.feasible and sizing.binding in ("ttft", "itl")
    prepared = model.prepare(PARAMS)
    ttft, itl = prepared.latencies_ms(sizing.rate_rps, targets.ttft_quantile, targets.itl_quantile)
    achieved = ttft if sizing.binding == "ttft" else itl
    goal = targets.ttft_ms if sizing.binding == "ttft" else targets.itl_ms
    assert achieved == pytest.approx(goal, rel=1e-5)
    if targets.ttft_ms:
        assert ttft <= targets.ttft_ms * (1 + 1e-5)
    if targets.itl_ms:
        assert itl <= targets.itl_ms * (1 + 1e-5)
    fast = size_prepared(prepared, targets, exhaustive=False)
    assert fast.rate_rps == pytest.approx(sizing.rate_rps, rel=1e-4)
    assert fast.binding == sizing.binding


def test_percentile_target_is_stricter_than_the_same_mean_target():
    model = get_queue_model("batch-queue")
    mean = max_rate_for_targets(model, PARAMS, Targets(ttft_ms=200.0))
    p99 = max_rate_for_targets(model, PARAMS, Targets(ttft_ms=200.0, ttft_percentile=99.0))
    assert p99.rate_rps < mean.rate_rps


def test_bisection_follows_inferno_end_point_rules():
    def metric(x):
        return 10 * x

    assert bisect_rate(metric, 5.0, (1.0, 2.0), (10.0, 20.0)) is None
    assert bisect_rate(metric, 30.0, (1.0, 2.0), (10.0, 20.0)) == 2.0
    assert bisect_rate(metric, 10.0, (1.0, 2.0), (10.0, 20.0)) == 1.0
    assert bisect_rate(metric, 15.0, (1.0, 2.0), (10.0, 20.0)) == pytest.approx(1.5, rel=1e-6)
    assert bisect_rate(lambda x: 7.0, 7.5, (1.0, 2.0), (7.0, 7.0)) == 2.0  # flat: feasible


@pytest.mark.parametrize("name", MODELS)
def test_best_max_batch_reaches_the_threshold(name):
    model = get_queue_model(name)
    targets = Targets(ttft_ms=60.0, itl_ms=20.0)
    params = replace(PARAMS, max_queue=64)
    choice = best_max_batch(model, params, targets, ceiling=96)
    assert choice.feasible and 1 <= choice.max_batch <= 96
    assert len(choice.probes) <= 8 and choice.probes[0] == 96
    assert choice.oracle_calls == sum(1 for _ in choice.probes)  # all feasible here

    def f(m):
        sizing = max_rate_for_targets(model, replace(params, max_batch=m), targets)
        return sizing.performance.throughput_rps if sizing.feasible else 0.0

    threshold = 0.99 * choice.anchor_throughput_rps
    assert choice.throughput_rps == pytest.approx(f(choice.max_batch), rel=1e-6)
    assert choice.throughput_rps >= threshold
    lo = max(1, min(choice.m_itl, choice.m_tpf))
    converged = len(choice.probes) - 2 < 6  # anchor + bisection + confirmation
    if choice.max_batch > lo and converged:
        assert f(choice.max_batch - 1) < threshold
    assert choice.performance is not None
    assert choice.performance.avg_itl_ms <= 20.0 * (1 + 1e-5)


def test_best_max_batch_without_targets_searches_the_whole_range():
    choice = best_max_batch(get_queue_model("batch-queue"), PARAMS, Targets(), ceiling=64)
    assert choice.m_itl == choice.m_tpf == 64
    assert choice.max_batch > 3  # inferno's Go code would stop at 3 here


def test_best_max_batch_infeasible_everywhere():
    model = get_queue_model("batch-queue")
    choice = best_max_batch(model, PARAMS, Targets(itl_ms=1.0), ceiling=32)
    assert not choice.feasible and choice.max_batch == 1 and choice.oracle_calls == 0
    assert choice.performance is None and choice.probes == (32,)
    answer = optimize_problem(model, PARAMS, 3.0, Targets(itl_ms=1.0))
    assert answer["feasible"] is False and answer["concurrency"] == 1
    assert answer["throughput"] == 0 and answer["avgTTFT"] == 0 and answer["M_ITL"] == 1


def test_best_max_batch_default_ceiling_and_validation():
    model = get_queue_model("batch-queue")
    choice = best_max_batch(model, PARAMS, Targets(ttft_ms=60.0, itl_ms=20.0))
    assert choice.probes[0] == 256
    with pytest.raises(ValueError):
        best_max_batch(model, PARAMS, Targets(), ceiling=0)


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize(
    "targets",
    [
        Targets(),
        Targets(tokens_per_s=1.0),
        Targets(ttft_ms=1e7, itl_ms=1e4),
        Targets(ttft_ms=1e7, itl_ms=1e4, tokens_per_s=1.0),
        Targets(ttft_ms=60.0, itl_ms=20.0, tokens_per_s=1.0),
        Targets(ttft_ms=60.0, itl_ms=5.0),
    ],
)
def test_fast_path_agrees_with_exhaustive_sizing(name, targets):
    prepared = get_queue_model(name).prepare(PARAMS)
    full = size_prepared(prepared, targets, exhaustive=True)
    fast = size_prepared(prepared, targets, exhaustive=False)
    assert (fast.feasible, fast.binding) == (full.feasible, full.binding)
    assert fast.rate_rps == pytest.approx(full.rate_rps, rel=1e-4)
    rate_of = {"ttft": fast.ttft_rate_rps, "itl": fast.itl_rate_rps}
    if fast.binding in rate_of:
        assert rate_of[fast.binding] == fast.rate_rps
