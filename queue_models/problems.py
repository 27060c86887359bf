"""inferno queue-analysis's three requests (/solve, /target, /optimize) as functions.

Each takes a model, a `ServiceParams`, a rate and `Targets`, and returns a dict with
exactly the field names of inferno's answers (`solution-solve.json`,
`solution-target.json`, `solution-optimize.json`), so a CLI can print inferno-shaped
JSON. `problem_from_dict` reads inferno's `problem-data.json` document (keys matched
case-insensitively, as inferno does); it does no I/O.

Differences: /target honours a tokens/s target if one is given (inferno's endpoint
passes 0) and raises `TargetsInfeasible` where inferno answers HTTP 400; the rate is
ignored by /target and /optimize, as in inferno; /optimize uses params.max_batch as the
search ceiling.

To extend: a new request is one function here that calls `queue_models.sizing`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from queue_models.base import DEFAULT_TOKEN_BUDGET, Performance, QueueModel, ServiceParams, Targets
from queue_models.sizing import best_max_batch, max_rate_for_targets


class TargetsInfeasible(ValueError):
    """A target is missed even at the smallest rate the model considers."""


@dataclass(frozen=True, slots=True)
class Problem:
    """inferno's problem-data document, typed."""

    params: ServiceParams
    rate_rps: float
    targets: Targets


def problem_from_dict(doc: Mapping[str, Any]) -> Problem:
    """Read inferno's problem-data.json content (RPS, maxBatchSize, AvgInputTokens, ...)."""
    keys = {str(k).lower(): v for k, v in doc.items()}

    def num(key: str, default: float | None = None) -> float:
        if key.lower() not in keys:
            if default is None:
                raise ValueError(f"problem data: missing {key!r}")
            return default
        return float(keys[key.lower()])

    params = ServiceParams(
        alpha_ms=num("alpha"),
        beta_ms=num("beta"),
        gamma_ms=num("gamma"),
        in_tokens=num("avgInputTokens"),
        out_tokens=num("avgOutputTokens"),
        max_batch=int(num("maxBatchSize")),
        max_queue=int(num("maxQueueSize", 0)),
        token_budget=int(num("maxNumTokens", DEFAULT_TOKEN_BUDGET)),
    )
    targets = Targets(ttft_ms=num("targetTTFT", 0.0), itl_ms=num("targetITL", 0.0))
    return Problem(params=params, rate_rps=num("RPS", 0.0), targets=targets)


def _metrics(perf: Performance | None) -> dict[str, float]:
    if perf is None:
        perf = Performance(0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
    return {
        "throughput": perf.throughput_rps,
        "avgRespTime": perf.avg_resp_ms,
        "avgWaitTime": perf.avg_wait_ms,
        "avgNumInServ": perf.avg_num_in_serv,
        "avgTTFT": perf.avg_ttft_ms,
        "avgITL": perf.avg_itl_ms,
        "maxRPS": perf.max_rps,
    }


def solve_problem(
    model: QueueModel, params: ServiceParams, rate_rps: float, targets: Targets | None = None
) -> dict[str, float]:
    """/solve: performance at the given rate (targets unused, target rates 0)."""
    return {**_metrics(model.evaluate(params, rate_rps)), "RPSTargetTTFT": 0.0, "RPSTargetITL": 0.0}


def target_problem(
    model: QueueModel, params: ServiceParams, rate_rps: float, targets: Targets
) -> dict[str, float]:
    """/target: largest rate meeting the targets, performance there, rate per target."""
    sizing = max_rate_for_targets(model, params, targets)
    if not sizing.feasible:
        raise TargetsInfeasible(
            f"{sizing.binding} target missed at the min rate {sizing.min_rate_rps:.6g} rps "
            f"(TTFT {sizing.performance.avg_ttft_ms:.6g} ms, ITL {sizing.performance.avg_itl_ms:.6g} ms)"
        )
    return {
        **_metrics(sizing.performance),
        "RPSTargetTTFT": sizing.ttft_rate_rps or 0.0,
        "RPSTargetITL": sizing.itl_rate_rps or 0.0,
    }


def optimize_problem(
    model: QueueModel, params: ServiceParams, rate_rps: float, targets: Targets
) -> dict[str, Any]:
    """/optimize: smallest max batch (<= params.max_batch) reaching near-peak throughput."""
    choice = best_max_batch(model, params, targets, ceiling=params.max_batch)
    metrics = _metrics(choice.performance)
    metrics["throughput"] = choice.throughput_rps
    return {
        "concurrency": choice.max_batch,
        **metrics,
        "M_ITL": choice.m_itl,
        "M_TPF": choice.m_tpf,
        "oracleCalls": choice.oracle_calls,
        "feasible": choice.feasible,
    }
