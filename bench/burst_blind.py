"""What not foreseeing a scenario's bursts costs any policy: a burst-blind clairvoyant.

    .venv/bin/python bench/burst_blind.py [--scenario synthetic-bursts] [--cache-dir DIR]

The `clairvoyant` policy plans every period for the true peak rate until its next
replicas are ready. Its burst-blind twin plans for the same arrivals with every burst
of the scenario's synthetic sources thinned out (each arrival inside a burst is kept
with probability rate-without-burst / rate-with-burst, seeded, so outside the bursts it
sees exactly the run's arrivals); the simulated cluster still receives every arrival.
What it misses is what a policy that sees everything but the bursts coming misses,
without a standing reserve. Prints cost, attainment and misses per server and 2-minute
window for both. A benchmark, not a test; its numbers are in docs/evaluation.md.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

import numpy as np

# bench/tuner.py would shadow the tuner package when this file is run as a script
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

from controller.commands.evaluate import default_cache_dir, default_data_dir  # noqa: E402
from controller.evaluation.calibration import make_sizer  # noqa: E402
from controller.evaluation.metrics import mean_cost, meets, targets_by_server  # noqa: E402
from controller.evaluation.policies import POLICIES, Clairvoyant  # noqa: E402
from controller.evaluation.run import run_policy, timing_laws  # noqa: E402
from controller.evaluation.scenario import Scenario, load_scenario, make_requests  # noqa: E402
from controller.evaluation.sizing import RequestIndex  # noqa: E402
from simulator.records import SimRequest  # noqa: E402


def without_bursts(scenario: Scenario, requests: list[SimRequest], seed: int = 7,
                   ) -> list[SimRequest]:
    """`requests` with each synthetic source's bursts thinned away."""
    rng = np.random.default_rng(seed)
    sources = {w.server: w.synthetic for w in scenario.workloads if w.synthetic is not None}
    kept = []
    for r in requests:
        source = sources.get(r.server)
        if source is not None and source.bursts:
            calm = source.model_copy(update={"bursts": []})
            keep = calm.rate(r.time_s) / max(source.rate(r.time_s), 1e-12)
            if keep < 1.0 and rng.random() >= keep:
                continue
        kept.append(r)
    return kept


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", default="synthetic-bursts")
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--cache-dir", type=Path, default=None)
    args = parser.parse_args()
    data = args.data_dir or default_data_dir()
    scenario = load_scenario(args.scenario)
    requests = make_requests(scenario, data)
    calm = without_bursts(scenario, requests)
    blind = RequestIndex(calm)
    POLICIES.register("clairvoyant_burst_blind", lambda: Clairvoyant(foresight=blind))
    sizer = make_sizer(scenario, RequestIndex(requests), timing_laws(scenario, data),
                       args.cache_dir or default_cache_dir())
    targets = targets_by_server(scenario.fleet())
    print(f"{scenario.name}: {len(requests)} requests, {len(requests) - len(calm)} "
          "of them in bursts beyond the calm rate (thinned from the blind policy's view)")
    for name in ("clairvoyant", "clairvoyant_burst_blind"):
        run = run_policy(scenario, name, requests, scenario.fleet(), data, sizer)
        missed = [r for r in run.records if not meets(r, *targets[r.server])]
        windows = Counter((r.server, int(r.arrival_s // 120) * 2) for r in missed)
        worst = ", ".join(f"{s} min {m}-{m + 2}: {n}" for (s, m), n in sorted(windows.items())
                          if n > 3)
        print(f"{name}: cost {mean_cost(run.samples, scenario.duration_s):.2f}/h, "
              f"attainment {100 * (1 - len(missed) / len(run.records)):.2f}% "
              f"({len(missed)} misses); windows with > 3 misses: {worst or 'none'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
