"""The queue-model validation table: how close are the queue model's predictions to what
the batching engine really does?

For each profile (of a spec, or a chosen subset) and each of a few max batch sizes
(default 8, 32 and the profile's max; larger than the profile's max are dropped), the
queue model (`queue_models` registry, the spec's `optimizer.queue_model` unless given)
gives the max rate of one replica at that max batch (`PreparedQueue.max_rate_rps`, 0.999
of the saturated service rate). At each load fraction of it (default 10, 30, 50, 70, 80,
90, 95%) one replica's `queue_models.engine.BatchEngine` runs in virtual time: Poisson
arrivals from a seeded numpy Generator, every request the same size, driven the way
`queue_models.engine.step` drives it (plan at now, jump to the iteration's end,
complete), with arrivals during an iteration queued at their own times. The engine's
queue bound is the model's default max queue (10 x max batch for batch-queue), so both
block the same arrivals; the KV cache is unlimited (the model has no KV limit).

Measured: after `warmup` arrivals, the next `requests` arrivals (in arrival order) that
were admitted; mean TTFT (arrival to first token) and token-weighted mean ITL (all gaps
between consecutive tokens of those requests over their number). Arrivals continue until
every measured request has finished, so the load stays steady while they do. Compared
with the model's mean TTFT and ITL at the same rate (`latencies_ms(rate, None, None)`).

Noise: the simulated means come with a 95% confidence half-width from 10 consecutive batch
means, and a drift (later half less earlier half of the measured requests). A point is
`steady` when both are within half the threshold. Near saturation a run that starts
empty needs far more requests than the default to reach its steady state (the queue
builds up over many service times), so points at 90-95% load with a small max batch are
often not steady with the defaults: raise `requests` for them. The CI understates the
noise when the run is that correlated.

Errors are (predicted - simulated) / simulated in %: positive means the model predicts
slower than the engine runs (pessimistic: it over-provisions), negative faster
(optimistic: targets it promises can be missed). Per (profile, max batch): the MAPE of
TTFT and ITL over the loads, and "reliable up to": the highest load fraction such that
every point at or below it has |TTFT error| and |ITL error| within the threshold
(default 20%; None when the lowest load already misses it).

Defaults: 1,000 measured requests after 200 warm-up arrivals per point keep a table of
the six profiles of `specs/examples/heterogeneous-fleet.json` (17 batch settings x 7
loads) under a minute on one core; the seed of a point depends only on the seed, the
profile, the batch and the load, so a subset reproduces the full table's numbers.

Token sizes: the spec server of the profile's model with the highest arrival rate (ties
by name), unless `ValidationOptions.in_tokens` / `out_tokens` are given.

To extend: another figure is one more field on `ValidationRow` filled in `_row`; another
engine (e.g. one with a timing-table cost law) is an `engine_factory` passed to
`validate`.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from queue_models.base import PreparedQueue, QueueModel, ServiceParams
from queue_models.engine import BatchEngine, EngineConfig, EngineError, RequestState
from queue_models.registry import get_queue_model
from specs.documents import FleetSpec, Profile
from specs.errors import SpecError

EngineFactory = Callable[[EngineConfig], BatchEngine]

DEFAULT_LOAD_FRACTIONS = (0.1, 0.3, 0.5, 0.7, 0.8, 0.9, 0.95)
CI_BATCHES = 10
CI_T_QUANTILE = 2.262
"""Student t, 97.5% quantile, 9 degrees of freedom (10 batch means)."""
DEFAULT_MAX_BATCHES: tuple[int | None, ...] = (8, 32, None)
"""None stands for the profile's max batch."""


@dataclass(frozen=True, slots=True)
class ValidationOptions:
    """What to run: batches, loads, how many requests, the threshold and the seed."""

    max_batches: tuple[int | None, ...] = DEFAULT_MAX_BATCHES
    load_fractions: tuple[float, ...] = DEFAULT_LOAD_FRACTIONS
    requests: int = 1000
    """Requests measured per point (after the warm-up)."""
    warmup: int = 200
    """Arrivals before the measured ones (not measured)."""
    threshold_pct: float = 20.0
    seed: int = 0
    queue_model: str | None = None
    """Registry name; None: the spec's optimizer.queue_model."""
    in_tokens: int | None = None
    out_tokens: int | None = None

    def __post_init__(self) -> None:
        if self.requests < 1 or self.warmup < 0:
            raise ValueError("requests must be >= 1 and warmup >= 0")
        if not self.load_fractions or not all(0 < f < 1 for f in self.load_fractions):
            raise ValueError(f"load fractions must be in (0, 1), got {self.load_fractions}")
        if self.threshold_pct <= 0:
            raise ValueError("threshold_pct must be > 0")


