"""Benchmark of the tuner (a script, not a test).

Prints:
- updates per second of one filter, by phase: tracking (iterated EKF, 5 and 1
  Gauss-Newton iterations), warm-up (least-squares refit over the window so far), the
  initial fit of a pair without a profile (5 observations, 3 starts), and the GLR change
  check after two rejections;
- convergence curves: median and 90th percentile over 20 seeds of the largest relative
  error of alpha, beta, gamma after each update, from a profile 2x off (alpha x2,
  beta x0.5, gamma x2), observations from the queue model with 5% noise at operating
  points that vary per update (load 10-90% of the max rate, 128-4,096 input and 32-1,024
  output tokens, max batch 128); with and without the running-batch observation;
- re-convergence after a 1.5x step in alpha (after 30 updates at the old profile).

Run from the repository root:  .venv/bin/python bench/tuner.py
To extend: add a function printing one table and call it from `main`.
"""

from __future__ import annotations

import os
import platform
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import filterpy  # noqa: E402
import numpy as np  # noqa: E402
import scipy  # noqa: E402

from queue_models import get_queue_model  # noqa: E402
from specs.documents import Profile  # noqa: E402
from tuner import (  # noqa: E402
    MeasurementNoise,
    Observation,
    Tuner,
    TunerConfig,
    TunerState,
    tuned_profiles,
)
from tuner.synthetic import Truth, synthetic_observations  # noqa: E402

TRUTH = Truth("llama_3_1_8b", "H100", 6.49, 0.0219, 4.96e-5)
START = (2.0, 0.5, 2.0)
NOISE = 0.05
CONFIG = TunerConfig(measurement_noise=MeasurementNoise(ttft=NOISE, itl=NOISE, running=NOISE))
QUEUE = get_queue_model("batch-queue")
SEEDS = 20
MIN_SECONDS = 1.0


def profile(truth: Truth) -> Profile:
    return Profile(model=truth.model, accelerator=truth.accelerator, alpha_ms=truth.alpha_ms,
                   beta_ms=truth.beta_ms, gamma_ms=truth.gamma_ms, max_batch=128)


def worst_error(state: TunerState, truth: Truth) -> float:
    found = tuned_profiles(state)[0]
    return max(abs(found.alpha_ms / truth.alpha_ms - 1), abs(found.beta_ms / truth.beta_ms - 1),
               abs(found.gamma_ms / truth.gamma_ms - 1))


def per_second(step: Callable[[int], object], limit: int) -> float:
    """Calls of step(i) per second, for at least MIN_SECONDS or `limit` calls."""
    count, start = 0, time.perf_counter()
    while count < limit:
        step(count)
        count += 1
        if time.perf_counter() - start >= MIN_SECONDS:
            break
    return count / (time.perf_counter() - start)


def throughput() -> None:
    rng = np.random.default_rng(0)
    observations = synthetic_observations(TRUTH, QUEUE, rng, 400, noise=NOISE)
    print("Updates per second of one filter (batch-queue model, max batch 128)\n")
    print("| phase | updates/s | ms per update |")
    print("|---|---:|---:|")
    for label, iterations in (("tracking, iterated EKF (5 iterations)", 5),
                              ("tracking, plain EKF (1 iteration)", 1)):
        tuner = Tuner(CONFIG.model_copy(update={"iterations": iterations}))
        state, _ = tuner.update(TunerState(), observations[:30], [profile(TRUTH)])
        holder = [state]

        def track(i: int, tuner: Tuner = tuner, holder: list = holder) -> None:
            holder[0], _ = tuner.update(holder[0], [observations[30 + i % 370]])

        rate = per_second(track, 370)
        print(f"| {label} | {rate:,.0f} | {1000 / rate:.2f} |")
    tuner = Tuner(CONFIG)

    def warmup(i: int) -> None:
        tuner.update(TunerState(), observations[i % 50: i % 50 + 5], [profile(TRUTH)])

    rate = 5 * per_second(warmup, 100)
    print(f"| warm-up refit (mean over windows of 1-5) | {rate:,.0f} | {1000 / rate:.2f} |")

    def fit(i: int) -> None:
        tuner.update(TunerState(), observations[i % 50: i % 50 + 5])

    rate = per_second(fit, 50)
    print(f"| initial fit (5 observations, 3 starts) | {rate:,.1f} | {1000 / rate:.1f} |")
    base, _ = tuner.update(TunerState(), observations[:30], [profile(TRUTH)])
    changed = synthetic_observations(TRUTH.scaled(alpha=1.5), QUEUE, rng, 100, noise=NOISE)

    def reset(i: int) -> None:
        tuner.update(base, changed[2 * (i % 50): 2 * (i % 50) + 2])

    rate = per_second(reset, 50)
    print(f"| two rejections + GLR change check + refit | {rate:,.1f} | {1000 / rate:.1f} |")
    print()


