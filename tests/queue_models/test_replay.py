"""replay: a pool of engines under a workload sample, checked against hand-computed times."""

from __future__ import annotations

import math

import numpy as np
import pytest

from queue_models.iteration_cost import LinearCost
from queue_models.replay import ReplaySetup, replay
from queue_models.workload_sample import WorkloadSample

LAW = LinearCost(10.0, 0.1, 0.0)  # ms: alpha 10, beta 0.1 per token


def _sample(offsets: list[float], prompt: int = 100, output: int = 5) -> WorkloadSample:
    n = len(offsets)
    return WorkloadSample.of("t", offsets, [prompt] * n, [output] * n)


def test_a_lone_request_pays_its_prefill_and_one_decode_step():
    # two requests far apart: each alone; prefill 10 + 0.1 x 100 = 20 ms, decode 10.1 ms
    sample = _sample([0.0, 1.0])
    result = replay(ReplaySetup(LAW, max_batch=8, token_budget=512), sample, 0.01)
    assert result.ttft_s == pytest.approx([0.0301, 0.0301], abs=1e-9)
    assert result.itl_s == pytest.approx([0.0101, 0.0101], abs=1e-9)
    assert not result.overloaded


def test_a_pool_routes_simultaneous_requests_to_idle_replicas():
    sample = _sample([0.0, 0.0, 10.0])
    alone = replay(ReplaySetup(LAW, 8, 512, replicas=1), sample, 0.01)
    pooled = replay(ReplaySetup(LAW, 8, 512, replicas=2), sample, 0.005)
    # one replica: the first request's prefill starts at once (20 ms); its first decode
    # shares an iteration with the second's prefill (10 + 0.1 x 101 = 20.1 ms)
    assert alone.ttft_s[0] == pytest.approx(0.0401, abs=1e-9)
    assert alone.ttft_s[1] > 0.05
    # two replicas: each request alone on its own replica
    assert pooled.ttft_s[:2] == pytest.approx([0.0301, 0.0301], abs=1e-9)


def test_token_budget_chunks_long_prompts():
    sample = _sample([0.0, 1.0], prompt=1000, output=2)
    whole = replay(ReplaySetup(LAW, 8, 1000), sample, 0.01)
    chunked = replay(ReplaySetup(LAW, 8, 250), sample, 0.01)
    # four chunks pay alpha four times
    assert chunked.ttft_s[0] - whole.ttft_s[0] == pytest.approx(0.030, abs=1e-9)


def test_one_token_requests_have_no_itl():
    sample = _sample([0.0, 1.0], output=1)
    result = replay(ReplaySetup(LAW, 8, 512), sample, 0.01)
    assert np.isnan(result.itl_s).all()


def test_an_overloaded_replay_stops_and_counts_the_rest_as_never_served():
    sample = WorkloadSample.synthetic(2000, 200, requests=3000, seed=1)
    result = replay(ReplaySetup(LAW, 4, 512, overload_waiting=50), sample, 50.0)
    assert result.overloaded
    assert math.isinf(result.ttft_s[-1])


def test_noise_is_seeded():
    sample = WorkloadSample.synthetic(300, 30, requests=400, seed=1)
    a = replay(ReplaySetup(LAW, 8, 512, noise_cv=0.1, seed=4), sample, 5.0)
    b = replay(ReplaySetup(LAW, 8, 512, noise_cv=0.1, seed=4), sample, 5.0)
    c = replay(ReplaySetup(LAW, 8, 512, noise_cv=0.1, seed=5), sample, 5.0)
    assert np.array_equal(a.ttft_s, b.ttft_s)
    assert not np.array_equal(a.ttft_s, c.ttft_s)