@dataclass(frozen=True, slots=True)
class ProfileCase:
    """A profile and the (fixed) request size it is validated with."""

    profile: Profile
    in_tokens: int
    out_tokens: int
    tokens_from: str
    """Where the sizes come from: a server name, or "options"."""


@dataclass(frozen=True, slots=True)
class Simulated:
    """What the engine did at one rate (ms, rps)."""

    ttft_ms: float
    itl_ms: float
    ttft_ci_ms: float
    """Half-width of the 95% confidence interval of ttft_ms (batch means)."""
    itl_ci_ms: float
    ttft_drift_pct: float
    """Mean TTFT of the later half of the measured requests less the earlier half, as % of
    the mean: large when the run had not reached a steady state (e.g. a queue still
    building up near saturation)."""
    throughput_rps: float
    measured: int
    rejected: int


@dataclass(frozen=True, slots=True)
class ValidationRow:
    """One (profile, max batch, load) point: prediction, simulation and errors (%)."""

    model: str
    accelerator: str
    max_batch: int
    max_queue: int
    in_tokens: int
    out_tokens: int
    load_fraction: float
    rate_rps: float
    max_rate_rps: float
    predicted_ttft_ms: float
    simulated_ttft_ms: float
    ttft_error_pct: float
    predicted_itl_ms: float
    simulated_itl_ms: float
    itl_error_pct: float
    simulated_ttft_ci_ms: float
    """95% confidence half-width of simulated_ttft_ms (10 batch means): the noise."""
    simulated_itl_ci_ms: float
    simulated_ttft_drift_pct: float
    steady: bool
    """False when the simulated TTFT is too noisy to judge the error: its confidence
    half-width or its drift between halves exceeds half the threshold."""
    predicted_blocking: float
    simulated_blocking: float
    measured: int

    def within(self, threshold_pct: float) -> bool:
        """True when both errors are within the threshold."""
        return (
            abs(self.ttft_error_pct) <= threshold_pct and abs(self.itl_error_pct) <= threshold_pct
        )


@dataclass(frozen=True, slots=True)
class BatchSummary:
    """One (profile, max batch) over its loads."""

    model: str
    accelerator: str
    max_batch: int
    ttft_mape_pct: float
    itl_mape_pct: float
    reliable_up_to: float | None
    """Highest load fraction with every point up to it within the threshold."""
    unsteady_points: int
    """Points whose simulated TTFT was too noisy to judge (`ValidationRow.steady`)."""


def _pct_error(predicted: float, simulated: float) -> float:
    if simulated > 0 and math.isfinite(simulated):
        return (predicted - simulated) / simulated * 100.0
    return math.nan


def _signed(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:+.1f}"


def _name(model: str, accelerator: str) -> str:
    return f"{model} on {accelerator}"


