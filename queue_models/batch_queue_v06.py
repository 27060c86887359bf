"""`batch-queue-v06`: inferno's older model (queue-analysis v0.3 formulas, with K/2).

This is the model behind inferno's published sample solutions
(`sample-data-*/solution-data.json`, `queue-analysis/solution-solve.json` and
`solution-target.json`). With L input and K output tokens, at batch size n:

    T(n)       = alpha + n (beta (L + K) / (K + 1) + gamma (L + K / 2))
    prefill(n) = T(n) + (beta + gamma) L          (0 when L = 0)
    decode(n)  = T(n) + beta + gamma (L + K / 2)  (the per-token ITL at batch n)
    tau(n)     = prefill(n) + K decode(n)

Versions v0.4-v0.6 replaced K/2 by (K + 1)/2; the published answers used K/2, so this
module keeps K/2 (the name says which inferno optimizer it stands in for, not the
queue-analysis release). Batch sizes scale with the profile's `atTokens`:
N = max(floor(maxBatchSize x atTokens / K), 1), and the queue defaults to 10 N.

To extend: do not change these formulas (they pin inferno's published numbers); add a
new module and registry entry for a variant.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from queue_models.base import IntArray, ServiceParams
from queue_models.chain_model import (
    BatchFormulas,
    BatchTerms,
    ChainQueueModel,
    tokens_scaled_batch,
)


def _per_request_slope(params: ServiceParams) -> float:
    """d T / d n: beta (L + K) / (K + 1) + gamma (L + K / 2)."""
    n_in, n_out = params.in_tokens, params.out_tokens
    return params.beta_ms * (n_in + n_out) / (n_out + 1.0) + params.gamma_ms * (n_in + n_out / 2.0)


def _decode_extra(params: ServiceParams) -> float:
    return params.beta_ms + params.gamma_ms * (params.in_tokens + params.out_tokens / 2.0)


def _prefill_extra(params: ServiceParams) -> float:
    return (params.beta_ms + params.gamma_ms) * params.in_tokens


class BatchQueueV06Model(ChainQueueModel):
    """inferno's older batch queue (v0.3 formulas with K/2)."""

    name: ClassVar[str] = "batch-queue-v06"

    def batch_formulas(self, params: ServiceParams, batch: IntArray) -> BatchFormulas:
        """prefill(n) = T(n) + (beta + gamma) L (0 without input), decode(n) = T(n) + beta
        + gamma (L + K / 2), tau(n) = prefill(n) + K decode(n)."""
        size = np.shape(batch)
        slope = np.full(size, _per_request_slope(params))
        zero = np.zeros(size)
        itl = BatchTerms(
            np.full(size, params.alpha_ms), slope, np.full(size, _decode_extra(params))
        )
        if params.in_tokens == 0:
            prefill = BatchTerms(zero, zero, zero)
        else:
            prefill = BatchTerms(
                np.full(size, params.alpha_ms + _prefill_extra(params)), slope, zero
            )
        service = prefill.at_batches(batch) + params.out_tokens * itl.at_batches(batch)
        return BatchFormulas(service, prefill, itl)

    def effective_max_batch(self, ceiling: int, at_tokens: int | None, out_tokens: float) -> int:
        """max(floor(ceiling x atTokens / outTokens), 1); the ceiling without atTokens."""
        return tokens_scaled_batch(ceiling, at_tokens, out_tokens)