def curve(config: TunerConfig, n: int, with_running: bool) -> np.ndarray:
    """errors[seed, update]."""
    errors = np.zeros((SEEDS, n))
    for seed in range(SEEDS):
        rng = np.random.default_rng(seed)
        observations: Sequence[Observation] = synthetic_observations(TRUTH, QUEUE, rng, n,
                                                                     noise=NOISE)
        if not with_running:
            observations = [o.model_copy(update={"running": None}) for o in observations]
        tuner, state = Tuner(config), TunerState()
        for i, obs in enumerate(observations):
            state, _ = tuner.update(state, [obs], [profile(TRUTH.scaled(*START))])
            errors[seed, i] = worst_error(state, TRUTH)
    return errors


def convergence() -> None:
    n = 20
    runs = {"TTFT, ITL, running": curve(CONFIG, n, True),
            "TTFT, ITL only": curve(CONFIG, n, False),
            "TTFT, ITL, running; plain EKF, no warm-up refit":
            curve(CONFIG.model_copy(update={"iterations": 1, "warmup_updates": 1}), n, True)}
    print(f"Convergence from (alpha, beta, gamma) x {START}, 5% noise, {SEEDS} seeds: largest "
          "relative error after each update, median / 90th percentile\n")
    print("| update | " + " | ".join(runs) + " |")
    print("|---:|" + "---:|" * len(runs))
    for i in (0, 1, 2, 3, 4, 5, 7, 9, 11, 14, 19):
        cells = [f"{np.median(e[:, i]):.3f} / {np.percentile(e[:, i], 90):.3f}"
                 for e in runs.values()]
        print(f"| {i + 1} | " + " | ".join(cells) + " |")
    for label, e in runs.items():
        within = np.mean(e[:, 14] < 0.10)
        print(f"\n{label}: {within:.0%} of seeds within 10% after 15 updates", end="")
    print("\n")


def step_change() -> None:
    changed = TRUTH.scaled(alpha=1.5)
    errors = np.zeros((SEEDS, 8))
    outcomes: list[str] = []
    for seed in range(SEEDS):
        rng = np.random.default_rng(seed)
        tuner = Tuner(CONFIG)
        state, _ = tuner.update(TunerState(), synthetic_observations(TRUTH, QUEUE, rng, 30,
                                                                     noise=NOISE),
                                [profile(TRUTH.scaled(*START))])
        for i, obs in enumerate(synthetic_observations(changed, QUEUE, rng, 8, noise=NOISE)):
            state, (report,) = tuner.update(state, [obs])
            errors[seed, i] = worst_error(state, changed)
            if seed == 0:
                outcomes.append(report.outcome)
    print("After a 1.5x step in alpha (30 updates at the old profile first): largest "
          "relative error to the new profile, median / 90th percentile\n")
    print("| update after the step | error | outcome (seed 0) |")
    print("|---:|---:|---|")
    for i in range(8):
        print(f"| {i + 1} | {np.median(errors[:, i]):.3f} / {np.percentile(errors[:, i], 90):.3f}"
              f" | {outcomes[i]} |")
    print(f"\n{np.mean(errors[:, 4] < 0.10):.0%} of seeds within 10% after 5 updates\n")


def main() -> None:
    print(f"python {platform.python_version()}, numpy {np.__version__}, scipy "
          f"{scipy.__version__}, filterpy {filterpy.__version__}, {platform.machine()}, "
          f"{os.cpu_count()} CPUs\n")
    throughput()
    convergence()
    step_change()


if __name__ == "__main__":
    main()
