"""simulator.validation: the queue model against the batching engine.

A fast profile (llama_3_1_8b's H100 fit, 256 prompt / 16 output tokens, a few hundred
requests) keeps each point at a few milliseconds of wall time. At 10% load the engine
and the model agree within 3% on ITL and 15% on TTFT: the model's TTFT leaves out the
wait for the iteration in flight when a request arrives (the engine admits requests
only at iteration boundaries), so it is a little optimistic there.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from queue_models.engine import EngineConfig
from queue_models.registry import UnknownQueueModel
from simulator.validation import (
    ProfileCase,
    ValidationOptions,
    ValidationResult,
    ValidationRow,
    cases_of,
    simulate,
    validate,
    validate_cases,
)
from specs.documents import Profile
from specs.errors import SpecError
from specs.loading import load_fleet

EXAMPLE = Path(__file__).resolve().parents[2] / "specs" / "examples" / "heterogeneous-fleet.json"
PROFILE = Profile(
    model="m", accelerator="H100", alpha_ms=6.49, beta_ms=0.0219, gamma_ms=4.96e-5, max_batch=16
)
CASE = ProfileCase(PROFILE, 256, 16, "test")
SMALL = ValidationOptions(
    max_batches=(4, None, 64), load_fractions=(0.1, 0.5, 0.9), requests=300, warmup=50
)


@pytest.fixture(scope="module")
def result() -> ValidationResult:
    return validate_cases([CASE], SMALL, "batch-queue")


def test_engine_and_model_agree_at_low_load(result):
    low = [r for r in result.rows if r.load_fraction == 0.1]
    assert len(low) == 2
    for row in low:
        assert abs(row.itl_error_pct) < 3.0, row
        assert abs(row.ttft_error_pct) < 15.0, row
        assert row.steady and row.measured == 300 and row.simulated_blocking == 0.0


def test_rows_cover_batches_and_loads(result):
    # 64 is above the profile's max batch (16) and is dropped; None is the profile's max
    assert [(r.max_batch, r.load_fraction) for r in result.rows] == [
        (b, f) for b in (4, 16) for f in (0.1, 0.5, 0.9)
    ]
    for row in result.rows:
        assert row.rate_rps == pytest.approx(row.load_fraction * row.max_rate_rps)
        assert row.max_queue == 10 * row.max_batch  # batch-queue's default, in both
        assert row.ttft_error_pct == pytest.approx(
            (row.predicted_ttft_ms - row.simulated_ttft_ms) / row.simulated_ttft_ms * 100
        )
    assert result.rows[0].max_rate_rps < result.rows[3].max_rate_rps  # bigger batch, more


def test_summaries_markdown_and_json(result):
    summaries = result.summaries()
    assert [s.max_batch for s in summaries] == [4, 16]
    for s in summaries:
        assert s.reliable_up_to in (None, 0.1, 0.5, 0.9)
        assert s.itl_mape_pct < 5.0
    text = result.to_markdown()
    assert "| m | H100 | 4 | 10% |" in text
    assert "reliable up to (±20%)" in text
    assert len([line for line in text.splitlines() if line.startswith("- m on H100:")]) == 1
    data = json.loads(json.dumps(result.to_json(), allow_nan=False))
    assert len(data["rows"]) == 6 and data["cases"][0]["in_tokens"] == 256
    assert data["findings"] == result.findings()


def test_same_seed_same_numbers():
    options = ValidationOptions(max_batches=(4,), load_fractions=(0.5,), requests=100, warmup=10)
    first, again = (validate_cases([CASE], options, "batch-queue") for _ in range(2))
    assert first.rows == again.rows


def row(fraction: float, ttft: float, itl: float) -> ValidationRow:
    return ValidationRow(
        model="m",
        accelerator="A",
        max_batch=8,
        max_queue=80,
        in_tokens=1,
        out_tokens=2,
        load_fraction=fraction,
        rate_rps=fraction,
        max_rate_rps=1.0,
        predicted_ttft_ms=1.0,
        simulated_ttft_ms=1.0,
        ttft_error_pct=ttft,
        predicted_itl_ms=1.0,
        simulated_itl_ms=1.0,
        itl_error_pct=itl,
        simulated_ttft_ci_ms=0.0,
        simulated_itl_ci_ms=0.0,
        simulated_ttft_drift_pct=0.0,
        steady=True,
        predicted_blocking=0.0,
        simulated_blocking=0.0,
        measured=1,
    )


def test_reliable_up_to_stops_at_the_first_miss():
    rows = (row(0.1, -5.0, 1.0), row(0.5, 19.0, -2.0), row(0.7, 25.0, 0.0), row(0.9, 5.0, 0.0))
    result = ValidationResult("batch-queue", ValidationOptions(), rows)
    (summary,) = result.summaries()
    assert summary.reliable_up_to == 0.5
    assert summary.ttft_mape_pct == pytest.approx((5 + 19 + 25 + 5) / 4)
    (sentence,) = result.findings()
    assert "up to 50% load" in sentence and "over-predicts TTFT" in sentence
    assert "pessimistic" in sentence and "ITL within ±20%" in sentence
    missed_first = ValidationResult("batch-queue", ValidationOptions(), (row(0.1, -30.0, 0.0),))
    assert missed_first.summaries()[0].reliable_up_to is None
    assert "under-predicts TTFT" in missed_first.findings()[0]


def test_simulate_measures_ttft_and_itl_of_a_lone_request():
    config = EngineConfig(alpha_ms=10.0, beta_ms=0.0, gamma_ms=0.0, max_batch=4)
    sim = simulate(config, 1e-3, (100, 5), requests=20, warmup=0, rng=np.random.default_rng(0))
    # requests never meet: prefill (10 ms) + first decode (10 ms), then 10 ms per token
    assert sim.ttft_ms == pytest.approx(20.0) and sim.itl_ms == pytest.approx(10.0)
    assert sim.measured == 20 and sim.rejected == 0 and math.isfinite(sim.ttft_ci_ms)


def test_spec_cases_take_the_busiest_server_and_clip_batches():
    spec = load_fleet(EXAMPLE).spec
    options = ValidationOptions(load_fractions=(0.1,), requests=40, warmup=5)
    cases = cases_of(spec, options, [("llama_3_1_8b", "L4")])
    assert [(c.in_tokens, c.out_tokens, c.tokens_from) for c in cases] == [
        (1020, 129, "standard-llama")
    ]
    result = validate(spec, options, profiles=[("llama_3_1_8b", "L4")])
    assert [r.max_batch for r in result.rows] == [8, 32]  # profile max is 32
    assert result.queue_model == "batch-queue"
    with pytest.raises(SpecError, match="no profile for"):
        cases_of(spec, options, [("llama_3_1_8b", "TPU")])
    with pytest.raises(UnknownQueueModel):
        validate_cases(cases, ValidationOptions(queue_model="nope"), "nope")
