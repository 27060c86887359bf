"""The transition penalty: what it costs to move a server from its current allocation.

As inferno (`Allocation.TransitionPenalty`), with `factor` (default 0.1) an option:

- same accelerator, same replica count: no change, no penalty;
- same accelerator, other count: the cost difference;
- other accelerator (or none running): factor x (old + new cost) plus the difference.

The optimizer minimises `value = new cost + switch penalty`, which is inferno's penalty
plus the constant old cost: the same order within a server and a non-negative objective.
`inferno_value` gives inferno's own number (used where inferno compares values across
servers, e.g. the greedy's order). A server with no current allocation is treated as
inferno does (an empty allocation on no accelerator): its value is (1 + factor) x cost.

To extend: a different disruption model is one more pure function here, chosen in
`optimizer.candidates`.
"""

from __future__ import annotations


def switch_penalty(
    new_accelerator: str,
    new_cost: float,
    current_accelerator: str | None,
    current_cost: float,
    factor: float,
) -> float:
    """The extra charge for changing accelerator: factor x (old + new), else 0."""
    if current_accelerator is not None and new_accelerator == current_accelerator:
        return 0.0
    return factor * (current_cost + new_cost)


def transition_value(
    new_accelerator: str,
    new_cost: float,
    current_accelerator: str | None,
    current_cost: float,
    factor: float,
) -> float:
    """Objective value of a candidate: its cost plus the switch penalty."""
    return new_cost + switch_penalty(
        new_accelerator, new_cost, current_accelerator, current_cost, factor
    )


def inferno_value(value: float, current_cost: float) -> float:
    """inferno's value (its transition penalty): the objective value minus the old cost."""
    return value - current_cost


def per_replica_factor(accelerator: str, current_accelerator: str | None, factor: float) -> float:
    """Multiplier on a replica's cost in heterogeneous mode (1 + factor off the current type)."""
    if current_accelerator is not None and accelerator == current_accelerator:
        return 1.0
    return 1.0 + factor
