"""Upper bounds on the numbers of fleetplan's documents: what a real fleet can need, with
a wide margin, and small enough that sizing stays quick and memory stays small.

The queue models hold arrays over every batch size and queue length a replica can have
(max batch + max queue states), and replica counts are printed in full, so a number
"without limit" can cost terabytes (a max batch of 10**12) or print a 300-digit replica
count (an arrival rate of 1e300). Documents are checked against these bounds when they
are read, so such input is a user error (file, JSON path, the bound; exit code 2) and
never reaches the optimizer. `fleetplan schema` shows each bound as the field's `maximum`.

| bound | value | applies to |
|---|---|---|
| `MAX_BATCH` | 16,384 | profile `max_batch`, server `max_batch`, current `max_batch`, `maxBatchSize` |
| `MAX_QUEUE` | 163,840 | server `max_queue`, `maxQueueSize` (10 x `MAX_BATCH`) |
| `MAX_RATE_RPS` | 1,000,000 | `arrival_rate_rps` (inferno: 60,000,000 requests per minute), `RPS` |
| `MAX_TOKENS` | 10,000,000 | `in_tokens`, `out_tokens`, `token_budget`, `at_tokens` (a 10M-token context) |
| `MAX_REPLICAS` | 1,000,000 | `min_replicas`, `max_replicas`, current `replicas` |
| `MAX_CARDS` | 10,000,000 | `capacity` per card type |
| `MAX_UNITS` | 1,024 | accelerator `multiplicity`, profile `units_per_replica` |

At `MAX_BATCH` one profile is sized in a few seconds on one core; the default queue
model's state space is then at most `MAX_BATCH + MAX_QUEUE` states.

To extend: add a constant here, use it as `le=` in the document's `Field`, and add a row
to the table above and to README's "Bounds" list.
"""

from __future__ import annotations

MAX_BATCH = 16_384
"""Largest max batch size (concurrent requests in one replica)."""
MAX_QUEUE = 10 * MAX_BATCH
"""Largest waiting-queue bound per replica."""
MAX_RATE_RPS = 1_000_000.0
"""Largest arrival rate of one server, requests/second."""
MAX_TOKENS = 10_000_000
"""Largest token count (mean prompt or output tokens, tokens per iteration)."""
MAX_REPLICAS = 1_000_000
"""Largest replica count of one server."""
MAX_CARDS = 10_000_000
"""Largest number of cards of one type."""
MAX_UNITS = 1_024
"""Largest number of cards in one unit, or of units in one replica."""