@dataclass(frozen=True)
class ValidationResult:
    """The table: rows, per (profile, batch) summaries, markdown and JSON views."""

    queue_model: str
    options: ValidationOptions
    rows: tuple[ValidationRow, ...]
    cases: tuple[ProfileCase, ...] = field(default=())

    def summaries(self) -> list[BatchSummary]:
        """MAPE and "reliable up to" per (profile, max batch), in row order."""
        groups: dict[tuple[str, str, int], list[ValidationRow]] = {}
        for row in self.rows:
            groups.setdefault((row.model, row.accelerator, row.max_batch), []).append(row)
        return [self._summary(key, rows) for key, rows in groups.items()]

    def _summary(self, key: tuple[str, str, int], rows: list[ValidationRow]) -> BatchSummary:
        reliable: float | None = None
        for row in sorted(rows, key=lambda r: r.load_fraction):
            if not row.within(self.options.threshold_pct):
                break
            reliable = row.load_fraction
        return BatchSummary(
            *key,
            ttft_mape_pct=float(np.nanmean([abs(r.ttft_error_pct) for r in rows])),
            itl_mape_pct=float(np.nanmean([abs(r.itl_error_pct) for r in rows])),
            reliable_up_to=reliable,
            unsteady_points=sum(not r.steady for r in rows),
        )

    def to_json(self) -> dict[str, Any]:
        """Plain data (json.dumps-able): options, rows, summaries, sentences."""
        return _finite(
            {
                "queue_model": self.queue_model,
                "options": asdict(self.options),
                "cases": [_case_json(c) for c in self.cases],
                "rows": [asdict(r) for r in self.rows],
                "summaries": [asdict(s) for s in self.summaries()],
                "findings": self.findings(),
            }
        )

    def to_markdown(self) -> str:
        """The table of points, the per-batch summary, and one sentence per profile."""
        head = (
            f"Queue model `{self.queue_model}` against the batching engine "
            f"({self.options.requests} requests after {self.options.warmup} warm-up per point; "
            "error = (predicted - simulated) / simulated; ± is the simulation's 95% "
            "confidence half-width from 10 batch means; steady: TTFT noise and drift "
            f"within ±{self.options.threshold_pct / 2:g}%)."
        )
        out = [
            head,
            "",
            *_point_table(self.rows),
            "",
            *_summary_table(self.summaries(), self.options.threshold_pct),
            "",
        ]
        out += [f"- {sentence}" for sentence in self.findings()]
        return "\n".join(out) + "\n"

    def findings(self) -> list[str]:
        """One plain sentence per profile: where the model is wrong and in which direction."""
        profiles: dict[tuple[str, str], list[ValidationRow]] = {}
        for row in self.rows:
            profiles.setdefault((row.model, row.accelerator), []).append(row)
        summaries = self.summaries()
        return [
            _finding(
                key,
                rows,
                [s for s in summaries if (s.model, s.accelerator) == key],
                self.options.threshold_pct,
            )
            for key, rows in profiles.items()
        ]


def _finite(value: Any) -> Any:
    """NaN and infinities become None, so the data is strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def _case_json(case: ProfileCase) -> dict[str, Any]:
    return {
        "profile": case.profile.model_dump(mode="json"),
        "in_tokens": case.in_tokens,
        "out_tokens": case.out_tokens,
        "tokens_from": case.tokens_from,
    }


def _point_table(rows: Sequence[ValidationRow]) -> list[str]:
    out = [
        "| profile | accelerator | max batch | load | rate rps | TTFT pred ms | TTFT sim ms "
        "| TTFT err % | ITL pred ms | ITL sim ms | ITL err % | steady |",
        "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|:-:|",
    ]
    for r in rows:
        out.append(
            f"| {r.model} | {r.accelerator} | {r.max_batch} | {r.load_fraction:.0%} "
            f"| {r.rate_rps:.3g} | {r.predicted_ttft_ms:.1f} "
            f"| {r.simulated_ttft_ms:.1f} ± {r.simulated_ttft_ci_ms:.1f} "
            f"| {_signed(r.ttft_error_pct)} | {r.predicted_itl_ms:.2f} "
            f"| {r.simulated_itl_ms:.2f} ± {r.simulated_itl_ci_ms:.2f} "
            f"| {_signed(r.itl_error_pct)} | {'yes' if r.steady else 'no'} |"
        )
    return out


def _summary_table(summaries: Sequence[BatchSummary], threshold_pct: float) -> list[str]:
    out = [
        "| profile | accelerator | max batch | TTFT MAPE % | ITL MAPE % "
        f"| reliable up to (±{threshold_pct:g}%) | unsteady points |",
        "|---|---|--:|--:|--:|--:|--:|",
    ]
    for s in summaries:
        up_to = "below lowest load" if s.reliable_up_to is None else f"{s.reliable_up_to:.0%}"
        out.append(
            f"| {s.model} | {s.accelerator} | {s.max_batch} | {s.ttft_mape_pct:.1f} "
            f"| {s.itl_mape_pct:.1f} | {up_to} | {s.unsteady_points} |"
        )
    return out


def _misses(rows: list[ValidationRow], metric: str, sign: int, threshold: float) -> str | None:
    """'over-predicts TTFT at 5 of 21 points (80-95% load; worst +736% at max batch 8, 95%
    load; pessimistic)', or None when no point misses in that direction."""
    errors = [(getattr(r, f"{metric}_error_pct"), r) for r in rows]
    off = [(e, r) for e, r in errors if sign * e > threshold]
    if not off:
        return None
    worst, at = max(off, key=lambda item: abs(item[0]))
    loads = sorted({r.load_fraction for _, r in off})
    span = f"{loads[0]:.0%}" if len(loads) == 1 else f"{loads[0]:.0%}-{loads[-1]:.0%}"
    word, tone = ("over", "pessimistic") if sign > 0 else ("under", "optimistic")
    return (
        f"{word}-predicts {metric.upper()} at {len(off)} of {len(rows)} points ({span} "
        f"load; worst {worst:+.0f}% at max batch {at.max_batch}, {at.load_fraction:.0%} "
        f"load; {tone})"
    )


