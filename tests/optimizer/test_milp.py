"""The MILP solver on hand-made candidates: priorities proven by brute force, splits, status."""

from __future__ import annotations

import itertools
import random

import numpy as np
import pytest

from optimizer.greedy import solve_greedy
from optimizer.milp import quiet_stdout, solve_milp
from optimizer.problem import Problem
from specs.documents import OptimizerOptions
from tests.optimizer.factory import cand, problem, server

WEIGHT_PER_SERVER = 1e-3  # served load counts demand + 1e-3 per server (zero-load servers)


def _random_problem(rng: random.Random) -> Problem:
    servers = []
    for i in range(rng.randint(3, 6)):
        name = f"s{i}"
        accs = rng.sample(["A", "B", "C"], rng.randint(1, 3))
        cands = [
            cand(
                name,
                a,
                rng.randint(1, 4),
                rng.choice([1.0, 2.0, 3.5]),
                cards_per_replica=rng.choice([1, 2]),
            )
            for a in accs
        ]
        servers.append(
            server(name, cands, priority=rng.choice([1, 2, 3]), demand=rng.choice([1.0, 2.0, 5.0]))
        )
    capacity = {t: rng.randint(0, 9) for t in "ABC"}
    return problem(servers, capacity)


def _brute_force(p: Problem) -> tuple[tuple[float, ...], float]:
    """Lexicographically best served load per priority, then least value (exhaustive)."""
    servers = p.servers
    priorities = sorted({s.priority for s in servers})
    best: tuple[tuple[float, ...], float] | None = None
    for choice in itertools.product(*[(None, *s.candidates) for s in servers]):
        used: dict[str, int] = {}
        for c in choice:
            if c is not None:
                used[c.card_type] = used.get(c.card_type, 0) + c.cards
        if any(n > p.capacity.get(t, 0) for t, n in used.items()):
            continue
        served = tuple(
            -round(
                sum(
                    s.demand_rps + WEIGHT_PER_SERVER
                    for s, c in zip(servers, choice, strict=True)
                    if c and s.priority == q
                ),
                9,
            )
            for q in priorities
        )
        value = sum(c.value for c in choice if c is not None)
        if best is None or (served, value) < (best[0], best[1] - 1e-9):
            best = (served, value)
    assert best is not None
    return best


def _served(p: Problem, solution) -> tuple[float, ...]:
    full = {a.server for a in solution.assignments if a.meets_targets}
    priorities = sorted({s.priority for s in p.servers})
    return tuple(
        -round(
            sum(
                s.demand_rps + WEIGHT_PER_SERVER
                for s in p.servers
                if s.server in full and s.priority == q
            ),
            9,
        )
        for q in priorities
    )


@pytest.mark.parametrize("seed", range(40))
def test_lexicographic_priorities_match_brute_force(seed):
    p = _random_problem(random.Random(seed))
    solution = solve_milp(p, OptimizerOptions(mip_gap=0.0))
    served, value = _brute_force(p)
    assert _served(p, solution) == served
    assert solution.objective == pytest.approx(value, abs=1e-6)
    assert solution.status == "optimal"


def test_higher_priority_served_fully_while_greedy_and_milp_share_the_rest_differently():
    # A is scarce (6 cards). Premium runs on 4 A (cheapest) or 3 B; two free servers need 2 A each.
    premium = server(
        "premium",
        [cand("premium", "A", 4, 1.0), cand("premium", "B", 3, 2.0)],
        priority=1,
        demand=4,
    )
    f1 = server("free1", [cand("free1", "A", 2, 1.0)], priority=2, demand=2)
    f2 = server("free2", [cand("free2", "A", 2, 1.0)], priority=2, demand=2)
    p = problem([premium, f1, f2], {"A": 6, "B": 3})
    milp = solve_milp(p, OptimizerOptions())
    greedy = solve_greedy(p, OptimizerOptions())
    pick = lambda s: {a.server: a.variants[0].candidate.accelerator for a in s.assignments}  # noqa: E731
    # greedy: premium takes its cheapest (A), free1 the last 2 A, free2 is left out
    assert pick(greedy) == {"premium": "A", "free1": "A"}
    assert set(greedy.unserved) == {"free2"}
    # milp: premium fully served on B, so both free servers fit on A
    assert pick(milp) == {"premium": "B", "free1": "A", "free2": "A"}
    assert milp.unserved == {} and milp.status == "optimal"


