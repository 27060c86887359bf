"""Benchmark: how the optimizer's solvers scale with fleet size (a benchmark, not a test).

Generates synthetic fleets of 10, 100, 1,000 and 10,000 servers over 20 accelerator
kinds (10 card types, each as a single card and as a 2- or 4-card unit), 6 models (each
profiled on 10 of the accelerators its weights fit) and 3 service classes, with mixed
capacity pressure: capacity per card type is a fixed
fraction (0.35 to 3) of what the unconstrained cheapest plan would use, so some types
are scarce, some tight and some ample. Half the servers have a current allocation, so
transition penalties matter. Everything is seeded: the same size gives the same fleet.

For each size it prints candidate-generation time (shared by the solvers) and, per
solver, solve time (model building included), cost per hour, servers fully served, the
MILP's own gap and the objective (cost plus transition penalty) relative to the LP
relaxation bound of the MILP's final cost problem (below 0 means fewer servers were
served, or capacity was ignored). The MILP runs with a 0.1% gap (`--gap`).

Run: `.venv/bin/python bench/optimizer_scale.py [--sizes 10,100,1000,10000] [--gap 0.001]
[--capacity-scale 0.7] [--seed 1] [--heterogeneous [--variant-cost-fraction F]]` (other
seeds give other fleets of the same kind; `--heterogeneous` lets the MILP split servers
across accelerator types, charging each extra variant F of one replica, default 0.25).
Prices: USD per card-hour in the spirit of ../shared/data/README.md (L4 0.81, A10G 1.00,
L40S 1.84, A100-40GB 3.67, A100-80GB 4.60, H100 8.22, one published AWS per-GPU table);
the others are illustrative. Profiles are scaled from the real H100 fits of
llama_3_1_8b and qwen_2_5_14b (inferno control-loop data); the rest is made up.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from optimizer.api import make_generator  # noqa: E402
from optimizer.problem import Problem, Solution  # noqa: E402
from optimizer.registry import get_solver  # noqa: E402
from specs.documents import FleetSpec  # noqa: E402

# card type: (price per card-hour, speed relative to H100, memory GB)
CARDS = {
    "L4": (0.81, 0.18, 24),
    "A10G": (1.00, 0.22, 24),
    "L40S": (1.84, 0.45, 48),
    "A100-40": (3.67, 0.55, 40),
    "A100-80": (4.60, 0.62, 80),
    "H100": (8.22, 1.0, 80),
    "H200": (9.80, 1.15, 141),
    "MI210": (2.40, 0.40, 64),
    "MI250": (3.20, 0.55, 128),
    "MI300X": (6.50, 1.05, 192),
}
# model: (alpha, beta, gamma on one H100, memory GB)
MODELS = {
    "llama_3_1_8b": (6.49, 0.0219, 4.96e-5, 20),
    "qwen_2_5_14b": (10.645, 0.04176, 5.77e-5, 34),
    "mistral_7b": (6.1, 0.0205, 4.7e-5, 18),
    "granite_20b": (13.0, 0.055, 7.0e-5, 48),
    "mixtral_8x7b": (15.5, 0.07, 9.0e-5, 100),
    "llama_3_1_70b": (24.0, 0.11, 1.4e-4, 150),
}
CLASSES = {"premium": (1, 400.0, 40.0), "standard": (2, 1000.0, 80.0), "batch": (3, 4000.0, 150.0)}
TOKENS = [(256, 128), (1024, 256), (2048, 512)]
PRESSURE = [0.35, 0.6, 0.9, 1.2, 3.0]
SOLVERS = ("milp", "greedy", "unlimited")
PROFILED = 10


def _accelerators() -> list[dict]:
    out = []
    for i, (card, (price, _, _)) in enumerate(CARDS.items()):
        size = 2 if i % 2 == 0 else 4
        out.append({"name": card, "card_type": card, "multiplicity": 1, "cost_per_hour": price})
        out.append(
            {
                "name": f"{size}x{card}",
                "card_type": card,
                "multiplicity": size,
                "cost_per_hour": round(price * size * 0.97, 4),
            }
        )
    return out


def _profiles(accelerators: list[dict]) -> list[dict]:
    """Each model is profiled on 10 of the accelerators its weights fit (fixed choice)."""
    out = []
    rng = random.Random(7)
    for model, (alpha, beta, gamma, mem) in MODELS.items():
        fitting = [
            a
            for a in accelerators
            if max(1, -(-mem // (CARDS[a["card_type"]][2] * a["multiplicity"]))) * a["multiplicity"]
            <= 8
        ]
        for acc in sorted(
            rng.sample(fitting, min(PROFILED, len(fitting))), key=lambda a: a["name"]
        ):
            _, speed, card_mem = CARDS[acc["card_type"]]
            cards = acc["multiplicity"]
            units = max(1, -(-mem // (card_mem * cards)))
            scale = speed * (units * cards) ** 0.75
            out.append(
                {
                    "model": model,
                    "accelerator": acc["name"],
                    "units_per_replica": units,
                    "alpha_ms": round(alpha / scale, 5),
                    "beta_ms": round(beta / scale, 7),
                    "gamma_ms": round(gamma / scale, 10),
                    "max_batch": 256,
                }
            )
    return out


def fleet(size: int, seed: int = 1) -> FleetSpec:
    """A synthetic fleet of `size` servers (capacity set afterwards by `with_pressure`)."""
    rng = random.Random(seed * 100003 + size)
    accelerators = _accelerators()
    classes = [
        {
            "name": name,
            "priority": prio,
            "targets": [{"model": m, "ttft_ms": ttft, "itl_ms": itl} for m in MODELS],
        }
        for name, (prio, ttft, itl) in CLASSES.items()
    ]
    servers = []
    for i in range(size):
        model = rng.choice(list(MODELS))
        klass = rng.choices(list(CLASSES), weights=[2, 3, 5])[0]
        in_tokens, out_tokens = rng.choice(TOKENS)
        server = {
            "name": f"srv-{i:05d}",
            "model": model,
            "service_class": klass,
            "load": {
                "arrival_rate_rps": round(rng.lognormvariate(0.5, 1.0), 3),
                "in_tokens": in_tokens,
                "out_tokens": out_tokens,
            },
        }
        if rng.random() < 0.5:
            acc = rng.choice(accelerators)
            server["current"] = {"accelerator": acc["name"], "replicas": rng.randint(1, 6)}
        servers.append(server)
    return FleetSpec.model_validate(
        {
            "description": f"synthetic benchmark fleet, {size} servers, seed {seed}",
            "accelerators": accelerators,
            "profiles": _profiles(accelerators),
            "service_classes": classes,
            "servers": servers,
            "capacity": {card: 10**9 for card in CARDS},
        }
    )


def with_pressure(problem: Problem, scale: float = 1.0) -> Problem:
    """Capacity per type = scale x a pressure fraction x what the cheapest plan uses."""
    used: dict[str, int] = {}
    for s in problem.placeable():
        c = s.candidates[0]
        used[c.card_type] = used.get(c.card_type, 0) + c.cards
    capacity = {
        card: int(used.get(card, 8) * PRESSURE[i % len(PRESSURE)] * scale)
        for i, card in enumerate(CARDS)
    }
    return Problem(problem.servers, capacity, problem.transition_factor)


def _row(size: int, name: str, seconds: float, solution: Solution, lp: float | None, n: int) -> str:
    cost = sum(a.cost for a in solution.assignments)
    served = sum(1 for a in solution.assignments if a.meets_targets)
    gap = f"{100 * solution.gap:.3f}%" if solution.gap is not None else "-"
    rel = (
        f"{100 * (solution.objective / lp - 1):+.3f}%"
        if lp and solution.objective is not None
        else "-"
    )
    return (
        f"| {size} | {name} | {seconds:.3f} | {cost:.2f} | {served}/{n} "
        f"| {solution.status} | {gap} | {rel} |"
    )


def run(sizes: list[int], gap: float, scale: float = 1.0, seed: int = 1,
        split: dict[str, object] | None = None) -> None:
    """Print the benchmark table (markdown); `split`: heterogeneous-mode options."""
    print("| servers | solver | time s | cost/h | fully served | status | MILP gap | vs LP bound |")
    print("|---:|---|---:|---:|---:|---|---:|---:|")
    for size in sizes:
        spec = fleet(size, seed)
        options = spec.optimizer.model_copy(update={"mip_gap": gap, **(split or {})})
        generator = make_generator(spec, queue_model="batch-queue")
        start = time.perf_counter()
        problem = with_pressure(generator.problem(spec, predict=False), scale)
        candidate_s = time.perf_counter() - start
        n = len(problem.placeable())
        columns = sum(len(s.candidates) for s in problem.placeable())
        print(
            f"| {size} | (candidates) | {candidate_s:.3f} | | {columns} candidates, "
            f"{generator.distinct_sizings} distinct sizings | | | |"
        )
        results = {}
        for name in SOLVERS:
            start = time.perf_counter()
            results[name] = (get_solver(name)(problem, options), time.perf_counter() - start)
        lp = results["milp"][0].lp_bound
        for name in SOLVERS:
            solution, seconds = results[name]
            print(_row(size, name, seconds, solution, lp, n))
        sys.stdout.flush()


def main() -> None:
    """Command line: `--sizes 10,100,1000,10000 --gap 0.001 --capacity-scale 1 --seed 1`."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10,100,1000,10000")
    parser.add_argument("--gap", type=float, default=1e-3, help="MILP relative gap (default 0.1%%)")
    parser.add_argument(
        "--capacity-scale",
        type=float,
        default=1.0,
        help="multiply every capacity (below 1: servers must be left out)",
    )
    parser.add_argument("--seed", type=int, default=1, help="fleet seed (default 1)")
    parser.add_argument("--heterogeneous", action="store_true",
                        help="let the MILP split servers across accelerator types")
    parser.add_argument("--variant-cost-fraction", type=float, default=0.25,
                        help="with --heterogeneous: charge per extra variant (default 0.25)")
    args = parser.parse_args()
    split = ({"heterogeneous": True, "variant_cost_fraction": args.variant_cost_fraction}
             if args.heterogeneous else None)
    run([int(s) for s in args.sizes.split(",")], args.gap, args.capacity_scale, args.seed,
        split)


if __name__ == "__main__":
    main()
