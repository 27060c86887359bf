"""WorkloadSample: normalised arrivals keep bursts and drop slow rate drift; values."""

from __future__ import annotations

import numpy as np
import pytest

from queue_models.workload_sample import WorkloadSample


def _two_rates(n: int = 2000) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Regular arrivals at 1 req/s for n/2 requests, then at 4 req/s."""
    first = np.arange(n // 2, dtype=float)
    second = first[-1] + 0.25 * np.arange(1, n - n // 2 + 1)
    times = np.concatenate([first, second])
    return times, np.full(n, 100), np.full(n, 10)


def test_slow_rate_drift_is_normalised_away():
    times, prompts, outputs = _two_rates()
    sample = WorkloadSample.from_arrivals("drift", times, prompts, outputs,
                                          local_window_s=60.0)
    gaps = np.diff(sample.offsets)
    # far from the change, every gap is one mean gap, whatever the raw rate was
    assert np.allclose(gaps[100:900], 1.0, rtol=0.02)
    assert np.allclose(gaps[1200:1900], 1.0, rtol=0.02)
    raw = np.diff(times)
    assert sample.gap_cv() < 0.2 < raw.std() / raw.mean()


def test_bursts_within_the_window_are_kept():
    rng = np.random.default_rng(0)
    # bursts of 20 requests at once every 20 s: mean rate 1 req/s
    times = np.repeat(np.arange(0, 2000, 20.0), 20) + rng.uniform(0, 1e-3, 2000)
    times.sort()
    sample = WorkloadSample.from_arrivals("bursty", times, np.full(2000, 10),
                                          np.full(2000, 2))
    assert sample.gap_cv() > 3.0


def test_arrival_times_have_the_requested_rate():
    sample = WorkloadSample.synthetic(512, 64, requests=3000, seed=3)
    times = sample.arrival_times(2.5)
    assert times[0] == 0.0
    assert (len(times) - 1) / times[-1] == pytest.approx(2.5)
    assert sample.mean_in_tokens == pytest.approx(512, rel=0.1)
    assert sample.mean_out_tokens == pytest.approx(64, rel=0.1)


def test_long_streams_keep_evenly_spaced_runs():
    times = np.arange(10000, dtype=float)
    prompts = np.arange(10000)
    sample = WorkloadSample.from_arrivals("long", times, prompts, np.ones(10000, int),
                                          max_requests=1000, segments=4)
    assert sample.requests == 1000
    runs = np.split(sample.prompt_tokens, np.flatnonzero(np.diff(sample.prompt_tokens) != 1) + 1)
    assert len(runs) == 4
    assert runs[0][0] == 0 and runs[-1][-1] == 9999


def test_samples_are_values():
    a = WorkloadSample.synthetic(100, 10, requests=200, seed=1)
    b = WorkloadSample.synthetic(100, 10, requests=200, seed=1)
    c = WorkloadSample.synthetic(100, 10, requests=200, seed=2)
    assert a == b and hash(a) == hash(b) and a.digest == b.digest
    assert a != c
    with pytest.raises(ValueError):
        a.offsets[0] = 5.0


@pytest.mark.parametrize("offsets, prompts, outputs", [
    ([0.0, 2.0, 1.0], [1, 1, 1], [1, 1, 1]),
    ([0.0, 1.0], [1, -1], [1, 1]),
    ([0.0, 1.0], [1, 1], [1, 0]),
    ([0.0], [1], [1]),
])
def test_bad_samples_are_refused(offsets, prompts, outputs):
    with pytest.raises(ValueError):
        WorkloadSample.of("bad", offsets, prompts, outputs)