def test_heterogeneous_split_serves_what_one_type_alone_cannot():
    # 5 rps; A alone needs 5 replicas (only 3 cards), B alone needs 3 (only 2 cards)
    s = server("s", [cand("s", "A", 5, 1.0, rate=1.0), cand("s", "B", 3, 2.5, rate=2.0)], demand=5)
    p = problem([s], {"A": 3, "B": 2})
    single = solve_milp(p, OptimizerOptions())
    split = solve_milp(p, OptimizerOptions(heterogeneous=True))
    assert single.assignments == () and "s" in single.unserved
    (assignment,) = split.assignments
    counts = {v.candidate.accelerator: v.replicas for v in assignment.variants}
    assert counts == {"A": 3, "B": 1}
    assert sum(v.capacity_rps for v in assignment.variants) >= 5
    assert split.unserved == {}


def test_heterogeneous_split_is_cheaper_than_rounding_up_one_type():
    # 2.1 rps: 3 x A (rate 1) or 5 x C (rate 0.5) cost 3.0; 2 x A + 1 x C costs 2.6
    s = server(
        "s", [cand("s", "A", 3, 1.0, rate=1.0), cand("s", "C", 5, 0.6, rate=0.5)], demand=2.1
    )
    p = problem([s], {"A": 10, "C": 10})
    single = solve_milp(p, OptimizerOptions())
    split = solve_milp(p, OptimizerOptions(heterogeneous=True))
    assert single.objective == pytest.approx(3.0 * 1.1)
    # the split saves 0.44 against the variant charge of 0.25 x one A replica (the
    # cheapest candidate), which the objective includes
    assert split.objective == pytest.approx(2.6 * 1.1 + 0.25)
    assert "objective includes 1 variant charges (0.25/h" in split.detail


def test_cbc_backend_gives_the_same_answer():
    p = _random_problem(random.Random(7))
    highs = solve_milp(p, OptimizerOptions(mip_gap=0.0))
    cbc = solve_milp(p, OptimizerOptions(mip_gap=0.0, milp_backend="cbc"))
    assert cbc.objective == pytest.approx(highs.objective)
    assert cbc.detail.startswith("cbc")


def test_no_servers_is_an_empty_plan():
    solution = solve_milp(problem([], {"A": 1}), OptimizerOptions())
    assert solution.status == "empty" and solution.assignments == ()


def test_cheapest_fits_needs_no_solve():
    s = server("s", [cand("s", "A", 2, 1.0), cand("s", "B", 1, 5.0)])
    solution = solve_milp(problem([s], {"A": 2}), OptimizerOptions())
    assert solution.status == "optimal" and solution.gap == 0.0
    assert "without a MILP" in solution.detail


def test_quiet_stdout_silences_file_descriptor_one(capfd):
    import os

    with quiet_stdout():
        os.write(1, b"banner\n")
    os.write(1, b"after\n")
    assert capfd.readouterr().out == "after\n"


def _knapsack() -> Problem:
    """Three servers of 2 cards each and 5 cards: the LP serves two and a half."""
    servers = [server(f"s{i}", [cand(f"s{i}", "A", 2, 1.0 + i)], demand=2.0) for i in range(3)]
    return problem(servers, {"A": 5})


