"""The standard evaluation set: every built-in scenario, every policy, one simulated hour.

    .venv/bin/python bench/evaluate.py [--out docs/evaluation] [--scenarios a,b]
                                       [--duration S] [--data-dir DIR] [--validate]

Writes `OUT/<scenario>/{summary.json,report.md,*.png}` (what `fleetplan evaluate` writes)
and prints, per scenario, one row per policy with its cost, SLO attainment, p99 TTFT and
ITL, scaling actions and simulation wall time, then fleetplan's goals. The figures in
`docs/evaluation.md` come from this script; it is a benchmark, not a test (the test
suite runs a reduced synthetic scenario).
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

# bench/tuner.py would shadow the tuner package when this file is run as a script
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

from controller.commands.evaluate import default_cache_dir, default_data_dir  # noqa: E402
from controller.evaluation.report import evaluate  # noqa: E402
from controller.evaluation.scenario import builtin_scenarios, load_scenario  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs/evaluation"))
    parser.add_argument("--scenarios", help="comma-separated (default: all built-in)")
    parser.add_argument("--duration", type=float, help="seconds of arrivals per scenario")
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--cache-dir", type=Path, default=None,
                        help="capacity tables kept between runs (default: the CLI's)")
    parser.add_argument("--policies", help="comma-separated subset of the policies")
    parser.add_argument("--validate", action="store_true",
                        help="add the queue-model validation on each scenario's hardware")
    args = parser.parse_args()
    names = args.scenarios.split(",") if args.scenarios else builtin_scenarios()
    data = args.data_dir or default_data_dir()
    print(f"# {platform.machine()} {platform.python_version()}, data {data}")
    for name in names:
        scenario = load_scenario(name)
        if args.duration:
            scenario = scenario.model_copy(update={"duration_s": args.duration})
        started = time.perf_counter()
        summary = evaluate(scenario, data, args.out / name, validation=args.validate,
                           progress=lambda line: print(line, file=sys.stderr, flush=True),
                           policies=args.policies.split(",") if args.policies else None,
                           cache_dir=args.cache_dir or default_cache_dir())
        print(f"\n## {name} ({time.perf_counter() - started:.0f} s)")
        print(f"{'policy':<16} {'cost/h':>8} {'SLO %':>7} {'TTFT p99':>10} {'ITL p99':>8} "
              f"{'actions':>7} {'wall s':>7}")
        for policy, row in summary["policies"].items():
            print(f"{policy:<16} {row['cost']:>8.2f} {100 * row['slo_attainment']:>7.2f} "
                  f"{row['ttft_p99_ms'] or 0:>10.0f} {row['itl_p99_ms'] or 0:>8.1f} "
                  f"{row['scaling_actions']:>7} {row['wall_s']:>7.1f}")
        for goal, item in summary["goals"].items():
            print(f"  {goal}: {item['value']} (goal {item['goal']}) "
                  f"{'met' if item['met'] else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
