"""The built-in example of `fleetplan up`: a small heterogeneous fleet and a load schedule.

One model (llama_3_1_8b) for two service classes (`premium`: TTFT 2 s and ITL 100 ms for
99% of requests; `standard`: 4 s and 300 ms for 99%) on H100, A100 and L4 units, sized
with `capacity-table` (replays of each class's own arrivals, `workload_sample`) by the
milp (one accelerator type per class: measured pools are not split); a class the capacity cannot serve whole gets what is left, in
priority order (saturation policy `PriorityExhaustive`), rather than nothing. The profiles are the
heterogeneous example's (specs/examples/heterogeneous-fleet.json) slowed `SLOWDOWN` times,
so a replica saturates at a few requests per second and the whole closed loop (workers,
router, load) fits on a laptop's CPU; prices are the example's.

The schedule (`schedule(duration_s)`): ramp, plateau, burst, fall, as fractions of the
duration, the same shape for any duration; the class mix is 1:1.

To extend: another built-in example is one more function returning a document and a
schedule, chosen by an option of `fleetplan up`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from queue_models.workload_sample import WorkloadSample
from workloads.arrivals import RateSchedule

SLOWDOWN = 12.0
MODEL = "llama_3_1_8b"
IN_TOKENS = 256
OUT_TOKENS = 32
CLASS_MIX = {"premium": 1.0, "standard": 1.0}

_PROFILES = (  # the heterogeneous example's llama_3_1_8b profiles (alpha, beta, gamma ms)
    ("H100", 6.49, 0.0219, 4.96e-05, 256),
    ("A100", 10.6576, 0.06942, 8.145e-05, 256),
    ("L4", 72.4717, 0.179, 0.0005539, 32),
)
_P99 = {"ttft_statistic": "p99", "itl_statistic": "p99"}
_UNITS = (("H100", 8.22, 80), ("A100", 4.6, 80), ("L4", 0.81, 24))

# (fraction of the duration, total rate req/s): ramp, plateau, burst, fall; the low
# load after the fall lasts 30% of the run, longer than the scale-down window (6 periods,
# 20% of the run) plus a collector window, so the scale-down shows before the end
_SHAPE = ((0.0, 1.0), (0.3, 6.0), (0.45, 6.0), (0.5, 10.0), (0.62, 10.0), (0.7, 2.0),
          (1.0, 2.0))


def fleet_document() -> dict[str, Any]:
    """The example fleet as a native document."""
    return {
        "description": f"fleetplan up's built-in example: {MODEL} profiles from "
        f"specs/examples/heterogeneous-fleet.json slowed {SLOWDOWN:g}x for local emulation.",
        "accelerators": [{"name": n, "card_type": n, "multiplicity": 1, "cost_per_hour": c,
                          "memory_gb": m} for n, c, m in _UNITS],
        "capacity": {"H100": 6, "A100": 6, "L4": 12},
        "profiles": [{"model": MODEL, "accelerator": n, "alpha_ms": a * SLOWDOWN,
                      "beta_ms": b * SLOWDOWN, "gamma_ms": g * SLOWDOWN, "max_batch": mb}
                     for n, a, b, g, mb in _PROFILES],
        "service_classes": [
            {"name": "premium", "priority": 1,
             "targets": [{"model": MODEL, "ttft_ms": 2000, "itl_ms": 100, **_P99}]},
            {"name": "standard", "priority": 2,
             "targets": [{"model": MODEL, "ttft_ms": 4000, "itl_ms": 300, **_P99}]},
        ],
        "servers": [
            {"name": name, "model": MODEL, "service_class": name, "min_replicas": 1,
             "load": {"arrival_rate_rps": 0.5, "in_tokens": IN_TOKENS,
                      "out_tokens": OUT_TOKENS}}
            for name in sorted(CLASS_MIX)],
        "optimizer": {"solver": "milp", "heterogeneous": True,
                      "queue_model": "capacity-table",
                      "saturation_policy": "PriorityExhaustive"},
    }


def workload_sample(requests: int = 2000, seed: int = 0) -> WorkloadSample:
    """What each class receives, as the load generator sends it: Poisson arrivals (one
    class of a Poisson stream split at random is Poisson) of fixed-size requests."""
    rng = np.random.default_rng(seed)
    offsets = np.cumsum(rng.exponential(1.0, requests))
    return WorkloadSample.of("up-example", offsets - offsets[0], [IN_TOKENS] * requests,
                             [OUT_TOKENS] * requests)


def schedule(duration_s: float) -> RateSchedule:
    """Ramp, plateau, burst, fall over `duration_s` (total rate of both classes)."""
    return RateSchedule(tuple((round(f * duration_s, 3), r) for f, r in _SHAPE))
