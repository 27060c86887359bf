"""Stabilising a proposed plan against the running fleet (a policy: pure, registered by name).

The optimizer answers "what is cheapest for this load"; acting on every answer makes a
fleet flap. A stabiliser turns (its previous state, the proposed plan, the fleet as it
runs, the time) into (the final plan, the actions it held off with reasons, its new
state). Registered stabilisers (`STABILIZERS`):

- `hysteresis` (default): replica counts as Kubernetes' HPA stabilises them. Every
  tick's proposed count per variant is remembered for `scale_down_delay_s`; a proposal
  above the running count is taken at once (at most `max_step_up` more replicas per
  tick, when set); otherwise the variant scales down to the highest count proposed in
  that window when it is below the running count (at most `max_step_down` fewer per
  tick), else keeps its count. So a proposal flapping between 3 and 5 with 5 running
  stays at 5, and one that stays at 3 for the delay scales down to 3. A variant the
  stabiliser has no history for (first seen, or a restart without state) counts its
  running replicas as proposed now, so it waits a full delay before scaling down.
  An accelerator the proposal leaves goes at once when the accelerators it proposes
  already run their proposed counts (a finished switch; the safety stage still keeps
  it until they are ready), not after the window.
  No accelerator switch for a server unless it saves at least `min_switch_saving` (a
  fraction) of the cost of staying on the current accelerators, resized for the same
  load (the load split over the running variants in proportion to their current
  capacity, each scaled by the same factor). When a hold would exceed a card type's
  capacity, the holds on that type are released. Held variants keep their router weight
  share (replicas x per-replica rate).
- `none`: the proposed plan as it is (inferno's behaviour: only the optimizer's
  switch penalty).

To extend: write a function with `Stabilizer`'s signature and register it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, model_validator

from specs.documents import FleetSpec
from specs.plan import Plan, ServerAllocation, VariantAllocation
from specs.registry import Registry

HeldKind = Literal["scale-down", "switch", "step-up", "step-down"]
VariantKey = tuple[str, str]
"""(server, accelerator)."""


class StabilizerOptions(BaseModel):
    """How cautious the stabiliser is."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    scale_down_delay_s: float = Field(
        300.0, ge=0, description="Scale-down window: a variant scales down only to the "
        "highest count proposed during this long, s (Kubernetes HPA's stabilization "
        "window for scale-down).")
    max_step_up: int | None = Field(
        None, ge=1, description="Most replicas added to a variant per tick (none: no bound).")
    max_step_down: int | None = Field(
        None, ge=1, description="Most replicas removed from a variant per tick (none: no bound).")
    min_switch_saving: float = Field(
        0.1, ge=0, le=1, description="Switch a server's accelerators only when that saves at "
        "least this fraction of the cost of staying.")


class Proposal(BaseModel):
    """A replica count proposed for a variant at some time."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    time_s: float = Field(description="When it was proposed, s (loop clock).")
    replicas: int = Field(ge=0, description="Replicas proposed.")


Window = tuple[Proposal, ...]


class StabilizerState(BaseModel):
    """What the stabiliser remembers between ticks."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    history: dict[str, Window] = Field(
        default_factory=dict, description="By 'server/accelerator': the counts proposed "
        "within the last scale_down_delay_s that can still be the window's highest, oldest "
        "first (a count is dropped once a later one is at least as high, so the counts "
        "decrease and the first is the highest).")

    @model_validator(mode="before")
    @classmethod
    def _drop_pending(cls, data: object) -> object:
        """State written before the scale-down window (`pending`: per variant, when a lower
        count was first proposed and the highest since) is dropped, not misread: each such
        variant counts its running replicas as proposed at the next tick and waits a
        full delay again."""
        if isinstance(data, dict) and "pending" in data:
            data = {k: v for k, v in data.items() if k != "pending"}
        return data


@dataclass(frozen=True)
class HeldAction:
    """An action the stabiliser did not take (yet), and why."""

    server: str
    accelerator: str
    kind: HeldKind
    proposed: int
    kept: int
    reason: str


@dataclass(frozen=True)
class StabilizeInput:
    """Everything a stabiliser decides from."""

    spec: FleetSpec
    proposed: Plan
    current: Mapping[VariantKey, int]
    """Replicas running now per (server, accelerator)."""
    previous: Plan | None
    now: float
    rates: Callable[[str, str], float | None] | None = None
    """Per-replica rate of a server's replicas on an accelerator under the sizing in force
    now (None: that accelerator cannot serve the server any more); None: unknown, the
    rates of the plan the variant came from are used."""


