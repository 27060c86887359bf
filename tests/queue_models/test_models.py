"""The registry, and both analytic models: invariants, monotonicity and extreme inputs."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest

from queue_models import (
    DEFAULT_QUEUE_MODEL,
    Performance,
    PreparedQueue,
    QueueModel,
    ServiceParams,
    Targets,
    UnknownQueueModel,
    get_queue_model,
    queue_model_names,
)
from queue_models.batch_queue import prefill_chunks

MODELS = ["batch-queue", "batch-queue-v06"]
PARAMS = ServiceParams(12.0, 0.05, 0.0005, 128, 512, max_batch=48, max_queue=128)


def test_registry_names_and_default():
    assert queue_model_names() == sorted([*MODELS, "capacity-table"])
    assert DEFAULT_QUEUE_MODEL in queue_model_names()
    for name in queue_model_names():
        model = get_queue_model(name)
        assert model.name == name
        assert isinstance(model, QueueModel)
        assert isinstance(model.prepare(PARAMS), PreparedQueue)
    assert get_queue_model(MODELS[0]) is not get_queue_model(MODELS[0])


def test_unknown_model_lists_known_names():
    with pytest.raises(UnknownQueueModel) as info:
        get_queue_model("mm1")
    assert isinstance(info.value, KeyError)
    message = str(info.value)
    assert "mm1" in message
    for name in MODELS:
        assert name in message


@pytest.mark.parametrize("name", MODELS)
def test_service_time_is_prefill_plus_out_tokens_itls(name):
    model = get_queue_model(name)
    batch = np.arange(1, 300)
    for params in (PARAMS, ServiceParams(8.0, 0.02, 1e-4, 6000, 300, 1, 0, token_budget=2048)):
        tau = model.service_time_ms(params, batch)
        prefill = model.prefill_at_batch_ms(params, batch)
        itl = model.itl_at_batch_ms(params, batch)
        np.testing.assert_allclose(tau, prefill + params.out_tokens * itl, rtol=1e-12)
        assert np.all(np.diff(itl) >= 0)


def test_chunked_prefill_counts_grow_with_batch():
    params = ServiceParams(12.0, 0.05, 0.0005, 20_000, 512, 256, 0)
    chunks = prefill_chunks(params, np.arange(1, 257))
    assert chunks[0] == 3 and np.all(np.diff(chunks) >= 0) and chunks[-1] > 50
    assert np.all(prefill_chunks(PARAMS, np.arange(1, 49)) == 1)


@pytest.mark.parametrize("name", MODELS)
def test_latencies_increase_with_rate(name):
    prepared = get_queue_model(name).prepare(PARAMS)
    rates = np.linspace(prepared.min_rate_rps, 1.2 * prepared.max_rate_rps, 60)
    for q_ttft, q_itl in ((None, None), (0.95, 0.95), (0.5, 0.99)):
        pairs = np.array([prepared.latencies_ms(r, q_ttft, q_itl) for r in rates])
        assert np.all(np.diff(pairs[:, 0]) >= -1e-9 * pairs[1:, 0]), (q_ttft, q_itl)
        assert np.all(np.diff(pairs[:, 1]) >= -1e-9 * pairs[1:, 1]), (q_ttft, q_itl)
    throughput = [prepared.evaluate(r).throughput_rps for r in rates]
    assert np.all(np.diff(throughput) > 0)


@pytest.mark.parametrize("name", MODELS)
def test_quantiles_increase_with_q_and_stay_in_range(name):
    model = get_queue_model(name)
    prepared = model.prepare(PARAMS)
    rate = 0.97 * prepared.max_rate_rps
    qs = [0.05, 0.25, 0.5, 0.75, 0.95, 0.99, 0.999]
    ttft = [model.ttft_quantile_ms(PARAMS, rate, q) for q in qs]
    itl = [model.itl_quantile_ms(PARAMS, rate, q) for q in qs]
    assert np.all(np.diff(ttft) >= 0) and np.all(np.diff(itl) >= 0)
    itl_range = model.itl_at_batch_ms(PARAMS, np.array([1, PARAMS.max_batch]))
    assert itl_range[0] <= itl[0] and itl[-1] <= itl_range[1]
    perf = prepared.evaluate(rate)
    assert ttft[0] == pytest.approx(perf.avg_ttft_ms - perf.avg_wait_ms)  # no wait at p5


@pytest.mark.parametrize("name", MODELS)
def test_capacity_5000_is_finite(name):
    model = get_queue_model(name)
    params = ServiceParams(12.0, 0.05, 0.0005, 128, 512, max_batch=200, max_queue=4_800)
    prepared = model.prepare(params)
    for rate in (1e-9, prepared.max_rate_rps, 50 * prepared.max_rate_rps):
        perf = prepared.evaluate(rate)
        assert all(math.isfinite(v) for v in _numbers(perf)), perf
        assert math.isfinite(prepared.ttft_ms(rate, 0.99))
        assert math.isfinite(prepared.itl_ms(rate, 0.99))


def _numbers(perf: Performance) -> list[float]:
    return [getattr(perf, f) for f in perf.__slots__]


@pytest.mark.parametrize("name", MODELS)
def test_very_low_and_very_high_rates(name):
    prepared = get_queue_model(name).prepare(PARAMS)
    zero = prepared.evaluate(0.0)
    trickle = prepared.evaluate(1e-9)
    assert zero.throughput_rps == 0 and zero.avg_wait_ms == 0
    assert trickle.throughput_rps == pytest.approx(1e-9, rel=1e-9)
    assert trickle.avg_ttft_ms == pytest.approx(zero.avg_ttft_ms, rel=1e-6)
    assert trickle.avg_itl_ms == pytest.approx(zero.avg_itl_ms, rel=1e-6)
    flood = prepared.evaluate(1e6)
    assert flood.blocking_prob == pytest.approx(1.0, abs=1e-4)
    assert flood.throughput_rps == pytest.approx(prepared.max_rate_rps / 0.999, rel=1e-6)
    assert flood.avg_num_in_system == pytest.approx(PARAMS.capacity, rel=1e-6)
    with pytest.raises(ValueError):
        prepared.evaluate(-1.0)


@pytest.mark.parametrize("name", MODELS)
def test_one_evaluation_at_capacity_1000_is_well_under_a_millisecond(name):
    params = ServiceParams(12.0, 0.05, 0.0005, 128, 512, max_batch=100, max_queue=900)
    model = get_queue_model(name)
    model.evaluate(params, 5.0)
    timings = []
    for _ in range(30):
        start = time.perf_counter()
        model.evaluate(params, 5.0)
        timings.append(time.perf_counter() - start)
    assert float(np.median(timings)) < 0.5e-3


def test_effective_batch_and_default_queue():
    v06, v08 = get_queue_model("batch-queue-v06"), get_queue_model("batch-queue")
    assert v06.effective_max_batch(76, 512, 1024) == 38
    assert v06.effective_max_batch(18, 512, 100_000) == 1
    assert v06.effective_max_batch(64, None, 1024) == 64
    assert v08.effective_max_batch(64, 512, 1024) == 64
    assert v06.default_max_queue(38) == 380 and v08.default_max_queue(48) == 480


@pytest.mark.parametrize(
    "kwargs",
    [
        {"alpha_ms": -1.0},
        {"out_tokens": 0.5},
        {"max_batch": 0},
        {"max_queue": -1},
        {"in_tokens": math.nan},
        {"token_budget": 0},
    ],
)
def test_service_params_are_validated(kwargs):
    base = {
        "alpha_ms": 1.0,
        "beta_ms": 0.1,
        "gamma_ms": 0.0,
        "in_tokens": 10,
        "out_tokens": 10,
        "max_batch": 4,
        "max_queue": 4,
    }
    with pytest.raises(ValueError):
        ServiceParams(**{**base, **kwargs})


def test_all_zero_profile_is_rejected():
    with pytest.raises(ValueError, match="service time"):
        get_queue_model("batch-queue-v06").prepare(ServiceParams(0, 0, 0, 10, 10, 4, 4))


@pytest.mark.parametrize(
    "kwargs", [{"ttft_ms": -1.0}, {"ttft_percentile": 100.0}, {"itl_percentile": 0.0}]
)
def test_targets_are_validated(kwargs):
    with pytest.raises(ValueError):
        Targets(**kwargs)
    assert Targets(ttft_percentile=95.0).ttft_quantile == pytest.approx(0.95)
