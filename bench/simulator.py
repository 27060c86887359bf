"""Speed of the simulator: one hour of the Azure 2023 conversation trace driven by the real
control loop (a script, not a test).

    .venv/bin/python bench/simulator.py [--duration-s 3600] [--period-s 30] [--step]
        [--noise-cv 0] [--sample-s 1] [--itl-ms 7.2] [--ttft-ms 200] [--profile N]

The fleet is specs/examples/h100-vllm.json reduced to its premium-llama server
(llama_3_1_8b on H100), with targets tightened to ITL 7.2 ms and TTFT 200 ms so the trace
(about 5.5 req/s, 1,155 prompt and 211 output tokens on average) needs a few replicas: the
optimiser's plan for the trace's mean load (3 replicas, max batch 7) is the initial fleet
(the loop then moves it between 3 and 6). `--itl-ms 30 --ttft-ms 1000` (the example's own
targets) gives one replica with large batches instead. `ControlLoop` ticks every
`--period-s` in virtual time (tuner off), as in tests/simulator/test_cluster.py. Printed:
requests, finished, engine iterations, ticks, wall time (all of it after reading the
trace, and the part spent in the loop's ticks), virtual seconds per wall second, mean
TTFT and ITL.

`--step` runs every iteration as its own event (no fused decode runs), the reference the
fused runs must agree with; `--profile N` prints the N most expensive functions (cProfile,
cumulative). Reads ../shared/data/azure2023/AzureLLMInferenceTrace_conv.csv and exits,
naming the path, when it is missing.

To extend: another scenario is another `fleet()`-like function and a flag choosing it.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import platform
import pstats
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from controller.config import LoopOptions  # noqa: E402
from controller.loop import ControlLoop, LoopParts  # noqa: E402
from optimizer.api import optimize  # noqa: E402
from simulator.cluster import SimCluster, SimConfig  # noqa: E402
from simulator.records import SimRequest  # noqa: E402
from specs.clock import FakeClock  # noqa: E402
from specs.documents import FleetSpec, Load  # noqa: E402
from specs.loading import load_fleet  # noqa: E402
from workloads.traces import read_azure  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TRACE = ROOT.parent / "shared" / "data" / "azure2023" / "AzureLLMInferenceTrace_conv.csv"
EXAMPLE = ROOT / "specs" / "examples" / "h100-vllm.json"
SERVER = "premium-llama"


def fleet(rate_rps: float, in_tokens: float, out_tokens: float, itl_ms: float = 7.2,
          ttft_ms: float = 200.0) -> FleetSpec:
    """The premium-llama server alone, loaded like the trace, with (tight) targets."""
    spec = load_fleet(EXAMPLE).spec
    load = Load(arrival_rate_rps=rate_rps, in_tokens=in_tokens, out_tokens=out_tokens)
    servers = [s.model_copy(update={"load": load}) for s in spec.servers if s.name == SERVER]
    classes = [c.model_copy(update={"targets": [
        t.model_copy(update={"itl_ms": itl_ms, "ttft_ms": ttft_ms}) for t in c.targets]})
        for c in spec.service_classes]
    return spec.model_copy(update={"servers": servers, "service_classes": classes})


@dataclass
class Result:
    requests: int
    finished: int
    iterations: int
    ticks: int
    wall_s: float
    loop_s: float
    ttft_ms: float
    itl_ms: float
    replicas: int


def run(duration_s: float, period_s: float, config: SimConfig,
        targets: tuple[float, float] = (7.2, 200.0)) -> Result:
    """Replay the trace for `duration_s` with the loop ticking every `period_s`."""
    trace = [r for r in read_azure(TRACE) if r.time_s < duration_s]
    spec = fleet(len(trace) / duration_s, float(np.mean([r.prompt_tokens for r in trace])),
                 float(np.mean([r.output_tokens for r in trace])), *targets)
    plan = optimize(spec, timer=None)
    initial = {(a.server, v.accelerator): v.replicas for a in plan.allocations
               for v in a.variants}
    start = time.perf_counter()
    cluster = SimCluster(spec, config, initial=initial)
    cluster.submit(SimRequest(r.time_s, SERVER, r.prompt_tokens, r.output_tokens) for r in trace)
    clock = FakeClock(0.0)
    loop = ControlLoop(LoopParts(spec=spec, metrics=cluster, actuator=cluster, clock=clock),
                       LoopOptions(period_s=period_s, startup_s=config.startup_s, tune=False))
    ticks, loop_s, t = 0, 0.0, period_s
    while t <= duration_s + 1e-9:
        clock.set(t)
        cluster.advance_to(t)
        tick_start = time.perf_counter()
        loop.tick(t)
        loop_s += time.perf_counter() - tick_start
        ticks += 1
        t += period_s
    wall = time.perf_counter() - start
    return summarise(cluster, len(trace), ticks, wall, loop_s)


def summarise(cluster: SimCluster, requests: int, ticks: int, wall: float,
              loop_s: float) -> Result:
    done = [r for r in cluster.records if r.finish_s is not None]
    itls = [r.itl_s for r in done if r.itl_s is not None]
    replicas = [*cluster.replicas.values(), *cluster.retired]
    return Result(requests, len(done), sum(r.engine.stats.iterations for r in replicas), ticks,
                  wall, loop_s, 1000.0 * float(np.mean([r.ttft_s for r in done])),
                  1000.0 * float(np.mean(itls)), len(cluster.replicas))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration-s", type=float, default=3600.0)
    parser.add_argument("--period-s", type=float, default=30.0)
    parser.add_argument("--step", action="store_true", help="one event per iteration")
    parser.add_argument("--noise-cv", type=float, default=0.0)
    parser.add_argument("--sample-s", type=float, default=SimConfig.sample_s,
                        help="gauge sampling grid, s")
    parser.add_argument("--itl-ms", type=float, default=7.2, help="ITL target, ms")
    parser.add_argument("--ttft-ms", type=float, default=200.0, help="TTFT target, ms")
    parser.add_argument("--profile", type=int, default=0, metavar="N")
    args = parser.parse_args()
    if not TRACE.is_file():
        sys.exit(f"skipped: the trace {TRACE} is missing")
    config = SimConfig(fuse=not args.step, noise_cv=args.noise_cv, sample_s=args.sample_s)
    print(f"python {platform.python_version()}, numpy {np.__version__}, "
          f"{platform.machine()}, {os.cpu_count()} CPUs")
    profiler = cProfile.Profile() if args.profile else None
    if profiler:
        profiler.enable()
    result = run(args.duration_s, args.period_s, config, (args.itl_ms, args.ttft_ms))
    if profiler:
        profiler.disable()
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(args.profile)
    print(f"mode: {'step by step' if args.step else 'fused decode runs'}, noise cv "
          f"{args.noise_cv}, gauge samples every {args.sample_s} s")
    print(f"requests {result.requests}, finished {result.finished}, iterations "
          f"{result.iterations:,}, ticks {result.ticks}, replicas at the end {result.replicas}")
    print(f"wall {result.wall_s:.2f} s (loop ticks {result.loop_s:.2f} s), "
          f"{args.duration_s / result.wall_s:,.0f} virtual s per wall s")
    print(f"mean TTFT {result.ttft_ms:.1f} ms, mean ITL {result.itl_ms:.3f} ms")


if __name__ == "__main__":
    main()