def _finding(
    key: tuple[str, str], rows: list[ValidationRow], summaries: list[BatchSummary], threshold: float
) -> str:
    """One sentence for one profile: how far it is reliable, and each direction it misses."""
    reliable = [s.reliable_up_to for s in summaries]
    if None in reliable:
        head = f"not within ±{threshold:g}% even at the lowest load for every max batch"
    else:
        head = f"within ±{threshold:g}% up to {min(r or 0.0 for r in reliable):.0%} load at every max batch"
    parts = [
        m
        for metric in ("ttft", "itl")
        for sign in (-1, 1)
        if (m := _misses(rows, metric, sign, threshold)) is not None
    ]
    clean = [
        m.upper()
        for m in ("ttft", "itl")
        if all(abs(getattr(r, f"{m}_error_pct")) <= threshold for r in rows)
    ]
    tail = "; ".join(parts) if parts else "it never misses"
    if clean:
        tail += f"; {' and '.join(clean)} within ±{threshold:g}% at every point"
    unsteady = sorted({r.load_fraction for r in rows if not r.steady})
    if unsteady:
        loads = ", ".join(f"{f:.0%}" for f in unsteady)
        tail += f" (the simulation was not steady at {loads} load for some batch: run longer there)"
    return f"{_name(*key)}: {head}; the model {tail}."


# -- running -------------------------------------------------------------------------------


class _Run:
    """One engine fed Poisson arrivals until every measured request has finished."""

    def __init__(
        self,
        engine: BatchEngine,
        rate_rps: float,
        sizes: tuple[int, int],
        window: tuple[int, int],
        rng: np.random.Generator,
    ) -> None:
        self.engine, self.rate, self.sizes, self.rng = engine, rate_rps, sizes, rng
        self.first, self.last = window
        self.next_id, self.next_s = 0, float(rng.exponential(1.0 / rate_rps))
        self.pending = window[1] - window[0]
        self.rejected = 0
        self.done: list[tuple[int, float, float, int]] = []
        """(index, TTFT s, time from first to last token s, gaps) per measured request."""
        self.span = [math.inf, 0.0]

    def arrive_until(self, t: float) -> None:
        """Submit every arrival at or before t, at its own time."""
        while self.next_s <= t and self.pending > 0:
            i, now = self.next_id, self.next_s
            try:
                self.engine.submit(str(i), self.sizes[0], self.sizes[1], now)
            except EngineError:
                self.rejected += self.first <= i < self.last
                self.pending -= self.first <= i < self.last
            self.next_id += 1
            self.next_s = now + float(self.rng.exponential(1.0 / self.rate))

    def run(self) -> None:
        """Iterate until the measured requests are done."""
        t = 0.0
        while self.pending > 0:
            self.arrive_until(t)
            iteration = self.engine.next_iteration(t)
            if iteration is None:
                t = self.next_s
                continue
            self.arrive_until(iteration.end_s)
            for event in self.engine.complete(iteration, iteration.end_s):
                if event.finished:
                    self._record(event.request)
            t = iteration.end_s

    def _record(self, request: RequestState) -> None:
        index = int(request.request_id)
        if not self.first <= index < self.last:
            return
        self.pending -= 1
        self.done.append(
            (
                index,
                request.first_token_s - request.arrival_s,
                request.finished_s - request.first_token_s,
                request.output_tokens - 1,
            )
        )
        self.span = [min(self.span[0], request.arrival_s), max(self.span[1], request.finished_s)]

    def result(self) -> Simulated:
        """Means over the measured requests, with batch-means confidence intervals."""
        done = sorted(self.done)
        duration = self.span[1] - self.span[0]
        ttft, ttft_ci = _batch_means([(d[1], 1) for d in done])
        half = len(done) // 2
        early, late = (
            _batch_means([(d[1], 1) for d in part])[0] for part in (done[:half], done[half:])
        )
        itl, itl_ci = _batch_means([(d[2], d[3]) for d in done])
        return Simulated(
            ttft_ms=1000.0 * ttft,
            itl_ms=1000.0 * itl,
            ttft_ci_ms=1000.0 * ttft_ci,
            itl_ci_ms=1000.0 * itl_ci,
            ttft_drift_pct=(late - early) / ttft * 100.0 if half and ttft > 0 else math.nan,
            throughput_rps=len(done) / duration if duration > 0 else math.nan,
            measured=len(done),
            rejected=self.rejected,
        )


