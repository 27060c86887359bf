"""Safety rules applied to every final plan before the actuator sees it (pure functions).

- `hold_servers`: servers whose metrics are missing or stale keep exactly the variants
  and replica counts they run now (never "zero load", never "zero replicas").
- `enforce_min_replicas`: a served server never has fewer replicas than its
  `min_replicas` (the first variant is raised).
- `make_before_break`: while a server's new replicas are still starting (planned above
  the ready count), none of its variants is scaled below what it runs now, so switching
  accelerators or reshaping a split never removes capacity before its replacement
  serves (as a rolling update keeps old pods until new ones are ready); the reductions
  happen on the first tick after the new replicas are ready. Holds that would exceed a
  card type's capacity are dropped.
- `over_capacity`: the card types whose capacity a plan would exceed (the loop then keeps
  the fleet as it is rather than acting on such a plan).
- `planned_changes`: what moving from the running fleet to a plan changes, per variant
  (used for dry-run and metrics modes, where the actuator is not called).

To extend: a new rule is one more function of (plan, spec, fleet) returning a plan or a
verdict, called from `controller.loop.ControlLoop._finalise`.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

from actuator.base import VariantState, variant_name
from controller.stabilize import (
    StabilizeInput,
    rebuilt,
    resized,
    variant_template,
    with_variants,
)
from controller.tick import Change, RunningVariant
from specs.documents import FleetSpec
from specs.plan import Plan, ServerAllocation, VariantAllocation

VariantKey = tuple[str, str]


def hold_servers(plan: Plan, servers: Collection[str], inp: StabilizeInput) -> Plan:
    """`plan` with each of `servers` pinned to the replicas it runs now."""
    if not servers:
        return plan
    allocations: list[ServerAllocation] = []
    for alloc in plan.allocations:
        if alloc.server not in servers:
            allocations.append(alloc)
            continue
        running = sorted((acc, n) for (srv, acc), n in inp.current.items()
                         if srv == alloc.server and n > 0)
        variants = []
        for acc, n in running:
            template = variant_template(inp, alloc.server, acc)
            if template is not None:
                variants.append(resized(template, n))
        allocations.append(with_variants(alloc, variants))
    return rebuilt(plan, allocations)


def enforce_min_replicas(plan: Plan, spec: FleetSpec) -> Plan:
    """Raise the first variant of any server below its `min_replicas`."""
    minimum = {s.name: s.min_replicas for s in spec.servers}
    changed = False
    allocations = []
    for alloc in plan.allocations:
        total = sum(v.replicas for v in alloc.variants)
        need = minimum.get(alloc.server, 0)
        if alloc.variants and total < need:
            first = alloc.variants[0]
            alloc = with_variants(alloc, [resized(first, first.replicas + need - total),
                                          *alloc.variants[1:]])
            changed = True
        allocations.append(alloc)
    return rebuilt(plan, allocations) if changed else plan


def make_before_break(plan: Plan, fleet: Sequence[RunningVariant | VariantState],
                      spec: FleetSpec, previous: Plan | None = None,
                      ) -> tuple[Plan, list[str]]:
    """`plan` with reductions held while the server's new replicas start (see above);
    returns the plan and one reason per server held. A variant the plan drops is copied
    from `previous` (else the spec) with its running max batch and token budget."""
    running = {(v.server, v.accelerator): v for v in fleet}
    inp = StabilizeInput(spec, plan, {}, previous, 0.0)
    allocations, held = [], []
    for alloc in plan.allocations:
        mine = {acc: v for (srv, acc), v in running.items() if srv == alloc.server}
        wanted = {v.accelerator: v.replicas for v in alloc.variants}
        starting = any(n > (mine[a].ready_replicas if a in mine else 0)
                       for a, n in wanted.items())
        shrinking = sorted(a for a, v in mine.items() if v.replicas > wanted.get(a, 0))
        if not starting or not shrinking:
            allocations.append(alloc)
            continue
        kept = [v for v in alloc.variants if v.accelerator not in shrinking]
        for acc in shrinking:
            template = _running_template(inp, alloc.server, mine[acc])
            if template is not None:
                kept.append(resized(template, mine[acc].replicas))
        allocations.append(with_variants(alloc, kept))
        held.append(f"{alloc.server}: {', '.join(shrinking)} kept until the new replicas "
                    "are ready")
    final = rebuilt(plan, allocations)
    if held and over_capacity(final, spec):
        return plan, []
    return final, held


def _running_template(inp: StabilizeInput, server: str,
                      state: RunningVariant | VariantState) -> VariantAllocation | None:
    template = variant_template(inp, server, state.accelerator)
    if template is None:
        return None
    update: dict[str, object] = {}
    if state.max_batch:
        update["max_batch"] = state.max_batch
    budget = getattr(state, "token_budget", None)
    if budget:
        update["token_budget"] = budget
    return template.model_copy(update=update) if update else template


def over_capacity(plan: Plan, spec: FleetSpec) -> list[str]:
    """Card types the plan uses beyond the spec's capacity, sorted."""
    return sorted(t for t, n in plan.cards_used.items() if n > spec.capacity.get(t, 0))


def plan_replicas(plan: Plan) -> dict[VariantKey, int]:
    """Replicas per (server, accelerator) in a plan."""
    return {(a.server, v.accelerator): v.replicas for a in plan.allocations for v in a.variants}


def planned_changes(plan: Plan, current: Mapping[VariantKey, int]) -> list[Change]:
    """Per-variant changes from `current` to `plan`, sorted by variant name."""
    wanted = plan_replicas(plan)
    out = []
    for server, acc in sorted(set(wanted) | set(current)):
        have, want = current.get((server, acc), 0), wanted.get((server, acc), 0)
        if have == want:
            continue
        kind = "create" if have == 0 else "delete" if want == 0 else "scale"
        out.append(Change(variant=variant_name(server, acc), server=server, kind=kind,
                          detail=f"replicas {have} -> {want}"))
    return sorted(out, key=lambda c: c.variant)
