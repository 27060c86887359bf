"""Sizing one replica configuration from capacity tables: which max batch and token budget
to run, and how much load a replica carries in a pool of n.

`CalibrationOptions` say how hard to look: the max batches tried (fractions of the
profile's ceiling), the token budgets tried besides the profile's (smaller ones help
where long prefills stall the decodes of others and no max batch meets an ITL target),
the pool sizes measured, the requests replayed per probe, iteration-time noise, the seed,
the headroom on the attainment goal and the rate tolerance.

`search_config` measures, for each (max batch, token budget), the largest per-replica
rate one replica takes within the criteria, and keeps the best (ties: the larger
budget, then the smaller batch); `pool_curve` then measures that configuration in pools
of 2, 4, 8... 32 replicas behind a least-loaded router, where bursts are shared and each
replica carries more (bursty workloads gain a lot: a 2xH100 replica of llama2-70b
carries 0.17 req/s of the Azure code trace alone and 0.4 in a pool of 8), until
doubling the pool gains less than 3%. A `CapacitySizing` holds the answer; `replicas_for(demand)` is the
smallest pool n with n x rate(n) >= demand, rate(n) interpolated in log n between the
measured pool sizes (flat beyond the largest).

To extend: another knob to search (e.g. a KV-cache size) is one more field of
`CalibrationOptions` and one more loop in `_configs`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

DEFAULT_POOL_SIZES = (1, 2, 4, 8, 16, 32)
POOL_GAIN = 0.03
"""Pools stop growing once doubling the pool gains less than this per replica."""


@dataclass(frozen=True)
class CalibrationOptions:
    """How capacity tables are measured (see the module docstring)."""

    requests: int = 4000
    """Requests replayed per probe (a longer workload sample is cut to this many)."""
    pool_sizes: tuple[int, ...] = DEFAULT_POOL_SIZES
    batch_fractions: tuple[float, ...] = (1.0, 0.5, 0.25)
    token_budgets: tuple[int, ...] = (512,)
    """Budgets tried besides the profile's (only those below it)."""
    noise_cv: float = 0.0
    """Iteration-time noise of the replays (lognormal coefficient of variation)."""
    seed: int = 1
    headroom: float = 0.5
    """Share of the misses a percentile allows that the sizing keeps in reserve."""
    tolerance: float = 0.03
    """Relative width at which a rate search stops."""
    size_cv: float = 1.0
    """Size spread of the synthetic sample used for servers without a recorded one."""

    def __post_init__(self) -> None:
        if self.requests < 50:
            raise ValueError(f"requests must be >= 50, got {self.requests}")
        if not self.pool_sizes or self.pool_sizes[0] != 1 or \
                list(self.pool_sizes) != sorted(set(self.pool_sizes)):
            raise ValueError("pool_sizes must be increasing and start at 1")
        if not self.batch_fractions or any(not 0 < f <= 1 for f in self.batch_fractions):
            raise ValueError("batch_fractions must be in (0, 1]")
        if not 0 <= self.headroom < 1 or not 0 < self.tolerance < 1:
            raise ValueError("headroom must be in [0, 1) and tolerance in (0, 1)")


@dataclass(frozen=True)
class Config:
    """One replica configuration."""

    max_batch: int
    token_budget: int


@dataclass(frozen=True)
class CapacitySizing:
    """The chosen configuration and the per-replica rate it carries per pool size."""

    config: Config | None
    pool_rates: tuple[tuple[int, float], ...] = ()
    """(pool size, largest per-replica rate within the criteria), pool sizes ascending."""
    reason: str = ""

    @property
    def feasible(self) -> bool:
        """True when one replica meets the targets at some rate."""
        return self.config is not None and bool(self.pool_rates) and self.pool_rates[0][1] > 0

    def rate_at(self, replicas: int) -> float:
        """Per-replica rate in a pool of `replicas` (log-linear between measured sizes)."""
        points = self.pool_rates
        if not points:
            return 0.0
        if replicas <= points[0][0]:
            return points[0][1]
        for (n0, r0), (n1, r1) in zip(points, points[1:], strict=False):
            if replicas <= n1:
                f = math.log(replicas / n0) / math.log(n1 / n0)
                return r0 + f * (r1 - r0)
        return points[-1][1]

    def replicas_for(self, demand_rps: float) -> int:
        """Smallest pool carrying `demand_rps` (0 for no demand)."""
        if demand_rps <= 0:
            return 0
        if not self.feasible:
            raise ValueError("no feasible configuration")
        largest = self.pool_rates[-1]
        n = 1
        while n < largest[0]:
            if n * self.rate_at(n) >= demand_rps * (1 - 1e-9):
                return n
            n += 1
        return max(largest[0], math.ceil(demand_rps / largest[1] - 1e-9))


class RateSearch(Protocol):
    """(configuration, pool size, guess) -> largest per-replica rate within the criteria;
    `coarse` searches to a wider tolerance (screening), `growth` is how fast the rate
    grows from a passing guess."""

    def __call__(self, config: Config, replicas: int, guess: float, *, coarse: bool = False,
                 growth: float = 2.0) -> float: ...


def configs(ceiling: int, profile_budget: int, options: CalibrationOptions,
            fixed_batch: bool = False) -> list[Config]:
    """Configurations to try: the profile's first, then smaller batches (unless the
    batch is fixed) and budgets. Each is one vLLM can start: a token budget below the
    max batch is refused there (max_num_batched_tokens >= max_num_seqs), so the batch
    is capped at the budget, or, for a fixed batch, the budget raised to it."""
    fractions = (1.0,) if fixed_batch else options.batch_fractions
    batches = sorted({max(1, round(ceiling * f)) for f in fractions}, reverse=True)
    budgets = [profile_budget] + sorted({b for b in options.token_budgets
                                         if b < profile_budget}, reverse=True)
    found = [Config(b, max(t, b)) if fixed_batch else Config(min(b, t), t)
             for t in budgets for b in batches]
    return list(dict.fromkeys(found))


def search_config(candidates: list[Config], search: RateSearch, guess: float,
                  ) -> tuple[Config | None, float]:
    """The configuration carrying the most per replica alone (screened coarsely, the
    winner refined), and its rate."""
    best: tuple[float, int, int, Config] | None = None
    for config in candidates:
        rate = search(config, 1, guess, coarse=True)
        if rate > 0:
            guess = rate
            rank = (rate, config.token_budget, -config.max_batch, config)
            if best is None or rank[:3] > best[:3]:
                best = rank
    if best is None:
        return None, 0.0
    return best[3], search(best[3], 1, best[0], growth=1.25)


def pool_curve(config: Config, single_rate: float, search: RateSearch,
               pool_sizes: tuple[int, ...]) -> tuple[tuple[int, float], ...]:
    """Per-replica rate per pool size, made non-decreasing (pooling never hurts); the
    curve stops (flat beyond) once a larger pool gains less than `POOL_GAIN`."""
    points = [(1, single_rate)]
    for n in pool_sizes[1:]:
        rate = max(search(config, n, points[-1][1], growth=1.25), points[-1][1])
        points.append((n, rate))
        if rate < points[-2][1] * (1.0 + POOL_GAIN):
            break
    return tuple(points)
