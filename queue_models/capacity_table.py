"""Capacity tables: measured latencies of one replica configuration against the rate, and
the largest rate that still meets a service class's per-request targets.

A `CapacityTable` belongs to one `TableKey` (iteration-cost law, max batch, token budget,
pool size, workload sample, noise, seed): it maps per-replica arrival rates to `Probe`s,
each the per-request TTFT and mean ITL of one replay (`queue_models.replay`). Probes are
added as searches need them and can be stored (`queue_models.capacity_cache`), so a
table built once makes later sizing a lookup.

`Criteria` say what "meets the targets" means for a probe, per request, as an
evaluation counts it:

- targets on a percentile (e.g. p99 TTFT 2 s, p99 ITL 80 ms): a request meets them when
  its TTFT and its own mean ITL are both within them; the probe passes when the share of
  requests that do (the attainment) is at least `goal`, the strictest percentile asked
  for with `headroom` of the remaining misses taken away (p99 with headroom 0.5: 99.5%),
  because a fleet also loses requests to ramps and start-ups the table does not see;
- targets on the mean: the mean TTFT (or mean per-request ITL) over requests is within it.

The first `warmup_fraction` of requests is left out (the replay starts empty).

`largest_rate(table, criteria, probe, guess)` brackets the answer geometrically from
`guess` and the probes already in the table, then bisects until the bracket is within
`tolerance` (relative); the answer is the highest rate seen to pass below every rate
seen to fail (conservative). When the first probe fails, the next is at `guess / 1024`:
targets missed there are infeasible (0), otherwise the bracket is split geometrically
while it spans more than a factor 4, then in halves.

To extend: a new kind of target is one more `Criteria` field checked in `passes`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from queue_models.base import Targets

DEFAULT_HEADROOM = 0.5
DEFAULT_WARMUP_FRACTION = 0.05
MAX_PROBES = 24
FLOOR_RATIO = 1024.0
"""Targets missed at guess / FLOOR_RATIO are infeasible (one probe decides it)."""


@dataclass(frozen=True)
class TableKey:
    """What a table measures (every field goes into its cache file name)."""

    law: str
    """Digest of the iteration-cost law."""
    max_batch: int
    token_budget: int
    replicas: int
    sample: str
    """Digest of the workload sample."""
    noise_cv: float
    seed: int

    def file_stem(self) -> str:
        """A file name for the table (readable, and unique per key)."""
        return (f"b{self.max_batch}-t{self.token_budget}-n{self.replicas}-"
                f"{self.law[:12]}-{self.sample[:12]}-cv{self.noise_cv:g}-s{self.seed}")


@dataclass(frozen=True)
class Probe:
    """One replay's per-request latencies (s, arrival order; inf: never served)."""

    rate_rps: float
    ttft_s: npt.NDArray[np.float32]
    itl_s: npt.NDArray[np.float32]
    overloaded: bool = False


@dataclass
class CapacityTable:
    """Probes of one `TableKey`, by per-replica rate."""

    key: TableKey
    probes: dict[float, Probe] = field(default_factory=dict)

    def rates(self) -> list[float]:
        """Probed rates, ascending."""
        return sorted(self.probes)

    def add(self, probe: Probe) -> None:
        """Record a probe (replacing one at the same rate)."""
        self.probes[probe.rate_rps] = probe


@dataclass(frozen=True)
class Criteria:
    """What a probe must show to pass (see the module docstring); seconds."""

    ttft_s: float | None = None
    itl_s: float | None = None
    goal: float = 0.0
    mean_ttft_s: float | None = None
    mean_itl_s: float | None = None
    warmup_fraction: float = DEFAULT_WARMUP_FRACTION

    @classmethod
    def of(cls, targets: Targets, headroom: float = DEFAULT_HEADROOM,
           warmup_fraction: float = DEFAULT_WARMUP_FRACTION) -> Criteria:
        """The criteria of a server's targets (0 targets are ignored)."""
        tq, iq = targets.ttft_quantile, targets.itl_quantile
        ttft = targets.ttft_ms / 1000.0 if targets.ttft_ms > 0 else None
        itl = targets.itl_ms / 1000.0 if targets.itl_ms > 0 else None
        levels = [q for q, t in ((tq, ttft), (iq, itl)) if q is not None and t is not None]
        goal = 1.0 - (1.0 - max(levels)) * (1.0 - headroom) if levels else 0.0
        return cls(ttft_s=ttft if tq is not None else None,
                   itl_s=itl if iq is not None else None, goal=goal,
                   mean_ttft_s=ttft if tq is None else None,
                   mean_itl_s=itl if iq is None else None, warmup_fraction=warmup_fraction)

    def scaled(self, factor: float) -> Criteria:
        """The criteria with every latency threshold multiplied by `factor`."""
        def times(v: float | None) -> float | None:
            return None if v is None else v * factor
        return Criteria(times(self.ttft_s), times(self.itl_s), self.goal,
                        times(self.mean_ttft_s), times(self.mean_itl_s), self.warmup_fraction)

    @property
    def empty(self) -> bool:
        """True when nothing is asked (any rate below saturation passes)."""
        return all(v is None for v in (self.ttft_s, self.itl_s, self.mean_ttft_s,
                                       self.mean_itl_s))


