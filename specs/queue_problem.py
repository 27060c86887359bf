"""inferno's queue-analysis problem document (`problem-data.json`).

Fields (matched case-insensitively): RPS (requests/second), maxBatchSize,
AvgInputTokens, AvgOutputTokens, alpha, beta, gamma (ms), maxQueueSize, targetTTFT,
targetITL (ms, 0 = none), and optionally targetTPS and maxNumTokens (token budget).
To extend: read the new key in `read_queue_problem` and add a field to `QueueProblem`.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from specs.documents import Document, NonNegFloat, Tokens
from specs.jsonnode import Node, build_document, read_json
from specs.limits import MAX_BATCH, MAX_QUEUE, MAX_RATE_RPS, MAX_TOKENS

_KEYS = {
    "rate_rps": "RPS", "max_batch": "maxBatchSize", "max_queue": "maxQueueSize",
    "in_tokens": "AvgInputTokens", "out_tokens": "AvgOutputTokens", "alpha_ms": "alpha",
    "beta_ms": "beta", "gamma_ms": "gamma", "token_budget": "maxNumTokens",
    "target_ttft_ms": "targetTTFT", "target_itl_ms": "targetITL", "target_tps": "targetTPS",
}


class QueueProblem(Document):
    """One replica's queueing problem: profile, load, batch and queue limits, targets."""

    rate_rps: float = Field(ge=0, le=MAX_RATE_RPS, description="Arrival rate, requests/second.")
    max_batch: int = Field(ge=1, le=MAX_BATCH, description="Max batch size.")
    max_queue: int = Field(ge=0, le=MAX_QUEUE, description="Max waiting requests.")
    in_tokens: Tokens = Field(description="Mean input tokens.")
    out_tokens: float = Field(ge=1, le=MAX_TOKENS, description="Mean output tokens.")
    alpha_ms: NonNegFloat = Field(description="Fixed iteration time, ms.")
    beta_ms: NonNegFloat = Field(description="Per-token iteration time, ms.")
    gamma_ms: NonNegFloat = Field(description="Per-token-per-context-token time, ms.")
    token_budget: int = Field(8192, ge=1, le=MAX_TOKENS, description="Tokens per iteration.")
    target_ttft_ms: NonNegFloat = Field(0.0, description="TTFT target (0: none).")
    target_itl_ms: NonNegFloat = Field(0.0, description="ITL target (0: none).")
    target_tps: NonNegFloat = Field(0.0, description="Tokens/s target (0: none).")


def read_queue_problem(path: str | Path) -> QueueProblem:
    """Read a queue-analysis problem file; errors name the file and JSON path."""
    path = Path(path)
    n = Node(read_json(path), path)
    n.obj()
    return build_document(
        QueueProblem, n, _KEYS,
        rate_rps=n.field("RPS", float), max_batch=n.field("maxBatchSize", int),
        max_queue=n.field("maxQueueSize", int, 0),
        in_tokens=n.field("AvgInputTokens", float), out_tokens=n.field("AvgOutputTokens", float),
        alpha_ms=n.field("alpha", float), beta_ms=n.field("beta", float),
        gamma_ms=n.field("gamma", float), token_budget=n.field("maxNumTokens", int, 8192),
        target_ttft_ms=n.field("targetTTFT", float, 0.0),
        target_itl_ms=n.field("targetITL", float, 0.0),
        target_tps=n.field("targetTPS", float, 0.0),
    )
