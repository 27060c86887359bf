"""`workload_aware`: the heuristic of Jain et al., "Intelligent Router for LLM Workloads"
(arXiv 2408.13510), without the reinforcement-learning agent.

The paper's observation: a batched replica runs prefill (compute-heavy) and decode
(memory-heavy) work in the same iterations, so a request's latency depends on what it is
mixed with. A long prompt sent to a replica busy decoding stalls every stream there for
its prefill; a long decode sent to a replica full of long contexts is slowed down by them
token after token. The router estimates, for each candidate, the slow-down the new
request would cause to the requests already there plus the slow-down it would suffer
from them, and sends it where the sum is smallest.

The estimate uses the iteration-time law of fleetplan's profiles (`queue_models.engine`:
an iteration costs alpha + beta per token it processes + gamma per token of context its
decode steps read) and what the router knows of candidate b from its own accounting:
n requests in flight there, Pb of their prompt tokens not yet prefilled, Db of their
decode tokens estimated still to come, Cb tokens of context they hold. A request with P
prompt tokens and an estimated D decode tokens (`RouteRequest.decode_estimate`, from
`serving.routing.decode_predictor`) scores

    overlap  = min(D x n, Db)                      decode steps it shares with the others
    suffered = beta x Pb                           queued prompt work in its iterations
             + overlap x (beta + gamma x Cb / n)   the others' decode steps in them
    caused   = beta x P x n                        its prefill, stalling each of the n
             + overlap x (beta + gamma x (P + D/2)) its decode steps in their iterations
    score    = suffered + caused                   (ms of latency added across requests)

with beta = `PolicyOptions.token_ms` and gamma = `PolicyOptions.context_ms` (defaults:
llama-3.1-8B on H100; the ratio matters more than the scale). Terms that are the same on
every candidate (the request's own work, alpha per iteration) do not change the choice
and are left out. Ties go to the fewest outstanding requests, then rotate.

To extend: a per-variant speed (heterogeneous accelerators) would scale the score by the
candidate's profile; a queueing term would use the replicas' max batch.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from serving.routing.base import POLICIES, Backend, PolicyOptions, RouteRequest


def mixing_cost_ms(request: RouteRequest, backend: Backend, token_ms: float,
                   context_ms: float) -> float:
    """The latency (ms, summed over requests) that sending `request` to `backend` adds
    through mixing with the work already there (see the module docstring)."""
    n = backend.outstanding
    if n <= 0:
        return 0.0
    overlap = min(request.decode_estimate * n, backend.decode_tokens)
    suffered = (token_ms * backend.prefill_tokens
                + overlap * (token_ms + context_ms * backend.context_tokens / n))
    own_context = request.prompt_tokens + request.decode_estimate / 2
    caused = token_ms * request.prompt_tokens * n + overlap * (token_ms + context_ms * own_context)
    return suffered + caused


class WorkloadAware:
    """The candidate where the estimated mixing slow-down is smallest."""

    def __init__(self, options: PolicyOptions, rng: random.Random) -> None:
        self._token_ms = options.token_ms
        self._context_ms = options.context_ms
        self._turn = 0

    def choose(self, request: RouteRequest, candidates: Sequence[Backend], now: float,
               ) -> Backend:
        """Minimise suffered + caused slow-down."""
        n = len(candidates)
        self._turn += 1
        best, best_key = candidates[0], (float("inf"), 0)
        for i in range(n):
            backend = candidates[(self._turn + i) % n]
            key = (mixing_cost_ms(request, backend, self._token_ms, self._context_ms),
                   backend.outstanding)
            if key < best_key:
                best, best_key = backend, key
        return best


POLICIES.register("workload_aware", WorkloadAware)