def _measured(probe: Probe, warmup_fraction: float) -> tuple[npt.NDArray, npt.NDArray]:
    skip = int(len(probe.ttft_s) * warmup_fraction)
    return probe.ttft_s[skip:], probe.itl_s[skip:]


def attainment(probe: Probe, criteria: Criteria) -> float:
    """Share of (measured) requests within the percentile targets (1 without any)."""
    ttft, itl = _measured(probe, criteria.warmup_fraction)
    ok = np.isfinite(ttft)
    if criteria.ttft_s is not None:
        ok &= ttft <= criteria.ttft_s
    if criteria.itl_s is not None:
        ok &= np.isnan(itl) | (itl <= criteria.itl_s)
    return float(ok.mean()) if ok.size else 0.0


def passes(probe: Probe, criteria: Criteria) -> bool:
    """True when the probe meets every criterion."""
    if probe.overloaded:
        return False
    ttft, itl = _measured(probe, criteria.warmup_fraction)
    if criteria.mean_ttft_s is not None and not float(np.mean(ttft)) <= criteria.mean_ttft_s:
        return False
    finite = itl[np.isfinite(itl)]
    if criteria.mean_itl_s is not None and finite.size and \
            float(finite.mean()) > criteria.mean_itl_s:
        return False
    if criteria.ttft_s is None and criteria.itl_s is None:
        return bool(np.all(np.isfinite(ttft)))
    return attainment(probe, criteria) >= criteria.goal


def quantile_ms(values: npt.NDArray, q: float | None) -> float:
    """The q-quantile (None: mean) of finite values, ms (inf when none is finite)."""
    finite = values[np.isfinite(values)]
    if not finite.size:
        return math.inf
    seconds = float(np.mean(finite)) if q is None else float(np.quantile(finite, q))
    return seconds * 1000.0


ProbeFn = Callable[[float], Probe]


def _bracket(table: CapacityTable, criteria: Criteria) -> tuple[float, float | None]:
    """(highest passing rate below every failing one, lowest failing rate) seen so far."""
    verdicts = [(r, passes(table.probes[r], criteria)) for r in table.rates()]
    failing = [r for r, ok in verdicts if not ok]
    hi = failing[0] if failing else None
    passing = [r for r, ok in verdicts if ok and (hi is None or r < hi)]
    return (passing[-1] if passing else 0.0), hi


def largest_rate(table: CapacityTable, criteria: Criteria, probe: ProbeFn, guess: float,
                 tolerance: float = 0.03, max_probes: int = MAX_PROBES,
                 growth: float = 2.0, ceiling: float = math.inf) -> float:
    """The largest per-replica rate meeting `criteria` (module docstring); 0: none.
    Without a failing probe yet, the rate grows by `growth` from the best passing one
    (a good guess deserves a small growth: fewer halvings afterwards), up to `ceiling`,
    which is the answer when it passes."""
    if guess <= 0:
        raise ValueError(f"guess must be > 0, got {guess}")

    def run(rate: float) -> None:
        table.add(probe(rate))

    floor = guess / FLOOR_RATIO
    for _ in range(max_probes):
        lo, hi = _bracket(table, criteria)
        if hi is None:
            if lo >= ceiling:
                return lo
            run(min(max(guess, growth * lo), ceiling))
        elif lo <= 0.0:
            if hi <= floor * (1.0 + 1e-9):
                return 0.0
            run(floor if hi <= guess else min(guess, hi / 2.0))
        elif (hi - lo) / hi <= tolerance:
            return lo
        elif hi / lo > 4.0:
            run(math.sqrt(lo * hi))
        else:
            run(0.5 * (lo + hi))
    return _bracket(table, criteria)[0]
