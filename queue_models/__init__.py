"""queue_models: performance models of one batched inference replica.

A queue model answers "how fast is a replica of model M on accelerator A at max batch
B?": throughput, TTFT and ITL (means and percentiles) at an arrival rate, and, through
`queue_models.sizing`, the largest rate meeting a service class's targets and the best
max batch. Models are registered by name (`get_queue_model`); the default,
`batch-queue`, is inferno queue-analysis v0.8 (chunked prefill), and `batch-queue-v06`
is the older model behind inferno's published sample solutions.

Layout: `base` (value types, Protocols), `chain` (the shared birth-death chain
solver), `chain_means` (many chains' means at once, with error bounds), `chain_model`
(template for chain-based models), one module per model, `registry`, `sizing`,
`lockstep` (many sizings side by side), `problems` (inferno-shaped answers). This package imports no
other fleetplan package.

To extend: add a model module and one registry entry (see `queue_models.registry`).
"""

from queue_models.base import Performance, PreparedQueue, QueueModel, ServiceParams, Targets
from queue_models.problems import (
    Problem,
    TargetsInfeasible,
    optimize_problem,
    problem_from_dict,
    solve_problem,
    target_problem,
)
from queue_models.registry import (
    DEFAULT_QUEUE_MODEL,
    UnknownQueueModel,
    get_queue_model,
    queue_model_names,
)
from queue_models.sizing import (
    BatchChoice,
    RateSizing,
    best_max_batch,
    max_rate_for_targets,
    size_prepared,
)

__all__ = [
    "DEFAULT_QUEUE_MODEL",
    "BatchChoice",
    "Performance",
    "PreparedQueue",
    "Problem",
    "QueueModel",
    "RateSizing",
    "ServiceParams",
    "Targets",
    "TargetsInfeasible",
    "UnknownQueueModel",
    "best_max_batch",
    "get_queue_model",
    "max_rate_for_targets",
    "optimize_problem",
    "problem_from_dict",
    "queue_model_names",
    "size_prepared",
    "solve_problem",
    "target_problem",
]