@dataclass(frozen=True)
class StabilizeResult:
    """The final plan, the held-off actions and the new state."""

    plan: Plan
    held: tuple[HeldAction, ...] = ()
    state: StabilizerState = field(default_factory=StabilizerState)


class Stabilizer(Protocol):
    """A stabiliser (see the module docstring)."""

    def __call__(self, state: StabilizerState, inp: StabilizeInput,
                 options: StabilizerOptions) -> StabilizeResult:
        """Decide the final plan."""
        ...


def _key(server: str, accelerator: str) -> str:
    return f"{server}/{accelerator}"


def no_stabilizer(state: StabilizerState, inp: StabilizeInput,
                  options: StabilizerOptions) -> StabilizeResult:
    """The proposed plan unchanged."""
    return StabilizeResult(inp.proposed, (), StabilizerState())


# -- variants and allocations ---------------------------------------------------------------


def variant_template(inp: StabilizeInput, server: str, accelerator: str) -> VariantAllocation | None:
    """A variant of `server` on `accelerator` to copy: proposed, previous, else the spec.

    From the spec, the token budget is None (not set): the plan that chose the running
    budget is unknown, and None tells the actuators to leave the budget as it runs."""
    for plan in (inp.proposed, inp.previous):
        alloc = plan.allocation(server) if plan else None
        for v in alloc.variants if alloc else ():
            if v.accelerator == accelerator and v.replicas > 0:
                return v
    spec = inp.spec
    unit = next((a for a in spec.accelerators if a.name == accelerator), None)
    srv = next((s for s in spec.servers if s.name == server), None)
    if unit is None or srv is None:
        return None
    profile = next((p for p in spec.profiles
                    if p.model == srv.model and p.accelerator == accelerator), None)
    units = profile.units_per_replica if profile else 1
    return VariantAllocation(
        accelerator=accelerator, card_type=unit.card_type, replicas=1,
        max_batch=(profile.max_batch if profile else 1), cards=units * unit.multiplicity,
        cost_per_hour=units * unit.cost_per_hour, arrival_rate_rps=0.0, router_weight=0.0)


def resized(variant: VariantAllocation, replicas: int) -> VariantAllocation:
    """`variant` with `replicas` replicas (cards and cost scaled per replica)."""
    if variant.replicas == replicas:
        return variant
    per = max(variant.replicas, 1)
    return variant.model_copy(update={
        "replicas": replicas, "cards": variant.cards // per * replicas,
        "cost_per_hour": variant.cost_per_hour / per * replicas})


def with_variants(alloc: ServerAllocation, variants: list[VariantAllocation]) -> ServerAllocation:
    """`alloc` with new variants: zero-replica ones dropped, weights and cost recomputed."""
    kept = [v for v in variants if v.replicas > 0]
    shares = [v.replicas * (v.max_rate_per_replica_rps or 1.0) for v in kept]
    total = sum(shares)
    rate = alloc.load.arrival_rate_rps
    out = [v.model_copy(update={"router_weight": round(s / total, 6) if total else 0.0,
                                "arrival_rate_rps": rate * s / total if total else 0.0})
           for v, s in zip(kept, shares, strict=True)]
    return alloc.model_copy(update={"variants": out,
                                    "cost_per_hour": sum(v.cost_per_hour for v in out)})


def rebuilt(plan: Plan, allocations: list[ServerAllocation]) -> Plan:
    """`plan` with new allocations (sorted by server) and recomputed totals."""
    allocations = sorted(allocations, key=lambda a: a.server)
    cards: dict[str, int] = {}
    for alloc in allocations:
        for v in alloc.variants:
            cards[v.card_type] = cards.get(v.card_type, 0) + v.cards
    return plan.model_copy(update={
        "allocations": allocations, "cards_used": dict(sorted(cards.items())),
        "total_cost_per_hour": sum(a.cost_per_hour for a in allocations)})


def _empty_allocation(spec: FleetSpec, server: str) -> ServerAllocation | None:
    srv = next((s for s in spec.servers if s.name == server), None)
    if srv is None:
        return None
    klass = next((c for c in spec.service_classes if c.name == srv.service_class), None)
    return ServerAllocation(server=srv.name, model=srv.model, service_class=srv.service_class,
                            priority=klass.priority if klass else 100,
                            load=srv.load)