def _batch_means(samples: list[tuple[float, int]]) -> tuple[float, float]:
    """(ratio of sums, 95% half-width from `CI_BATCHES` consecutive batches) of
    (value, weight) samples in arrival order; nan where undefined."""
    weight = sum(w for _, w in samples)
    if weight == 0:
        return math.nan, math.nan
    mean = sum(v for v, _ in samples) / weight
    if len(samples) < 2 * CI_BATCHES:
        return mean, math.nan
    means = []
    for chunk in np.array_split(np.arange(len(samples)), CI_BATCHES):
        w = sum(samples[i][1] for i in chunk)
        if w:
            means.append(sum(samples[i][0] for i in chunk) / w)
    spread = float(np.std(means, ddof=1)) if len(means) > 1 else math.nan
    return mean, CI_T_QUANTILE * spread / math.sqrt(len(means))


def simulate(
    config: EngineConfig,
    rate_rps: float,
    sizes: tuple[int, int],
    *,
    requests: int,
    warmup: int,
    rng: np.random.Generator,
    engine_factory: EngineFactory = BatchEngine,
) -> Simulated:
    """One replica's engine at a Poisson rate with fixed (in, out) token sizes."""
    if rate_rps <= 0:
        raise ValueError(f"rate must be > 0, got {rate_rps}")
    run = _Run(engine_factory(config), rate_rps, sizes, (warmup, warmup + requests), rng)
    run.run()
    return run.result()


def cases_of(
    spec: FleetSpec, options: ValidationOptions, profiles: Sequence[tuple[str, str]] | None = None
) -> list[ProfileCase]:
    """The profiles to validate (all, or the (model, accelerator) pairs asked for)."""
    chosen = list(spec.profiles)
    if profiles is not None:
        known = {(p.model, p.accelerator) for p in chosen}
        missing = [pair for pair in profiles if pair not in known]
        if missing:
            raise SpecError(
                f"no profile for {missing}", json_path="$.profiles", hint=f"known: {sorted(known)}"
            )
        chosen = [p for p in chosen if (p.model, p.accelerator) in set(profiles)]
    return [_case(spec, p, options) for p in chosen]


def _case(spec: FleetSpec, profile: Profile, options: ValidationOptions) -> ProfileCase:
    servers = sorted(
        (s for s in spec.servers if s.model == profile.model),
        key=lambda s: (-s.load.arrival_rate_rps, s.name),
    )
    if options.in_tokens is not None and options.out_tokens is not None:
        return ProfileCase(profile, options.in_tokens, options.out_tokens, "options")
    if not servers:
        raise SpecError(
            f"no server serves {profile.model!r}, so the request size is unknown",
            json_path="$.servers",
            hint="set in_tokens and out_tokens in the options",
        )
    load = servers[0].load
    in_tokens = options.in_tokens if options.in_tokens is not None else round(load.in_tokens)
    out_tokens = options.out_tokens if options.out_tokens is not None else round(load.out_tokens)
    return ProfileCase(profile, in_tokens, max(out_tokens, 1), servers[0].name)


def _batches(profile: Profile, options: ValidationOptions) -> list[int]:
    sizes = {profile.max_batch if b is None else b for b in options.max_batches}
    return sorted(b for b in sizes if 1 <= b <= profile.max_batch)


