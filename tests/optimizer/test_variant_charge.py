"""The heterogeneous MILP's variant charge (`OptimizerOptions.variant_cost_fraction`):
a server is split only when the split saves more than the charge of its extra variants,
on both backends, checked against brute force."""

from __future__ import annotations

import itertools
import random

import pytest

from optimizer.milp import solve_milp
from optimizer.problem import Problem, ServerCandidates
from specs.documents import OptimizerOptions
from tests.optimizer.factory import cand, problem, server

FACTOR = 1.1  # no current allocation: every replica carries the transition factor


def _one_server() -> Problem:
    """1.7 rps: 2 x A (rate 1, 1.00/h) = 2.00/h, or 1 x A + 1 x B (rate 0.8, 0.85/h) =
    1.85/h (B alone needs 3 = 2.55/h). The split saves 0.15 x 1.1 = 0.165 in the
    objective; the charge is the fraction x one A replica (A is the cheapest candidate)."""
    s = server("s", [cand("s", "A", 2, 1.0, rate=1.0), cand("s", "B", 3, 0.85, rate=0.8)],
               demand=1.7)
    return problem([s], {"A": 10, "B": 10})


def _counts(solution) -> dict[str, int]:
    (assignment,) = solution.assignments
    return {v.candidate.accelerator: v.replicas for v in assignment.variants}


@pytest.mark.parametrize("backend", ["highs", "cbc"])
def test_the_single_variant_wins_when_the_charge_exceeds_the_split_saving(backend):
    options = OptimizerOptions(heterogeneous=True, milp_backend=backend, mip_gap=0.0,
                               variant_cost_fraction=0.25)
    solution = solve_milp(_one_server(), options)
    assert _counts(solution) == {"A": 2}
    assert solution.objective == pytest.approx(2.0 * FACTOR)
    assert "variant charges" not in solution.detail
    # CBC's MILP bound is not available through PuLP: it cannot prove a gap of 0
    assert solution.status == ("optimal" if backend == "highs" else "feasible")


@pytest.mark.parametrize("backend", ["highs", "cbc"])
@pytest.mark.parametrize("fraction", [0.0, 0.1])
def test_the_split_wins_when_it_saves_more_than_the_charge(backend, fraction):
    options = OptimizerOptions(heterogeneous=True, milp_backend=backend, mip_gap=0.0,
                               variant_cost_fraction=fraction)
    solution = solve_milp(_one_server(), options)
    assert _counts(solution) == {"A": 1, "B": 1}
    assert solution.objective == pytest.approx(1.85 * FACTOR + fraction * 1.0)
    assert solution.status == ("optimal" if backend == "highs" else "feasible")
    if fraction:
        assert "objective includes 1 variant charges (0.1/h" in solution.detail


def test_the_charge_does_not_change_single_type_plans():
    s = server("s", [cand("s", "A", 2, 1.0, rate=1.0), cand("s", "B", 3, 0.85, rate=0.8)],
               demand=1.7)
    p = problem([s], {"A": 1, "B": 10})  # one A card: the cheaper single type cannot fit
    free = solve_milp(p, OptimizerOptions(variant_cost_fraction=0.0))
    charged = solve_milp(p, OptimizerOptions(variant_cost_fraction=5.0))
    assert free == charged and _counts(charged) == {"B": 3}


