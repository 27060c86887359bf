"""Benchmark: `fleetplan optimize` end to end on the synthetic fleets of `optimizer_scale`.

What the 1,000-server target is about: the whole `optimizer.api.optimize(spec)` call
(candidate generation with a fresh, cold generator, model building, the solve and plan
building with its predicted latencies), default queue model `batch-queue`, solver `milp`,
with `heterogeneous` off and on. The fleet is `optimizer_scale.fleet(size, seed)` with
the capacity `optimizer_scale.with_pressure` gives (computed once, not timed) written
into the spec, so `optimize` sees exactly the benchmark's problem.

Per size and mode it prints the median over `--repeat` runs (and the range) of:

- `optimize`: wall time of `optimize(spec)`, no JSON I/O, one process for all runs (a
  fresh `CandidateGenerator` each run, so no sizing is cached between runs);
- its parts from the plan's report: candidates, solve (pruning, model building, the
  MILP, best effort) and the rest (plan building: predicted latencies, documents);
- `CLI`: wall time of `fleetplan optimize FILE --no-timings -o OUT` as a subprocess,
  interpreter start-up, imports, JSON parsing and writing included, nothing subtracted
  (after one untimed run, so that bytecode is cached as in an installed package).

Candidate sizing uses every core (`optimizer.fork_map`); run with `taskset -c 0` for
the one-core figures.

Run: `.venv/bin/python bench/optimize_end_to_end.py [--sizes 1000] [--repeat 5]
[--seed 1] [--capacity-scale 1.0] [--no-cli]`.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from optimizer_scale import fleet, with_pressure  # noqa: E402

from optimizer.api import make_generator, optimize  # noqa: E402
from specs.documents import FleetSpec  # noqa: E402


def bench_spec(size: int, seed: int = 1, scale: float = 1.0, heterogeneous: bool = False,
               gap: float = 1e-3) -> FleetSpec:
    """The benchmark fleet with its pressured capacity in the spec (`optimize` input)."""
    spec = fleet(size, seed)
    problem = make_generator(spec, queue_model="batch-queue").problem(spec, predict=False)
    capacity = dict(with_pressure(problem, scale).capacity)
    options = spec.optimizer.model_copy(
        update={"mip_gap": gap, "heterogeneous": heterogeneous, "queue_model": "batch-queue",
                "solver": "milp"}
    )
    return spec.model_copy(update={"capacity": capacity, "optimizer": options})


def _stats(values: list[float]) -> str:
    return f"{statistics.median(values):.3f} ({min(values):.3f}-{max(values):.3f})"


def time_api(spec: FleetSpec, repeat: int) -> dict[str, list[float]]:
    """Wall time of `optimize(spec)` and its reported parts, per run."""
    out: dict[str, list[float]] = {"total": [], "candidates": [], "solve": [], "rest": []}
    for _ in range(repeat):
        start = time.perf_counter()
        plan = optimize(spec)
        total = time.perf_counter() - start
        report = plan.solver
        assert report is not None
        out["total"].append(total)
        out["candidates"].append(report.candidate_time_s)
        out["solve"].append(report.solve_time_s)
        out["rest"].append(total - report.candidate_time_s - report.solve_time_s)
    return out


def time_cli(spec: FleetSpec, repeat: int) -> list[float]:
    """Wall time of `fleetplan optimize FILE --no-timings -o OUT` (a subprocess), per run,
    after one untimed run that leaves the modules' bytecode cached (as an installed
    package has it; PYTHONDONTWRITEBYTECODE is dropped so that the cache is written)."""
    exe = Path(sys.executable).parent / "fleetplan"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    times = []
    with tempfile.TemporaryDirectory() as tmp:
        path, out = Path(tmp) / "fleet.json", Path(tmp) / "plan.json"
        path.write_text(json.dumps(spec.model_dump(mode="json")))
        command = [str(exe), "optimize", str(path), "--no-timings", "-o", str(out)]
        for run in range(repeat + 1):
            start = time.perf_counter()
            subprocess.run(command, check=True, stdout=subprocess.DEVNULL, env=env)
            if run:
                times.append(time.perf_counter() - start)
    return times


def main() -> None:
    """Command line: `--sizes 1000 --repeat 5 --seed 1 --capacity-scale 1 [--no-cli]`."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--capacity-scale", type=float, default=1.0)
    parser.add_argument("--no-cli", action="store_true", help="skip the subprocess timing")
    args = parser.parse_args()
    print(f"median (min-max) of {args.repeat} runs, seconds")
    print()
    print("| servers | heterogeneous | optimize | candidates | solve | plan building | CLI |")
    print("|---:|---|---:|---:|---:|---:|---:|")
    for size in [int(s) for s in args.sizes.split(",")]:
        for het in (False, True):
            spec = bench_spec(size, args.seed, args.capacity_scale, het)
            api = time_api(spec, args.repeat)
            cli = "-" if args.no_cli else _stats(time_cli(spec, args.repeat))
            print(
                f"| {size} | {'on' if het else 'off'} | {_stats(api['total'])} "
                f"| {_stats(api['candidates'])} | {_stats(api['solve'])} "
                f"| {_stats(api['rest'])} | {cli} |"
            )
            sys.stdout.flush()


if __name__ == "__main__":
    main()