def test_falls_back_to_cbc_when_highs_fails(monkeypatch):
    import optimizer.milp.solver as milp_solver
    from optimizer.lexicographic import Result

    class BrokenHighs(milp_solver.HighsSession):
        def solve(self, *, relax, gap, time_limit, start, target=None):
            return Result("failed", np.zeros(self.n), 0.0, None, 0.0)

    monkeypatch.setattr(milp_solver, "HighsSession", BrokenHighs)
    solution = solve_milp(_knapsack(), OptimizerOptions(mip_gap=0.0))
    assert solution.detail.startswith("cbc (after highs:")
    # the two cheapest of three equal-load servers are served
    assert [a.server for a in solution.assignments] == ["s0", "s1"]
    assert list(solution.unserved) == ["s2"]


def test_a_stage_stopped_early_makes_the_plan_feasible_not_optimal(monkeypatch):
    import optimizer.milp.solver as milp_solver
    from optimizer.lexicographic import Result

    class TimedOut(milp_solver.HighsSession):
        def solve(self, *, relax, gap, time_limit, start, target=None):
            r = super().solve(
                relax=relax, gap=gap, time_limit=time_limit, start=start, target=target
            )
            if relax or r.status != "optimal":
                return r
            # stopped before its bound proved anything: no bound known
            return Result("feasible", r.values, r.objective, None, r.seconds)

    monkeypatch.setattr(milp_solver, "HighsSession", TimedOut)
    solution = solve_milp(_knapsack(), OptimizerOptions())
    assert solution.status == "feasible"
    assert "not proven optimal" in solution.detail
    assert [a.server for a in solution.assignments] == ["s0", "s1"]


def _packed(seed: int, n: int = 300) -> Problem:
    """Two priorities on four scarce card types: group 2 must be packed into what group 1
    leaves (the structure of the benchmark's scarce case, small)."""
    rng = random.Random(seed)
    price = {"A": 1.0, "B": 1.3, "C": 1.7, "D": 3.0}
    servers, need = [], {}
    for i in range(n):
        name = f"s{i:03d}"
        cands = []
        for t in rng.sample("ABCD", 3):
            k = rng.choice([1, 2])
            cost = round(price[t] * k * rng.uniform(0.8, 1.2), 3)
            cands.append(cand(name, t, rng.randint(1, 6), cost, cards_per_replica=k))
        s = server(name, cands, priority=rng.choice([1, 2]), demand=round(rng.uniform(0.5, 5), 2))
        servers.append(s)
        first = s.candidates[0]
        need[first.card_type] = need.get(first.card_type, 0) + first.cards
    return problem(servers, {t: int(need.get(t, 0) * 0.8) for t in "ABCD"})


@pytest.mark.parametrize("seed", range(3))
def test_gap_and_priorities_hold_against_an_exact_solve(seed, monkeypatch):
    import optimizer.lexicographic as lexicographic

    monkeypatch.setattr(lexicographic, "_SEARCH_SIZE", 8)  # the local search runs at this size
    p = _packed(seed)
    fast = solve_milp(p, OptimizerOptions(mip_gap=1e-3))
    exact = solve_milp(p, OptimizerOptions(mip_gap=0.0))
    assert fast.status == "optimal" and fast.gap is not None and fast.gap <= 1e-3
    assert fast.best_bound is not None and fast.best_bound <= fast.objective + 1e-9
    served, best = _served(p, fast), _served(p, exact)
    assert served[0] == best[0]  # group 1 never gives anything up
    assert -served[1] >= -best[1] * (1 - 1e-3) - 1e-9
    if served == best and {a.server for a in fast.assignments} == {
        a.server for a in exact.assignments
    }:
        # same servers served: the same cost problem, so the bound must hold against it
        assert fast.best_bound <= exact.objective + 1e-6 <= fast.objective + 2e-6