# -- hysteresis -----------------------------------------------------------------------------


def _stay_option(inp: StabilizeInput, alloc: ServerAllocation,
                 running: list[str]) -> list[VariantAllocation] | None:
    """The current accelerators resized for the proposed load, or None when unknown.

    The load is split over the running variants in proportion to their current capacity
    (running replicas x per-replica rate), so each is scaled by the same factor; counts
    are rounded down, then replicas are added where the rounding cut most until the
    capacity covers the load (every running variant keeps at least one)."""
    variants = [_current_rate(inp, alloc.server, variant_template(inp, alloc.server, acc))
                for acc in running]
    if any(v is None or v.max_rate_per_replica_rps <= 0 for v in variants):
        return None
    known = [v for v in variants if v is not None]
    counts = [inp.current.get((alloc.server, v.accelerator), 0) for v in known]
    rates = [v.max_rate_per_replica_rps for v in known]
    capacity = sum(n * r for n, r in zip(counts, rates, strict=True))
    load = alloc.load.arrival_rate_rps
    wanted = [n * load / capacity for n in counts]
    out = [max(math.floor(w + 1e-9), 1) for w in wanted]
    while sum(n * r for n, r in zip(out, rates, strict=True)) < load - 1e-9:
        short = max(range(len(out)), key=lambda i: (wanted[i] - out[i], -i))
        out[short] += 1
    return [resized(v, n) for v, n in zip(known, out, strict=True)]


def _current_rate(inp: StabilizeInput, server: str, variant: VariantAllocation | None,
                  ) -> VariantAllocation | None:
    """`variant` with its per-replica rate under the sizing in force now (`inp.rates`);
    None when that accelerator can no longer serve the server: a switch away from it is
    never held (it was sized with a profile or correction since found too fast)."""
    if variant is None or inp.rates is None:
        return variant
    rate = inp.rates(server, variant.accelerator)
    if rate is None:
        return None
    return variant.model_copy(update={"max_rate_per_replica_rps": rate})


def _hold_switch(inp: StabilizeInput, alloc: ServerAllocation, options: StabilizerOptions,
                 ) -> tuple[ServerAllocation, HeldAction | None]:
    running = sorted(acc for (srv, acc), n in inp.current.items() if srv == alloc.server and n > 0)
    proposed = sorted(v.accelerator for v in alloc.variants if v.replicas > 0)
    if not running or not proposed or set(proposed) <= set(running):
        return alloc, None
    stay = _stay_option(inp, alloc, running)
    if stay is None:
        return alloc, None
    stay_cost = sum(v.cost_per_hour for v in stay)
    saving = stay_cost - alloc.cost_per_hour
    if stay_cost <= 0 or saving >= options.min_switch_saving * stay_cost:
        return alloc, None
    held = HeldAction(alloc.server, ",".join(proposed), "switch",
                      sum(v.replicas for v in alloc.variants), sum(v.replicas for v in stay),
                      f"switch {'+'.join(running)} -> {'+'.join(proposed)} saves "
                      f"{saving / stay_cost:.1%} < {options.min_switch_saving:.0%}")
    return with_variants(alloc, stay), held


def _remember(window: Window | None, now: float, want: int, have: int,
             delay_s: float) -> Window:
    """`window` (None: no history, the running count `have` stands in as proposed now)
    without proposals older than `delay_s`, with `want` proposed `now`."""
    past = window if window is not None else (Proposal(time_s=now, replicas=have),)
    kept = [p for p in past if p.time_s > now - delay_s and p.replicas > want]
    return (*kept, Proposal(time_s=now, replicas=want))


def _scale(key: VariantKey, want: int, have: int, history: dict[str, Window],
           inp: StabilizeInput, options: StabilizerOptions) -> tuple[int, HeldAction | None]:
    """Replicas for one variant, updating `history`; with the held action, if any."""
    name = _key(*key)
    delay = options.scale_down_delay_s
    window = history[name] = _remember(history.get(name), inp.now, want, have, delay)
    if want > have:
        step = options.max_step_up
        if step is not None and want > have + step:
            return have + step, HeldAction(*key, "step-up", want, have + step,
                                           f"at most {step} more replicas per tick")
        return want, None
    target = min(window[0].replicas, have)
    if want < target:
        left = window[-2].time_s + delay - inp.now
        reason = (f"{window[0].replicas} proposed within the last {delay:.0f} s; "
                  f"{want} in {left:.0f} s if the lower plan holds")
        if target == have:
            return have, HeldAction(*key, "scale-down", want, have, reason)
    step = options.max_step_down
    if step is not None and have - target > step:
        return have - step, HeldAction(*key, "step-down", target, have - step,
                                       f"at most {step} fewer replicas per tick")
    if want < target:
        return target, HeldAction(*key, "scale-down", want, target, reason)
    return target, None