def _prepare(model: QueueModel, case: ProfileCase, batch: int) -> PreparedQueue:
    p = case.profile
    return model.prepare(
        ServiceParams(
            alpha_ms=p.alpha_ms,
            beta_ms=p.beta_ms,
            gamma_ms=p.gamma_ms,
            in_tokens=case.in_tokens,
            out_tokens=case.out_tokens,
            max_batch=batch,
            max_queue=model.default_max_queue(batch),
            token_budget=p.token_budget,
        )
    )


def _steady(sim: Simulated, threshold_pct: float) -> bool:
    """True when noise and drift each stay within half the threshold."""
    limit = threshold_pct / 2.0
    ci_pct = sim.ttft_ci_ms / sim.ttft_ms * 100.0 if sim.ttft_ms > 0 else math.inf
    return bool(ci_pct <= limit and abs(sim.ttft_drift_pct) <= limit)


def _row(
    case: ProfileCase, queue: PreparedQueue, fraction: float, sim: Simulated, threshold_pct: float
) -> ValidationRow:
    rate = fraction * queue.max_rate_rps
    ttft, itl = queue.latencies_ms(rate, None, None)
    offered = sim.measured + sim.rejected
    return ValidationRow(
        model=case.profile.model,
        accelerator=case.profile.accelerator,
        max_batch=queue.params.max_batch,
        max_queue=queue.params.max_queue,
        in_tokens=case.in_tokens,
        out_tokens=case.out_tokens,
        load_fraction=fraction,
        rate_rps=rate,
        max_rate_rps=queue.max_rate_rps,
        predicted_ttft_ms=float(ttft),
        simulated_ttft_ms=sim.ttft_ms,
        ttft_error_pct=_pct_error(float(ttft), sim.ttft_ms),
        predicted_itl_ms=float(itl),
        simulated_itl_ms=sim.itl_ms,
        itl_error_pct=_pct_error(float(itl), sim.itl_ms),
        simulated_ttft_ci_ms=sim.ttft_ci_ms,
        simulated_ttft_drift_pct=sim.ttft_drift_pct,
        steady=_steady(sim, threshold_pct),
        simulated_itl_ci_ms=sim.itl_ci_ms,
        predicted_blocking=queue.evaluate(rate).blocking_prob,
        simulated_blocking=sim.rejected / offered if offered else 0.0,
        measured=sim.measured,
    )


def validate_cases(
    cases: Sequence[ProfileCase],
    options: ValidationOptions,
    queue_model: str,
    engine_factory: EngineFactory = BatchEngine,
) -> ValidationResult:
    """The table for explicit cases (e.g. a profile fitted from a timing table)."""
    model = get_queue_model(queue_model)
    rows: list[ValidationRow] = []
    for case in cases:
        key = zlib.crc32(f"{case.profile.model}/{case.profile.accelerator}".encode())
        for batch in _batches(case.profile, options):
            queue = _prepare(model, case, batch)
            config = EngineConfig.from_profile(
                case.profile, max_batch=batch, max_queue=queue.params.max_queue
            )
            for fraction in sorted(options.load_fractions):
                rng = np.random.default_rng([options.seed, key, batch, round(fraction * 1e4)])
                sim = simulate(
                    config,
                    fraction * queue.max_rate_rps,
                    (case.in_tokens, case.out_tokens),
                    requests=options.requests,
                    warmup=options.warmup,
                    rng=rng,
                    engine_factory=engine_factory,
                )
                rows.append(_row(case, queue, fraction, sim, options.threshold_pct))
    return ValidationResult(queue_model, options, tuple(rows), tuple(cases))


def validate(
    spec: FleetSpec,
    options: ValidationOptions | None = None,
    *,
    profiles: Sequence[tuple[str, str]] | None = None,
    engine_factory: EngineFactory = BatchEngine,
) -> ValidationResult:
    """Validate the queue model against the engine for a spec's profiles (or a subset)."""
    options = options or ValidationOptions()
    name = options.queue_model or spec.optimizer.queue_model
    return validate_cases(cases_of(spec, options, profiles), options, name, engine_factory)


__all__ = [
    "DEFAULT_LOAD_FRACTIONS",
    "DEFAULT_MAX_BATCHES",
    "BatchSummary",
    "ProfileCase",
    "Simulated",
    "ValidationOptions",
    "ValidationResult",
    "ValidationRow",
    "cases_of",
    "simulate",
    "validate",
    "validate_cases",
]