def _random_split_problem(rng: random.Random) -> Problem:
    servers = []
    for i in range(2):
        name = f"s{i}"
        demand = rng.choice([1.5, 2.2, 3.1])
        cands = []
        for acc in rng.sample(["A", "B", "C"], rng.randint(2, 3)):
            rate = rng.choice([0.6, 1.0, 1.4])
            replicas = -int(-demand // rate)
            cands.append(cand(name, acc, replicas, rng.choice([0.5, 0.8, 1.0, 1.3]), rate=rate))
        servers.append(server(name, cands, demand=demand))
    return problem(servers, {t: rng.randint(3, 8) for t in "ABC"})


def _brute_force(p: Problem, fraction: float) -> float | None:
    """Least objective serving every server (None if impossible), exhaustively."""
    per_server = [_server_options(s, fraction) for s in p.servers]
    best = None
    for choice in itertools.product(*per_server):
        used: dict[str, int] = {}
        for _, cards in choice:
            for card_type, n in cards.items():
                used[card_type] = used.get(card_type, 0) + n
        if any(n > p.capacity.get(t, 0) for t, n in used.items()):
            continue
        value = sum(v for v, _ in choice)
        best = value if best is None else min(best, value)
    return best


def _server_options(s: ServerCandidates, fraction: float) -> list[tuple[float, dict[str, int]]]:
    charge = fraction * s.candidates[0].cost_per_replica
    out = []
    for counts in itertools.product(*[range(c.replicas + 1) for c in s.candidates]):
        rate = sum(n * c.max_rate_per_replica_rps for n, c in zip(counts, s.candidates,
                                                                  strict=True))
        if rate < s.demand_rps - 1e-9:
            continue
        opened = sum(1 for n in counts if n)
        value = sum(n * c.cost_per_replica * FACTOR
                    for n, c in zip(counts, s.candidates, strict=True))
        cards = {c.card_type: n * c.cards_per_replica
                 for n, c in zip(counts, s.candidates, strict=True) if n}
        out.append((value + charge * (opened - 1), cards))
    return out


@pytest.mark.parametrize("seed", range(12))
def test_split_objective_matches_brute_force_with_and_without_the_charge(seed):
    p = _random_split_problem(random.Random(seed))
    for fraction in (0.0, 0.25, 1.0):
        expected = _brute_force(p, fraction)
        if expected is None:
            pytest.skip("this draw cannot serve both servers")
        options = OptimizerOptions(heterogeneous=True, mip_gap=0.0,
                                   variant_cost_fraction=fraction)
        solution = solve_milp(p, options)
        assert solution.unserved == {}
        assert solution.objective == pytest.approx(expected, abs=1e-6), fraction
        assert solution.status == "optimal"
        assert solve_milp(p, options) == solution, "same input, same plan"


def _built_split(p: Problem, fraction: float):
    from optimizer.milp.model import Builder
    from optimizer.pruning import prune

    builder = Builder(p, prune(p.placeable(), p.capacity, heterogeneous=True),
                      heterogeneous=True, variant_cost_fraction=fraction)
    builder.build()
    return builder


def test_a_single_type_plan_is_a_feasible_start_of_the_split_model():
    from optimizer.milp.solver import greedy_start

    p = _random_split_problem(random.Random(5))
    single = solve_milp(p, OptimizerOptions(mip_gap=0.0))
    assert single.assignments
    for fraction in (0.0, 0.25):
        builder = _built_split(p, fraction)
        start = greedy_start(builder, list(single.assignments))
        assert start is not None
        for row in builder.rows:
            value = float(row.coef @ start[row.cols])
            assert row.lower - 1e-9 <= value <= row.upper + 1e-9
        objective = float(builder.formulation().cost @ start)
        assert objective == pytest.approx(single.objective)  # no split, no charge


def test_open_indicators_follow_the_replica_columns():
    builder = _built_split(_one_server(), 0.25)
    form = builder.formulation()
    names = [n for n, f in zip(builder.names, form.follows, strict=True) if f]
    assert names == ["y0_0", "y0_1"] and form.integer[form.follows].all()
    assert not _built_split(_one_server(), 0.0).formulation().follows.any()


def test_a_split_stage_starts_from_the_single_type_plan_without_rens(monkeypatch):
    import optimizer.milp.solver as milp_solver

    calls = []

    class Recording(milp_solver.HighsSession):
        def solve(self, *, relax, gap, time_limit, start, target=None):
            if self.builder.het:
                calls.append((relax, start is not None, target is not None))
            return super().solve(relax=relax, gap=gap, time_limit=time_limit, start=start,
                                 target=target)

    monkeypatch.setattr(milp_solver, "HighsSession", Recording)
    # two servers with a split LP (1.7 rps on rate-1 and rate-0.8 replicas), a card short
    # of serving both on A alone: the fully-served stage runs the split model
    servers = [server(name, [cand(name, "A", 2, 1.0, rate=1.0),
                             cand(name, "B", 3, 0.85, rate=0.8)], demand=1.7)
               for name in ("s0", "s1")]
    p = problem(servers, {"A": 3, "B": 10})
    solution = solve_milp(p, OptimizerOptions(heterogeneous=True, mip_gap=0.0))
    assert solution.unserved == {} and solution.objective == pytest.approx(
        (2.0 + 1.85) * FACTOR + 0.25)
    # the split model: its LP from the single-type plan, then the MILP from that plan;
    # no RENS sub-MILP (it would free both servers: the full MILP without a start)
    assert calls == [(True, True, False), (False, True, False)]


def test_split_models_are_solved_without_presolve_probing():
    from optimizer.milp.backends import HighsSession

    split = HighsSession(_built_split(_one_server(), 0.25))
    assert split.h.getOptionValue("presolve_rule_off")[1] == 1 << 15
    single = HighsSession(_built_single(_one_server()))
    assert single.h.getOptionValue("presolve_rule_off")[1] == 0


def _built_single(p: Problem):
    from optimizer.milp.model import Builder
    from optimizer.pruning import prune

    builder = Builder(p, prune(p.placeable(), p.capacity), heterogeneous=False)
    builder.build()
    return builder
