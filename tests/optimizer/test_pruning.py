"""Dominance pruning keeps the optimum (brute force on small random problems)."""

from __future__ import annotations

import itertools
import random

import pytest

from optimizer.pruning import ample_types, prune
from tests.optimizer.factory import cand, problem, server


def _random(rng: random.Random):
    servers = []
    for i in range(rng.randint(2, 5)):
        name = f"s{i}"
        cands = [
            cand(
                name,
                f"{t}{k}",
                rng.randint(1, 4),
                rng.choice([1.0, 1.5, 2.0]),
                card_type=t,
                cards_per_replica=rng.choice([1, 2]),
            )
            for t in rng.sample("ABC", rng.randint(1, 3))
            for k in range(rng.randint(1, 2))
        ]
        servers.append(server(name, cands, priority=rng.choice([1, 2])))
    return problem(servers, {t: rng.randint(0, 12) for t in "ABC"})


def _best(p, options_of) -> tuple[tuple[float, ...], float]:
    """Lexicographic (served per priority, -value) optimum over the given candidate sets."""
    best = None
    for choice in itertools.product(*[(None, *options_of(s)) for s in p.servers]):
        used: dict[str, int] = {}
        for c in choice:
            if c is not None:
                used[c.card_type] = used.get(c.card_type, 0) + c.cards
        if any(n > p.capacity.get(t, 0) for t, n in used.items()):
            continue
        served = tuple(
            -sum(1 for s, c in zip(p.servers, choice, strict=True) if c and s.priority == q)
            for q in (1, 2)
        )
        key = (served, round(sum(c.value for c in choice if c), 9))
        best = key if best is None or key < best else best
    return best


@pytest.mark.parametrize("seed", range(30))
def test_pruning_keeps_the_lexicographic_optimum(seed):
    p = _random(random.Random(seed))
    pruned = prune(p.servers, p.capacity)

    def kept(s):
        return (pruned.free[s.server],) if s.server in pruned.free else pruned.kept[s.server]

    assert _best(p, kept) == _best(p, lambda s: s.candidates)


def test_ample_type_leaves_one_free_candidate():
    s = server(
        "s", [cand("s", "cheap", 2, 1.0, card_type="T"), cand("s", "dear", 1, 5.0, card_type="T")]
    )
    t = server("t", [cand("t", "cheap", 1, 1.0, card_type="T")])
    p = problem([s, t], {"T": 3})
    assert ample_types(p.servers, p.capacity) == frozenset({"T"})
    pruned = prune(p.servers, p.capacity)
    assert {k: c.accelerator for k, c in pruned.free.items()} == {"s": "cheap", "t": "cheap"}
