"""Tail validation: does capacity-table's sizing hold on the server's whole trace?

For every server and every accelerator the sizing finds feasible, the chosen replica
configuration (max batch, token budget) is replayed on the scenario's hardware (its
measured timing law, iteration noise with another seed than the calibration's) with the
server's complete arrivals of the run, every request with its own sizes and time, scaled
to a per-replica rate, in pools of one replica and of the pool the server's peak needs.
At 0.8, 1.0 and 1.2 times the per-replica rate the sizing allows, the table gives the
predicted p99 TTFT and p99 per-request ITL (from the calibration sample, the pool of
one) and the replay the measured ones, with the measured per-request attainment of the
class's targets. At 1.0 the attainment should reach the class's percentile (the sizing
aims higher by its headroom); above it, it should not.

This is a hold-out check: the calibration replays a sample (by default four stretches of
1,000 requests), this replays all of them, so a sample that missed the trace's worst
bursts shows up here as attainment below the goal.

To extend: another load point is one more entry of `LOADS`; another figure one more
field of `TailRow`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from controller.evaluation.calibration import Sizer
from controller.evaluation.sizing import RequestIndex
from optimizer.candidates import to_targets
from queue_models.capacity_model import CapacityTableModel, law_of
from queue_models.capacity_table import Criteria, Probe, attainment, quantile_ms
from queue_models.replay import ReplaySetup, replay
from queue_models.workload_sample import WorkloadSample
from specs.documents import FleetSpec, Server

LOADS = (0.8, 1.0, 1.2)
VALIDATION_SEED = 7919


@dataclass(frozen=True)
class TailRow:
    """One (server, accelerator, pool, load) point."""

    server: str
    accelerator: str
    max_batch: int
    token_budget: int
    replicas: int
    load: float
    rate_per_replica_rps: float
    goal: float
    predicted_ttft_p99_ms: float
    measured_ttft_p99_ms: float
    predicted_itl_p99_ms: float
    measured_itl_p99_ms: float
    measured_attainment: float

    @property
    def holds(self) -> bool:
        """At or below the sized rate: the class's percentile is reached."""
        return self.measured_attainment >= self.goal


@dataclass(frozen=True)
class TailValidation:
    """Every row, and the class percentile each server is held to."""

    rows: tuple[TailRow, ...]

    def to_json(self) -> dict[str, Any]:
        """Rows as plain values (infinite latencies as null)."""
        return {"rows": [{k: (v if not isinstance(v, float) or math.isfinite(v) else None)
                          for k, v in asdict(r).items()} for r in self.rows]}

    def to_markdown(self) -> str:
        """The table."""
        lines = ["| server | accelerator | batch / budget | pool | load | req/s per replica "
                 "| TTFT p99 ms predicted / measured | ITL p99 ms predicted / measured "
                 "| attainment (goal) |", "|---|---|---|---:|---:|---:|---:|---:|---:|"]
        for r in self.rows:
            lines.append(
                f"| {r.server} | {r.accelerator} | {r.max_batch} / {r.token_budget} | "
                f"{r.replicas} | {r.load:.1f}x | {r.rate_per_replica_rps:.3f} | "
                f"{_ms(r.predicted_ttft_p99_ms)} / {_ms(r.measured_ttft_p99_ms)} | "
                f"{_ms(r.predicted_itl_p99_ms, 1)} / {_ms(r.measured_itl_p99_ms, 1)} | "
                f"{100 * r.measured_attainment:.2f}% ({100 * r.goal:.0f}%) |")
        return "\n".join(lines) + "\n"

    def findings(self) -> list[str]:
        """One line per (server, accelerator): whether the sized rate held, plainly."""
        out = []
        keys = sorted({(r.server, r.accelerator) for r in self.rows})
        for server, acc in keys:
            mine = [r for r in self.rows if (r.server, r.accelerator) == (server, acc)]
            at = [r for r in mine if r.load == 1.0]
            held = [r for r in at if r.holds]
            worst = min(r.measured_attainment for r in at) if at else float("nan")
            out.append(f"{server} on {acc}: at the sized rate {len(held)} of {len(at)} pools "
                       f"reach the class's percentile (lowest attainment {100 * worst:.2f}%)")
        return out


def _ms(value: float, digits: int = 0) -> str:
    return "-" if not math.isfinite(value) else f"{value:,.{digits}f}"


def validate_tails(spec: FleetSpec, sizer: Sizer, index: RequestIndex,
                   loads: tuple[float, ...] = LOADS) -> TailValidation:
    """The table for every server of `spec` (capacity-table sizing)."""
    generator = sizer.generator(spec.optimizer.queue_model, tuple(spec.profiles))
    rows: list[TailRow] = []
    for server in sorted(spec.servers, key=lambda s: s.name):
        requests = index.by_server.get(server.name, [])
        if len(requests) < 2:
            continue
        full = WorkloadSample.from_arrivals(
            f"{server.name}/all", [r.time_s for r in requests],
            [r.prompt_tokens for r in requests], [r.output_tokens for r in requests])
        targets = to_targets(spec.targets_for(server))
        for profile in sorted(spec.profiles_for(server.model), key=lambda p: p.accelerator):
            sizing = generator.size(profile, server, targets, max(server.load.out_tokens, 1))
            if not sizing.feasible or sizing.pool is None or sizing.params is None:
                continue
            pools = sorted({1, sizing.pool.replicas_for(server.load.arrival_rate_rps)})
            for n in pools:
                rows.extend(_rows(sizer, server, profile.accelerator, sizing, n, full,
                                  targets, loads))
    return TailValidation(tuple(rows))


def _rows(sizer: Sizer, server: Server, accelerator: str, sizing: Any, replicas: int,
          full: WorkloadSample, targets: Any, loads: tuple[float, ...]) -> list[TailRow]:
    params, pool = sizing.params, sizing.pool
    criteria = Criteria.of(targets, headroom=0.0)
    queue = sizer.model(CapacityTableModel.name).prepare(params)
    setup = ReplaySetup(law_of(params), params.max_batch, params.token_budget, replicas,
                        sizer.options.noise_cv, VALIDATION_SEED)
    out = []
    for load in loads:
        rate = load * pool.rate_at(replicas)
        result = replay(setup, full, rate)
        probe = Probe(rate, result.ttft_s, result.itl_s, result.overloaded)
        out.append(TailRow(
            server.name, accelerator, params.max_batch, params.token_budget, replicas, load,
            round(rate, 6), criteria.goal,
            queue.ttft_ms(rate, 0.99), quantile_ms(np.asarray(result.ttft_s), 0.99),
            queue.itl_ms(rate, 0.99), quantile_ms(np.asarray(result.itl_s), 0.99),
            attainment(probe, criteria)))
    return out
