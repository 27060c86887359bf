"""capacity-table: sizing by replay, checked against independent replays; the cache."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

from queue_models.base import ServiceParams, Targets
from queue_models.capacity_cache import CapacityCache
from queue_models.capacity_model import CapacityTableModel
from queue_models.capacity_sizing import CalibrationOptions, CapacitySizing, Config, configs
from queue_models.capacity_table import Criteria, Probe, attainment
from queue_models.iteration_cost import LinearCost
from queue_models.replay import ReplaySetup, replay
from queue_models.workload_sample import WorkloadSample

OPTIONS = CalibrationOptions(requests=600, pool_sizes=(1, 2, 4), batch_fractions=(1.0, 0.5),
                             token_budgets=(256,), tolerance=0.04)
PARAMS = ServiceParams(20.0, 0.08, 1e-4, in_tokens=600, out_tokens=60, max_batch=32,
                       max_queue=0, token_budget=1024)
TARGETS = Targets(ttft_ms=1500, itl_ms=60, ttft_percentile=99, itl_percentile=99)


@pytest.fixture(scope="module")
def sized() -> tuple[CapacityTableModel, CapacitySizing]:
    model = CapacityTableModel(OPTIONS)
    return model, model.size_candidate(PARAMS, TARGETS)


def test_sizing_finds_a_configuration_and_a_pool_curve(sized):
    model, sizing = sized
    assert sizing.feasible and sizing.config is not None
    assert sizing.config.max_batch in (32, 16)
    assert sizing.config.token_budget in (1024, 256)
    rates = [r for _, r in sizing.pool_rates]
    sizes = [n for n, _ in sizing.pool_rates]
    assert sizes == [1, 2, 4][:len(sizes)] and len(sizes) >= 2
    assert rates == sorted(rates) and rates[0] > 0
    assert sizing.replicas_for(rates[0] * 0.99) == 1
    assert sizing.replicas_for(sizes[-1] * rates[-1] * 1.01) == sizes[-1] + 1
    assert model.replays > 0


def test_the_sized_rate_holds_on_another_sample_and_is_not_far_below_the_limit(sized):
    model, sizing = sized
    assert sizing.config is not None
    rate = sizing.rate_at(1)
    other = WorkloadSample.synthetic(600, 60, requests=3000, size_cv=1.0, seed=99)
    setup = ReplaySetup(LinearCost(20.0, 0.08, 1e-4), sizing.config.max_batch,
                        sizing.config.token_budget)
    criteria = Criteria.of(TARGETS, headroom=0.0)

    def share(r: float) -> float:
        result = replay(setup, other, r)
        return attainment(Probe(r, result.ttft_s, result.itl_s, result.overloaded), criteria)

    assert share(rate) >= 0.98
    assert share(1.5 * rate) < 0.99


def test_tighter_targets_carry_less_and_unreachable_ones_are_infeasible(sized):
    model, sizing = sized
    tight = model.size_candidate(PARAMS, Targets(ttft_ms=600, itl_ms=40, ttft_percentile=99,
                                                 itl_percentile=99))
    assert tight.rate_at(1) < sizing.rate_at(1)
    never = model.size_candidate(PARAMS, Targets(itl_ms=10, itl_percentile=99))
    assert not never.feasible and "ITL 10 ms" in never.reason
    with pytest.raises(ValueError):
        never.replicas_for(1.0)


def test_a_fixed_batch_is_kept(sized):
    model, _ = sized
    fixed = model.size_candidate(PARAMS, TARGETS, fixed_batch=True)
    assert fixed.config is not None and fixed.config.max_batch == 32


def test_a_second_run_with_the_same_cache_folder_replays_nothing(tmp_path):
    options = CalibrationOptions(requests=300, pool_sizes=(1, 2), batch_fractions=(1.0,),
                                 token_budgets=(), tolerance=0.05)
    first = CapacityTableModel(options, CapacityCache(tmp_path))
    a = first.size_candidate(PARAMS, TARGETS)
    second = CapacityTableModel(options, CapacityCache(tmp_path))
    b = second.size_candidate(PARAMS, TARGETS)
    assert first.replays > 0 and second.replays == 0
    assert a == b


def test_a_time_scale_reads_the_same_tables_slower(sized):
    model, sizing = sized
    replays = model.replays
    slower = model.size_candidate(replace(PARAMS, time_scale=1.25), TARGETS)
    assert slower.rate_at(1) < sizing.rate_at(1) / 1.2
    assert model.replays - replays <= 20  # refinements only: no new configuration search
    assert slower.pool_rates[0][1] == pytest.approx(
        model.size_candidate(PARAMS, Targets(1500 / 1.25, 60 / 1.25, 0, 99, 99))
        .pool_rates[0][1] / 1.25, rel=0.05)


def test_predictions_interpolate_between_probes(sized):
    model, sizing = sized
    params = model.configured(PARAMS, sizing)
    queue = model.prepare(params)
    rate = sizing.rate_at(1)
    low, high = queue.ttft_ms(rate * 0.5, 0.99), queue.ttft_ms(rate, 0.99)
    assert math.isfinite(low) and low <= high
    assert queue.itl_ms(rate, None) < TARGETS.itl_ms
    perf = queue.evaluate(rate)
    assert perf.throughput_rps == pytest.approx(rate)


def test_every_configuration_tried_is_one_vllm_starts() -> None:
    """vLLM refuses max_num_batched_tokens < max_num_seqs: batches are capped at the
    budget, and a fixed batch raises the budget instead."""
    options = CalibrationOptions(token_budgets=(128, 512))
    tried = configs(256, 2048, options)
    assert tried[0] == Config(256, 2048)
    assert all(c.token_budget >= c.max_batch for c in tried)
    assert Config(128, 128) in tried and Config(256, 128) not in tried
    assert len(tried) == len(set(tried))
    fixed = configs(256, 2048, options, fixed_batch=True)
    assert all(c.max_batch == 256 and c.token_budget >= 256 for c in fixed)
