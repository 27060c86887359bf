"""The simulated hardware of one replica: the `EngineConfig` its engine runs with.

From the variant's profile (alpha/beta/gamma; max batch and token budget as the plan set
them, else the profile's) and `SimConfig`:
the iteration-cost law (`SimConfig.laws` for the model and accelerator, else the
profile's `LinearCost`), multiplied by seeded lognormal noise when `noise_cv` > 0, the
KV capacity of the accelerator and the queue bound.

Noise is per replica: replica k (creation order) draws from
`numpy.random.default_rng([seed, k])`, one factor per iteration, in blocks. The engine
calls its law once per iteration whether iterations are fused or not, so a fused run and
a step-by-step run draw the same factors for the same iterations.

To extend: another per-replica property (e.g. a slower replica) is one more wrapper law
or one more `EngineConfig` field set in `replica_config`.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from queue_models.engine import EngineConfig
from queue_models.iteration_cost import NoisyCost, lognormal_factors
from simulator.config import SimConfig
from specs.documents import Profile


def replica_config(config: SimConfig, profile: Profile, max_batch: int,
                   serial: int, token_budget: int | None = None) -> EngineConfig:
    """The engine of the `serial`-th replica created, on `profile`'s model and accelerator
    (`token_budget` None: the profile's)."""
    base = EngineConfig.from_profile(
        profile, max_batch=max_batch, max_queue=config.max_queue, token_budget=token_budget,
        kv_capacity_tokens=config.kv_capacity_for(profile.accelerator),
        law=config.laws.get((profile.model, profile.accelerator)))
    if config.noise_cv <= 0:
        return base
    rng = np.random.default_rng([config.seed, serial])
    return replace(base, law=NoisyCost(base.cost, lognormal_factors(config.noise_cv, rng)))
