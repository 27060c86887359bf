"""Router policies: small pure units registered by name in `POLICIES`.

- `round_robin`, `least_outstanding`, `power_of_two` (`simple.py`);
- `least_loaded`: fewest outstanding requests per max-batch slot across all variants (the
  default for backends that come from a plan);
- `session_affinity`: consistent hashing on a session key, bounded-load spill-over;
- `weighted`: the plan's weights across variants, least-outstanding within a variant
  (follows the planned shares even when the planned rates are off);
- `workload_aware`: the prefill/decode mixing heuristic of Jain et al. (arXiv 2408.13510),
  fed by `decode_predictor.DecodePredictor`.

`POLICY_NAMES` is the list the CLI and the backends document accept (a test checks it
agrees with the registry). To extend: see `base.py`, then import the new module here and
add its name to `POLICY_NAMES`.
"""

from serving.routing import least_loaded, session_affinity, simple, weighted, workload_aware
from serving.routing.base import (
    POLICIES,
    Backend,
    Policy,
    PolicyFactory,
    PolicyOptions,
    RouteRequest,
)
from serving.routing.decode_predictor import DecodePredictor

POLICY_NAMES = ("least_loaded", "least_outstanding", "power_of_two", "round_robin",
                "session_affinity", "weighted", "workload_aware")
"""Policy names the router accepts, sorted."""

__all__ = [
    "POLICIES", "POLICY_NAMES", "Backend", "DecodePredictor", "Policy", "PolicyFactory",
    "PolicyOptions", "RouteRequest", "least_loaded", "session_affinity", "simple", "weighted",
    "workload_aware",
]