def test_a_milp_stopped_by_time_but_proven_within_the_gap_is_optimal(monkeypatch):
    import optimizer.milp.solver as milp_solver
    from optimizer.lexicographic import Result

    class TimedOut(milp_solver.HighsSession):
        def solve(self, *, relax, gap, time_limit, start, target=None):
            r = super().solve(
                relax=relax, gap=gap, time_limit=time_limit, start=start, target=target
            )
            if relax or r.status != "optimal":
                return r
            return Result("feasible", r.values, r.objective, r.bound, r.seconds)  # bound kept

    monkeypatch.setattr(milp_solver, "HighsSession", TimedOut)
    solution = solve_milp(_knapsack(), OptimizerOptions())
    assert solution.status == "optimal" and solution.gap == 0.0


def test_a_failed_last_lp_keeps_the_served_plan_as_feasible_without_a_bound(monkeypatch):
    import optimizer.milp.solver as milp_solver
    from optimizer.lexicographic import Result

    class LateFailure(milp_solver.HighsSession):
        lps = 0

        def solve(self, *, relax, gap, time_limit, start, target=None):
            if relax:
                type(self).lps += 1
                if type(self).lps == 3:  # all-served attempt, served load, then cost: fails
                    return Result("failed", np.zeros(self.n), 0.0, None, 0.0)
            return super().solve(
                relax=relax, gap=gap, time_limit=time_limit, start=start, target=target
            )

    monkeypatch.setattr(milp_solver, "HighsSession", LateFailure)
    solution = solve_milp(_knapsack(), OptimizerOptions(mip_gap=0.0))
    assert solution.detail.startswith("highs,")  # no fallback to CBC was needed
    assert solution.status == "feasible" and solution.gap is None
    assert solution.lp_bound is None
    assert [a.server for a in solution.assignments] == ["s0", "s1"]


def _built(p: Problem):
    from optimizer.milp.model import Builder
    from optimizer.pruning import prune

    builder = Builder(p, prune(p.placeable(), p.capacity), heterogeneous=False)
    builder.build()
    return builder


def _served_weight(builder):
    form = builder.formulation()
    return form.weight[form.col_server]


def _row_values(builder, values):
    return [float(r.coef @ values[r.cols]) for r in builder.rows]


def test_greedy_start_is_a_feasible_point_of_the_model():
    from optimizer.greedy import greedy_placement
    from optimizer.milp.solver import greedy_start

    p = _packed(1)
    builder = _built(p)
    _, placed = greedy_placement(p.placeable(), p.capacity)
    start = greedy_start(builder, placed)
    assert start is not None and int(start.sum()) == len(placed)
    for row, value in zip(builder.rows, _row_values(builder, start), strict=True):
        assert row.lower - 1e-9 <= value <= row.upper + 1e-9


def test_lp_from_the_basis_of_a_plan_has_the_cold_lp_value():
    from optimizer.greedy import greedy_placement
    from optimizer.milp.backends import HighsSession
    from optimizer.milp.solver import greedy_start

    p = _packed(2)
    builder = _built(p)
    _, placed = greedy_placement(p.placeable(), p.capacity)
    start = greedy_start(builder, placed)
    basic, upper = builder.basis(start)
    # one basic variable per row: chosen columns, and the rows not at their upper bound
    assert int(basic.sum()) + int((~upper).sum()) == len(builder.rows)
    values = []
    for hint in (None, start):
        session = HighsSession(builder)
        session.set_objective(_served_weight(builder), maximize=True)
        values.append(session.solve(relax=True, gap=0.0, time_limit=10.0, start=hint).objective)
    assert values[0] > 0 and values[1] == pytest.approx(values[0], rel=1e-9)


def test_a_milp_stopped_at_once_does_not_stop_the_next_one():
    from optimizer.milp.backends import HighsSession

    builder = _built(_packed(0))
    session = HighsSession(builder)
    session.set_objective(_served_weight(builder), maximize=True)
    session.solve(relax=False, gap=0.0, time_limit=0.0, start=None)
    again = session.solve(relax=False, gap=1e-3, time_limit=10.0, start=None)
    assert again.status == "optimal"
