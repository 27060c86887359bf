"""What the loop reads each tick, and how a collector snapshot becomes loads and observations.

`MetricsSource.collect(now, fleet)` returns a `collector.snapshot.FleetSnapshot`; the
running fleet is passed in because variants come and go as the actuator creates them
(the scrape collector needs their URLs). A source that cannot be reached returns a
snapshot with status `unavailable` or raises: the loop treats both as "no metrics" and
holds the fleet as it is. Adapters around the collector package's classes live in
`controller.wiring`.

`server_loads(snapshot, spec, stale_after_s)` gives, per server, a fresh measured `Load`
(or nothing: the server's metrics are missing, stale or not trustworthy).
`tuner_observations(snapshot, fleet)` gives one tuner `Observation` per variant with usable
figures (`collector.observations.observation_of`; the max batch taken from the fleet when
the engine does not export it).

To extend: another source is any class with `collect`; another derived input is one more
pure function of the snapshot here.
"""

from __future__ import annotations

from typing import Protocol

from actuator.base import FleetState
from collector.observations import observation_of
from collector.snapshot import Figure, FleetSnapshot, SourceStatus
from specs.documents import FleetSpec, Load
from tuner.observation import Observation


class MetricsSource(Protocol):
    """Something that measures the fleet once per tick."""

    def collect(self, now: float, fleet: FleetState) -> FleetSnapshot:
        """A snapshot at `now` (raises or answers `unavailable` when the source is down)."""
        ...


def _fresh(figure: Figure, stale_after_s: float) -> float | None:
    if not figure.usable or figure.value is None:
        return None
    if figure.age_s is not None and figure.age_s > stale_after_s:
        return None
    return float(figure.value)


def _variant_sum(snapshot: FleetSnapshot, server: str, stale_after_s: float,
                 ) -> tuple[float, float, float] | None:
    """(rate, in tokens, out tokens) summed/weighted over the server's variants."""
    parts = [v for v in snapshot.variants if v.server == server]
    if not parts:
        return None
    rate = in_tok = out_tok = 0.0
    for v in parts:
        r = _fresh(v.arrival_rate_rps, stale_after_s)
        if r is None:
            return None
        rate += r
        in_tok += r * (_fresh(v.in_tokens, stale_after_s) or 0.0)
        out_tok += r * (_fresh(v.out_tokens, stale_after_s) or 0.0)
    if rate <= 0:
        return (0.0, 0.0, 0.0)
    return (rate, in_tok / rate, out_tok / rate)


def server_loads(snapshot: FleetSnapshot, spec: FleetSpec,
                 stale_after_s: float) -> dict[str, Load]:
    """Fresh measured loads by server (see the module docstring)."""
    if snapshot.status == SourceStatus.UNAVAILABLE:
        return {}
    out: dict[str, Load] = {}
    for server in spec.servers:
        agg = snapshot.server(server.name)
        if agg is not None:
            rate = _fresh(agg.arrival_rate_rps, stale_after_s)
            measured = None if rate is None else (
                rate, _fresh(agg.in_tokens, stale_after_s), _fresh(agg.out_tokens, stale_after_s))
        else:
            measured = _variant_sum(snapshot, server.name, stale_after_s)
        if measured is None:
            continue
        rate, in_tok, out_tok = measured
        out[server.name] = Load(
            arrival_rate_rps=max(rate, 0.0),
            in_tokens=round(in_tok) if in_tok else server.load.in_tokens,
            out_tokens=round(out_tok) if out_tok else server.load.out_tokens)
    return out


def tuner_observations(snapshot: FleetSnapshot, fleet: FleetState) -> list[Observation]:
    """One observation per variant with usable figures, sorted by variant name; the max
    batch (when the metrics lack it) and the token budget come from the fleet, so the
    tuner predicts each observation with the configuration the replicas ran."""
    if snapshot.status == SourceStatus.UNAVAILABLE:
        return []
    running = {s.variant: s for s in fleet.variants}
    out = []
    for v in sorted(snapshot.variants, key=lambda x: x.name):
        state = running.get(v.name)
        if not v.max_batch.usable and state is not None and state.max_batch:
            v = v.model_copy(update={"max_batch": Figure.ok(float(state.max_batch))})
        obs = observation_of(v)
        if isinstance(obs, Observation):
            budget = getattr(state, "token_budget", None)
            out.append(obs.model_copy(update={"token_budget": budget}) if budget else obs)
    return out
