"""The greedy solver and its saturation policies on hand-made candidates."""

from __future__ import annotations

from optimizer.greedy import solve_greedy
from specs.documents import OptimizerOptions
from tests.optimizer.factory import cand, problem, server


def _chosen(solution) -> dict[str, tuple[str, int]]:
    return {
        a.server: (a.variants[0].candidate.accelerator, a.variants[0].replicas)
        for a in solution.assignments
    }


def test_larger_regret_goes_first():
    # both want A (room for one); "b" loses more by moving to B, so "b" gets A
    a = server("a", [cand("a", "A", 2, 1.0), cand("a", "B", 2, 1.5)])
    b = server("b", [cand("b", "A", 2, 1.0), cand("b", "B", 2, 3.0)])
    solution = solve_greedy(problem([a, b], {"A": 2, "B": 4}), OptimizerOptions())
    assert _chosen(solution) == {"a": ("B", 2), "b": ("A", 2)}
    assert solution.unserved == {}


def test_priority_beats_regret():
    a = server("a", [cand("a", "A", 2, 1.0), cand("a", "B", 2, 1.5)], priority=1)
    b = server("b", [cand("b", "A", 2, 1.0), cand("b", "B", 2, 3.0)], priority=2)
    solution = solve_greedy(problem([a, b], {"A": 2, "B": 4}), OptimizerOptions())
    assert _chosen(solution) == {"a": ("A", 2), "b": ("B", 2)}


def test_equal_regret_and_value_ties_break_by_name():
    a = server("a", [cand("a", "A", 2, 1.0), cand("a", "B", 2, 2.0)])
    b = server("b", [cand("b", "A", 2, 1.0), cand("b", "B", 2, 2.0)])
    solution = solve_greedy(problem([b, a], {"A": 2, "B": 2}), OptimizerOptions())
    assert _chosen(solution) == {"a": ("A", 2), "b": ("B", 2)}


def _scarce() -> list:
    # capacity A 5: "big" (priority 1) needs 6, "one" and "two" (priority 2) need 3 each
    return [
        server("big", [cand("big", "A", 6, 1.0)], priority=1),
        server("one", [cand("one", "A", 3, 1.0)], priority=2),
        server("two", [cand("two", "A", 3, 1.0)], priority=2),
    ]


def test_saturation_none_leaves_unallocated():
    solution = solve_greedy(problem(_scarce(), {"A": 5}), OptimizerOptions())
    assert _chosen(solution) == {"one": ("A", 3)}
    assert set(solution.unserved) == {"big", "two"}


def test_priority_exhaustive_fills_in_priority_order():
    options = OptimizerOptions(saturation_policy="PriorityExhaustive")
    solution = solve_greedy(problem(_scarce(), {"A": 5}), options)
    # best effort for priority 1 runs before priority 2 is allocated (delayed_best_effort off)
    assert _chosen(solution) == {"big": ("A", 5)}
    assert {a.server: a.meets_targets for a in solution.assignments} == {"big": False}
    assert set(solution.unserved) == {"big", "one", "two"}


def test_delayed_best_effort_allocates_every_group_first():
    options = OptimizerOptions(saturation_policy="PriorityExhaustive", delayed_best_effort=True)
    solution = solve_greedy(problem(_scarce(), {"A": 5}), options)
    assert _chosen(solution) == {"one": ("A", 3), "big": ("A", 2)}


def test_round_robin_shares_one_replica_at_a_time():
    servers = [
        server("x", [cand("x", "A", 4, 1.0)], priority=1),
        server("y", [cand("y", "A", 4, 1.0)], priority=2),
        server("z", [cand("z", "A", 5, 1.0)], priority=2),
    ]
    options = OptimizerOptions(saturation_policy="RoundRobin", delayed_best_effort=True)
    solution = solve_greedy(problem(servers, {"A": 3}), options)
    # nobody fits; one replica each, in the order they were given up on
    assert _chosen(solution) == {"x": ("A", 1), "y": ("A", 1), "z": ("A", 1)}


def test_priority_round_robin_serves_groups_in_order():
    servers = [
        server("x", [cand("x", "A", 4, 1.0)], priority=1),
        server("w", [cand("w", "A", 4, 1.0)], priority=1),
        server("y", [cand("y", "A", 4, 1.0)], priority=2),
    ]
    options = OptimizerOptions(saturation_policy="PriorityRoundRobin", delayed_best_effort=True)
    solution = solve_greedy(problem(servers, {"A": 3}), options)
    assert sorted(_chosen(solution).items()) == [("w", ("A", 2)), ("x", ("A", 1))]
