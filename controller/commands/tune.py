"""`fleetplan tune OBSERVATIONS.jsonl [--spec PATH]`: calibrate profiles offline.

Reads recorded measurements (one JSON object per line, one replica each; fields in
`tuner.records`), and runs the tuner over them in order: pairs with a profile in `--spec`
start from it (warm-up, then the gated filter); pairs without one are fitted by least
squares on their first observations (or on all of them, when there are fewer) and then
filtered. Prints `{"profiles": [...]}`: per (model, accelerator) the tuned alpha, beta,
gamma (ms), their relative uncertainty, where the estimate started, the counters, and the
mean absolute error of the tuned profile's TTFT and ITL predictions over the pair's
measurements. `--output-spec` writes the spec with the tuned estimates merged in (as they
are: the loop's bound on how far merged parameters move per tick is not applied offline).

This is what inferno's separate model-trainer does, as a command of the same tool.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from queue_models.registry import DEFAULT_QUEUE_MODEL, queue_model_names
from specs.documents import FleetSpec, Profile
from specs.errors import SpecError
from specs.loading import load_fleet, write_json_atomic
from tuner import MeasurementNoise, Observation, Tuner, TunerConfig, TunerState
from tuner.merge import TunedProfile, merge_profiles, tuned_profiles
from tuner.records import parse_records


def _relative(text: str) -> float:
    value = float(text)
    if not 0 < value < 10:
        raise argparse.ArgumentTypeError(f"expected a relative noise in (0, 10), got {text}")
    return value


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `tune` sub-command."""
    noise = MeasurementNoise()
    parser = subparsers.add_parser(
        "tune", help="calibrate profiles (alpha, beta, gamma) from recorded measurements",
        description="Fit and filter profiles from measurements, one JSON object per line: "
        "model, accelerator, arrival_rate_rpm (per replica), in_tokens, out_tokens, "
        "max_batch, ttft_ms, itl_ms, and optionally running (mean requests in the batch) "
        "and max_queue. Prints {\"profiles\": [...]} as JSON.",
    )
    parser.add_argument("observations", help="measurements file (JSON lines)")
    parser.add_argument("--spec", help="fleet spec whose profiles are the starting points")
    parser.add_argument("--queue-model", choices=queue_model_names(),
                        help="queue model (default: the spec's, else "
                        f"{DEFAULT_QUEUE_MODEL})")
    parser.add_argument("--ttft-noise", type=_relative, default=noise.ttft,
                        help=f"relative noise of mean TTFT (default {noise.ttft})")
    parser.add_argument("--itl-noise", type=_relative, default=noise.itl,
                        help=f"relative noise of mean ITL (default {noise.itl})")
    parser.add_argument("--running-noise", type=_relative, default=noise.running,
                        help=f"relative noise of the mean running batch (default {noise.running})")
    parser.add_argument("--no-running", action="store_true",
                        help="ignore the running batch even where it is recorded")
    parser.add_argument("--output-spec", help="write the spec with tuned profiles merged in "
                        "(needs --spec)")
    parser.set_defaults(func=run)


def _config(args: argparse.Namespace, spec: FleetSpec | None) -> TunerConfig:
    queue_model = args.queue_model or (spec.optimizer.queue_model if spec else None)
    return TunerConfig(
        queue_model=queue_model or DEFAULT_QUEUE_MODEL,
        measurement_noise=MeasurementNoise(ttft=args.ttft_noise, itl=args.itl_noise,
                                           running=args.running_noise),
        use_running=not args.no_running,
    )


def _errors(tuner: Tuner, found: TunedProfile, observations: Sequence[Observation],
            ) -> dict[str, float | None]:
    params = np.array([found.alpha_ms, found.beta_ms, found.gamma_ms])
    ttft, itl = [], []
    for obs in observations:
        try:
            perf = tuner.observation_model.performance(params, obs)
        except ValueError:
            continue
        ttft.append(abs(perf.avg_ttft_ms / obs.ttft_ms - 1))
        itl.append(abs(perf.avg_itl_ms / obs.itl_ms - 1))
    return {
        "ttft_error_pct": round(100 * float(np.mean(ttft)), 3) if ttft else None,
        "itl_error_pct": round(100 * float(np.mean(itl)), 3) if itl else None,
    }


def _profile_json(tuner: Tuner, found: TunedProfile, observations: Sequence[Observation],
                  ) -> dict[str, Any]:
    mine = [o for o in observations if o.key == found.key]
    return {
        "model": found.model, "accelerator": found.accelerator,
        "alpha": found.alpha_ms, "beta": found.beta_ms, "gamma": found.gamma_ms,
        "alpha_rel_std": found.alpha_rel_std, "beta_rel_std": found.beta_rel_std,
        "gamma_rel_std": found.gamma_rel_std,
        "start": "spec" if found.origin == "configured" else "fit",
        "phase": found.phase, "observations": len(mine), "accepted": found.accepted,
        "rejected": found.rejected, "resets": found.resets, "max_batch": found.max_batch,
        **_errors(tuner, found, mine),
    }


def calibrate(observations: Sequence[Observation], profiles: Sequence[Profile],
              config: TunerConfig) -> tuple[Tuner, TunerState]:
    """Run the tuner over the observations in order, then fit what is still pending."""
    tuner = Tuner(config)
    state, _ = tuner.update(TunerState(), observations, profiles)
    state, _ = tuner.fit_pending(state)
    return tuner, state


def run(args: argparse.Namespace) -> int:
    """Calibrate and print the profiles."""
    if args.output_spec and not args.spec:
        raise SpecError("--output-spec needs --spec", hint="give the spec to merge into")
    spec = load_fleet(args.spec).spec if args.spec else None
    path = Path(args.observations)
    if not path.is_file():
        raise SpecError("no such measurements file", file=path)
    with path.open(encoding="utf-8") as handle:
        observations = parse_records(handle, path)
    tuner, state = calibrate(observations, spec.profiles if spec else [], _config(args, spec))
    document = {"profiles": [_profile_json(tuner, found, observations)
                             for found in tuned_profiles(state)]}
    if args.output_spec and spec is not None:
        write_json_atomic(args.output_spec, merge_profiles(spec, state, estimates=True))
    print(json.dumps(document, indent=2))
    return 0