def _switched(wanted: Mapping[str, VariantAllocation], running: Mapping[str, int],
              ) -> set[str]:
    """Accelerators a server has left: proposed at 0 while every accelerator it is
    proposed on already runs its proposed count. A finished switch removes the old
    variant at once (the scale-down window is for counts that flap, and the switch itself
    passed `min_switch_saving`); `controller.safety.make_before_break` still keeps it
    until the new replicas are ready."""
    proposed = {acc: v.replicas for acc, v in wanted.items() if v.replicas > 0}
    if not proposed or any(running.get(acc, 0) < n for acc, n in proposed.items()):
        return set()
    return {acc for acc, n in running.items() if n > 0 and acc not in proposed}


def _allocations(inp: StabilizeInput, options: StabilizerOptions,
                 held: list[HeldAction]) -> dict[str, ServerAllocation]:
    out: dict[str, ServerAllocation] = {}
    for alloc in inp.proposed.allocations:
        final, switch = _hold_switch(inp, alloc, options)
        out[alloc.server] = final
        if switch:
            held.append(switch)
    for server, _ in sorted(inp.current):
        if server not in out:
            empty = _empty_allocation(inp.spec, server)
            if empty is not None:
                out[server] = empty
    return out


def hysteresis(state: StabilizerState, inp: StabilizeInput,
               options: StabilizerOptions) -> StabilizeResult:
    """See the module docstring."""
    held: list[HeldAction] = []
    history = dict(state.history)
    allocations = _allocations(inp, options, held)
    final: list[ServerAllocation] = []
    for server, alloc in sorted(allocations.items()):
        wanted = {v.accelerator: v for v in alloc.variants}
        running = {acc: n for (srv, acc), n in inp.current.items() if srv == server}
        variants = []
        switched = _switched(wanted, running)
        for acc in sorted(set(wanted) | set(running)):
            want = wanted[acc].replicas if acc in wanted else 0
            if acc in switched:
                history.pop(_key(server, acc), None)
                continue
            count, action = _scale((server, acc), want, running.get(acc, 0), history, inp, options)
            template = wanted.get(acc) or variant_template(inp, server, acc)
            if action:
                held.append(action)
            if template is not None and count > 0:
                variants.append(resized(template, count))
        final.append(with_variants(alloc, variants))
    plan = rebuilt(inp.proposed, final)
    plan, held = _release_over_capacity(inp, plan, held)
    live = {_key(*k) for k in inp.current} | {_key(a.server, v.accelerator)
                                              for a in plan.allocations for v in a.variants}
    return StabilizeResult(plan, tuple(held),
                           StabilizerState(history={k: w for k, w in sorted(history.items())
                                                    if k in live}))


def _release_over_capacity(inp: StabilizeInput, plan: Plan, held: list[HeldAction],
                           ) -> tuple[Plan, list[HeldAction]]:
    """Drop holds on card types whose capacity the final plan would exceed (the proposals
    stay in the history: they were proposed)."""
    over = {t for t, n in plan.cards_used.items() if n > inp.spec.capacity.get(t, 0)}
    if not over:
        return plan, held
    allocations = []
    released: set[str] = set()
    for alloc in plan.allocations:
        if any(v.card_type in over for v in alloc.variants):
            released.add(alloc.server)
            alloc = inp.proposed.allocation(alloc.server) or with_variants(alloc, [])
        allocations.append(alloc)
    held = [h for h in held if h.server not in released]
    return rebuilt(plan, allocations), held


STABILIZERS: Registry[Stabilizer] = Registry("stabilizer")
STABILIZERS.register("hysteresis", hysteresis)
STABILIZERS.register("none", no_stabilizer)


def stabilizer_names() -> list[str]:
    """Registered stabiliser names, sorted."""
    return STABILIZERS.names()
