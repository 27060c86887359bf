"""`batch-queue`: inferno queue-analysis v0.8, chunked prefill (fleetplan's default).

With L input tokens, K output tokens and a token budget M per iteration, a request's
prefill is split into nc(B) chunks, the smallest m >= 1 with
B <= floor((m + K)(M - L/m) / (L + K)) (inferno's NumIterationsPerPrefill table; here
solved in closed form from the quadratic M m^2 + (K(M - B) - L(B + 1)) m - K L = 0
and checked against the inequality). Then, per batch size B:

    w_pre   = (beta + gamma (nc + 1) / 2) L          prefill work of one request
    w_dec   = beta K + gamma K (L + (K + 1) / 2)     decode work of one request
    delta   = (w_pre + w_dec) / (nc + K)             mean work per iteration
    tau(B)  = (nc + K)(alpha + B delta)              service time
    prefill = nc max(alpha + (B - 1) delta, 0) + w_pre
    itl     = max(alpha + (B - 1) delta, 0) + beta + gamma (L + (K + 1) / 2)

At a fractional mean batch ns, nc is read at round(ns) (round half up, clamped to
[1, N]) as inferno does. Reproduces `solution-optimize.json` (see the tests). The max
batch is the profile's ceiling as is (no atTokens scaling; pick it with
`queue_models.sizing.best_max_batch`), and the default queue is 10 x the max batch, the
same rule as inferno's optimizer uses for the older model.

To extend: a newer inferno generation is a new module with its own `ChainQueueModel`
subclass and registry name; keep this one as the published v0.8 behaviour.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from queue_models.base import FloatArray, IntArray, ServiceParams
from queue_models.chain_model import BatchFormulas, BatchTerms, ChainQueueModel


def prefill_chunks(params: ServiceParams, batch: IntArray) -> IntArray:
    """nc(B): prefill chunks per request at each batch size B (>= 1)."""
    b = np.asarray(batch, dtype=np.float64)
    n_in, n_out, budget = params.in_tokens, params.out_tokens, float(params.token_budget)
    if b.size and (1.0 + n_out) * (budget - n_in) >= float(b.max()) * (n_in + n_out):
        return np.ones(b.shape, dtype=np.int64)  # one chunk fits every batch (common case)
    lin = n_out * (budget - b) - n_in * (b + 1.0)
    disc = np.sqrt(lin * lin + 4.0 * budget * n_in * n_out)
    with np.errstate(divide="ignore", invalid="ignore"):
        stable = np.where(
            lin >= 0, 2.0 * n_in * n_out / (lin + disc), (disc - lin) / (2.0 * budget)
        )
    root = np.nan_to_num(stable, nan=1.0, posinf=1.0)
    chunks = np.maximum(np.ceil(root), 1.0)

    def fits(m: FloatArray) -> FloatArray:
        return (m + n_out) * (budget - n_in / m) >= b * (n_in + n_out)

    chunks = np.where((chunks > 1) & fits(np.maximum(chunks - 1.0, 1.0)), chunks - 1.0, chunks)
    chunks = np.where(fits(chunks), chunks, chunks + 1.0)
    return chunks.astype(np.int64)


def _work(params: ServiceParams, chunks: FloatArray) -> tuple[FloatArray, FloatArray]:
    """(w_pre, delta) for each chunk count."""
    n_in, n_out = params.in_tokens, params.out_tokens
    beta, gamma = params.beta_ms, params.gamma_ms
    w_pre = (beta + gamma * (chunks + 1.0) / 2.0) * n_in
    w_dec = beta * n_out + gamma * n_out * (n_in + (n_out + 1.0) / 2.0)
    return w_pre, (w_pre + w_dec) / (chunks + n_out)


class BatchQueueModel(ChainQueueModel):
    """inferno queue-analysis v0.8 (chunked prefill)."""

    name: ClassVar[str] = "batch-queue"

    def batch_formulas(self, params: ServiceParams, batch: IntArray) -> BatchFormulas:
        """tau = (nc + K)(alpha + B delta); prefill = nc max(alpha - delta + delta B, 0)
        + w_pre; itl = max(alpha - delta + delta B, 0) + beta + gamma (L + (K + 1) / 2)."""
        chunks = prefill_chunks(params, batch).astype(np.float64)
        w_pre, delta = _work(params, chunks)
        alpha = params.alpha_ms
        tail = params.beta_ms + params.gamma_ms * (
            params.in_tokens + (params.out_tokens + 1.0) / 2.0
        )
        return BatchFormulas(
            service_time_ms=(chunks + params.out_tokens) * (alpha + batch * delta),
            prefill=BatchTerms(chunks * (alpha - delta), chunks * delta, w_pre),
            itl=BatchTerms(alpha - delta, delta, np.full_like(delta, tail)),
        )
