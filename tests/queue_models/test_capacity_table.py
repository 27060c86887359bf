"""capacity_table: criteria from targets, attainment, and the largest-rate search."""

from __future__ import annotations

import numpy as np
import pytest

from queue_models.base import Targets
from queue_models.capacity_cache import CapacityCache
from queue_models.capacity_table import (
    CapacityTable,
    Criteria,
    Probe,
    TableKey,
    attainment,
    largest_rate,
    passes,
)

KEY = TableKey("law", 32, 2048, 1, "sample", 0.0, 1)
N = 2000


def _probe(rate: float, misses: int, itl_misses: int = 0) -> Probe:
    ttft = np.full(N, 0.5, dtype=np.float32)
    itl = np.full(N, 0.02, dtype=np.float32)
    ttft[N - misses:] = 5.0
    itl[:itl_misses] = 0.2
    return Probe(rate, ttft, itl)


def test_percentile_targets_become_a_joint_attainment_goal_with_headroom():
    c = Criteria.of(Targets(2000, 80, ttft_percentile=99, itl_percentile=95), headroom=0.5)
    assert c.ttft_s == 2.0 and c.itl_s == 0.08
    assert c.goal == pytest.approx(0.995)  # the stricter percentile, half its misses kept
    means = Criteria.of(Targets(2000, 80))
    assert means.mean_ttft_s == 2.0 and means.mean_itl_s == 0.08 and means.goal == 0.0
    assert Criteria.of(Targets()).empty


def test_a_request_meets_targets_only_with_both_latencies_within():
    c = Criteria(ttft_s=1.0, itl_s=0.05, goal=0.99, warmup_fraction=0.0)
    probe = _probe(1.0, misses=10, itl_misses=10)
    assert attainment(probe, c) == pytest.approx(1 - 20 / N)
    assert passes(probe, c)  # 99.0% >= 99%
    assert not passes(_probe(1.0, misses=11, itl_misses=10), c)
    assert not passes(Probe(1.0, probe.ttft_s, probe.itl_s, overloaded=True), c)


def test_mean_targets_compare_means():
    c = Criteria(mean_ttft_s=1.0, warmup_fraction=0.0)
    assert passes(_probe(1.0, misses=100), c)  # mean 0.725 s
    assert not passes(_probe(1.0, misses=400), c)  # mean 1.4 s


def _threshold_probe(limit: float, calls: list[float]):
    def probe(rate: float) -> Probe:
        calls.append(rate)
        misses = 0 if rate <= limit else min(N, int(50 + 400 * (rate - limit)))
        return _probe(rate, misses)
    return probe


@pytest.mark.parametrize("guess", [0.1, 1.0, 2.0, 10.0])
def test_the_search_finds_the_threshold_from_any_guess(guess):
    c = Criteria(ttft_s=1.0, goal=0.995)
    calls: list[float] = []
    rate = largest_rate(CapacityTable(KEY), c, _threshold_probe(2.0, calls), guess,
                        tolerance=0.02)
    assert 2.0 * 0.98 <= rate <= 2.0
    assert len(calls) <= 16


def test_the_search_reuses_the_table_and_returns_zero_when_infeasible():
    c = Criteria(ttft_s=1.0, goal=0.995)
    table = CapacityTable(KEY)
    calls: list[float] = []
    first = largest_rate(table, c, _threshold_probe(2.0, calls), 1.0, tolerance=0.02)
    before = len(calls)
    again = largest_rate(table, c, _threshold_probe(2.0, calls), 1.0, tolerance=0.02)
    assert again == first and len(calls) == before
    never = largest_rate(CapacityTable(KEY), c, _threshold_probe(-1.0, []), 1.0)
    assert never == 0.0


def test_tables_survive_a_round_trip_through_the_cache(tmp_path):
    cache = CapacityCache(tmp_path)
    table = cache.table(KEY)
    table.add(_probe(1.5, misses=3))
    table.add(Probe(3.0, np.full(N, np.inf, np.float32), np.full(N, np.inf, np.float32), True))
    cache.save(table)
    loaded = CapacityCache(tmp_path).table(KEY)
    assert loaded.rates() == [1.5, 3.0]
    assert np.array_equal(loaded.probes[1.5].ttft_s, table.probes[1.5].ttft_s)
    assert loaded.probes[3.0].overloaded
    (tmp_path / f"{KEY.file_stem()}.npz").write_bytes(b"not a table")
    assert CapacityCache(tmp_path).table(KEY).probes == {}
