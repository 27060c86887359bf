"""The parameters the optimizer sees: a bounded, slowly moving copy of each estimate.

A filter's estimate can move far in one update: in warm-up it is refitted from a few
observations of a fleet that is still starting (a beta estimate once reached 6.6x the
truth), and after a detected change it warms up again. The optimizer sizes the fleet with
whatever profile it is given, so the loop never hands it the estimate itself. Each
filter keeps `served` parameters instead, which

- exist only once the filter tracks (warm-up estimates are never served);
- start at the configured profile (a pair without one: at the estimate when its first
  warm-up ends, there being nothing better);
- move toward the estimate by at most `max_step` per update, relative and per parameter
  (log space: a factor of at most 1 + max_step either way), only while the filter
  tracks, so they hold still while it warms up again after a detected change;
- aim at the estimate clamped to `bounds_factor` either way of the configured profile
  (of the filter's own bounds for a pair without one), so they stay within them.

`tuner.tuner.Tuner.update` steps each tracking pair it saw once per call (one loop tick);
`tuner.merge.merge_profiles` merges the served parameters into the spec.

To extend: another rule (e.g. a step that grows as the estimate's uncertainty shrinks)
is another function with `served_step`'s signature, called from `Tuner._serve`.
"""

from __future__ import annotations

import math

import numpy as np

from queue_models.base import FloatArray
from tuner.ekf import Bounds
from tuner.state import FilterState


def bounded_step(served: FloatArray, target: FloatArray, max_step: float,
                 box: Bounds) -> FloatArray:
    """`served` moved toward `target` clamped to `box`, each log parameter by at most
    log(1 + max_step)."""
    width = math.log1p(max_step)
    return served + np.clip(box.clamp(target) - served, -width, width)


def served_step(state: FilterState, start: FloatArray | None, box: Bounds,
                max_step: float) -> FilterState:
    """`state` with its served parameters one step on (see the module docstring); `start`
    is the configured profile's log parameters (None: the pair has no profile)."""
    if state.phase != "tracking":
        return state
    estimate = state.belief.mean
    if state.served is not None:
        served = np.array(state.served, dtype=np.float64)
    elif start is not None:
        served = np.asarray(start, dtype=np.float64)
    else:
        served = box.clamp(estimate)
    a, b, c = (float(v) for v in bounded_step(served, estimate, max_step, box))
    return state.model_copy(update={"served": (a, b, c)})
