"""fleetplan's global optimizer: which accelerator, how many replicas, which max batch.

`optimize(spec) -> Plan` (in `optimizer.api`) builds candidates per server and
accelerator (`optimizer.candidates`), hands them to a solver from the registry
(`optimizer.registry`: `milp`, `greedy`, `unlimited`) and turns the answer into a plan
(`optimizer.plan_builder`). The optimizer imports only `queue_models` and `specs`;
PuLP is imported only by `optimizer.milp`.

`optimize` and `build_problem` are re-exported lazily, so importing one solver module
does not load the queue models.

To extend: a new solver is one module plus one line in `optimizer.registry`.
"""

from __future__ import annotations

from typing import Any

__all__ = ["build_problem", "optimize"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from optimizer import api

        return getattr(api, name)
    raise AttributeError(f"module 'optimizer' has no attribute {name!r}")
