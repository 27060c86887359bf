"""fleetplan's cost against attainment as its loop settings change, per scenario.

    .venv/bin/python bench/loop_sweep.py --scenario azure-code \\
        --set scale_down_delay_s=150 --set scale_down_delay_s=300,rate_margin_z=1 [...]

Each `--set` is one run of the `fleetplan` policy with the scenario's `loop` settings
(`controller.evaluation.scenario.LoopSettings`: window_s, scale_down_delay_s,
forecast_half_life_s, rate_margin_z) changed as given (an empty `--set ""` runs the
scenario as it is); every run replays the same arrivals with the same capacity tables.
Prints one line per run: the settings, cost per hour, per-request SLO attainment and
misses. The trade-off tables in docs/evaluation.md come from this script.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

# bench/tuner.py would shadow the tuner package when this file is run as a script
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

from controller.commands.evaluate import default_cache_dir, default_data_dir  # noqa: E402
from controller.evaluation.calibration import make_sizer  # noqa: E402
from controller.evaluation.metrics import mean_cost, meets, targets_by_server  # noqa: E402
from controller.evaluation.run import run_policy, timing_laws  # noqa: E402
from controller.evaluation.scenario import Scenario, load_scenario, make_requests  # noqa: E402
from controller.evaluation.sizing import RequestIndex  # noqa: E402


def with_loop(scenario: Scenario, setting: str) -> Scenario:
    """The scenario with `name=value,...` applied to its loop settings (validated)."""
    update: dict[str, float] = {}
    for part in filter(None, setting.split(",")):
        name, _, value = part.partition("=")
        if name not in type(scenario.loop).model_fields:
            raise SystemExit(f"--set {setting!r}: unknown loop setting {name!r}; known: "
                             f"{', '.join(type(scenario.loop).model_fields)}")
        update[name] = float(value)
    loop = type(scenario.loop).model_validate({**scenario.loop.model_dump(), **update})
    return scenario.model_copy(update={"loop": loop})


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", required=True)
    parser.add_argument("--set", action="append", dest="settings", default=[],
                        help="name=value[,name=value] of the scenario's loop settings")
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--cache-dir", type=Path, default=None)
    args = parser.parse_args()
    data = args.data_dir or default_data_dir()
    scenario = load_scenario(args.scenario)
    requests = make_requests(scenario, data)
    sizer = make_sizer(scenario, RequestIndex(requests), timing_laws(scenario, data),
                       args.cache_dir or default_cache_dir())
    targets = targets_by_server(scenario.fleet())
    for setting in args.settings or [""]:
        changed = with_loop(scenario, setting)
        run = run_policy(changed, "fleetplan", requests, changed.fleet(), data, sizer)
        misses = sum(not meets(r, *targets[r.server]) for r in run.records)
        print(f"{scenario.name} {setting or '(as is)':<45} cost "
              f"{mean_cost(run.samples, scenario.duration_s):8.2f}/h attainment "
              f"{100 * (1 - misses / len(run.records)):6.2f}% misses {misses}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
