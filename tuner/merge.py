"""Tuned profiles, and merging them into the spec the optimizer sees.

`tuned_profiles(state)` lists each filter's estimate in ms with its relative uncertainty
and counters. `merge_profiles(spec, state)` returns a new `FleetSpec` whose profiles carry
tuned alpha, beta and gamma: a configured profile keeps everything else (max batch,
token budget, units per replica) and takes the tuned parameters unless
`keep_configured=True`; a tuned pair the spec has no profile for is added (when the spec
knows its accelerator) with the largest max batch observed. The result is validated like
any spec.

Which parameters: by default (the control loop) each filter's served parameters
(`tuner.served`): only filters that have tracked are merged, never a warm-up estimate,
and what is merged moves at most `max_merged_step` per update and stays within
`bounds_factor` of the configured profile. With `estimates=True` (offline calibration,
`fleetplan tune --output-spec`) the estimates themselves are merged, of filters that track
or started from an initial fit (there is nothing better for those).

To extend: a policy for which estimates to trust (e.g. a maximum relative uncertainty) is
a predicate applied in `_merged`.
"""

from __future__ import annotations

from dataclasses import dataclass

from specs.documents import FleetSpec, Profile
from tuner.observation import ProfileKey
from tuner.state import FilterState, TunerState, Vector3


@dataclass(frozen=True)
class TunedProfile:
    """One filter's estimate in ms, with its uncertainty and history."""

    model: str
    accelerator: str
    alpha_ms: float
    beta_ms: float
    gamma_ms: float
    alpha_rel_std: float
    beta_rel_std: float
    gamma_rel_std: float
    origin: str
    phase: str
    updates: int
    accepted: int
    rejected: int
    resets: int
    max_batch: int

    @property
    def key(self) -> ProfileKey:
        """The (model, accelerator) pair."""
        return ProfileKey(self.model, self.accelerator)


def tuned_profile(state: FilterState) -> TunedProfile:
    """One filter as a `TunedProfile`."""
    alpha, beta, gamma = state.params_ms
    sa, sb, sg = state.relative_std
    return TunedProfile(
        model=state.model, accelerator=state.accelerator, alpha_ms=alpha, beta_ms=beta,
        gamma_ms=gamma, alpha_rel_std=sa, beta_rel_std=sb, gamma_rel_std=sg,
        origin=state.origin, phase=state.phase, updates=state.updates,
        accepted=state.accepted, rejected=state.rejected, resets=state.resets,
        max_batch=state.max_batch,
    )


def tuned_profiles(state: TunerState) -> list[TunedProfile]:
    """Every filter's estimate, sorted by (model, accelerator)."""
    return [tuned_profile(f) for f in state.filters]


def _merged(state: FilterState, estimates: bool) -> Vector3 | None:
    """The parameters (ms) to merge for a filter, or None (see the module docstring)."""
    if estimates:
        ready = state.phase == "tracking" or state.origin == "fit"
        return state.params_ms if ready else None
    return state.served_ms


def merge_profiles(spec: FleetSpec, state: TunerState, keep_configured: bool = False,
                   *, estimates: bool = False) -> FleetSpec:
    """The spec with tuned parameters merged into its profiles (see the module docstring)."""
    tuned = {f.key: (params, f.max_batch) for f in state.filters
             if (params := _merged(f, estimates)) is not None}
    profiles: list[Profile] = []
    for profile in spec.profiles:
        found = tuned.pop(ProfileKey(profile.model, profile.accelerator), None)
        if found is None or keep_configured:
            profiles.append(profile)
            continue
        alpha, beta, gamma = found[0]
        profiles.append(profile.model_copy(update={
            "alpha_ms": alpha, "beta_ms": beta, "gamma_ms": gamma}))
    known = {a.name for a in spec.accelerators}
    for key in sorted(tuned):
        (alpha, beta, gamma), max_batch = tuned[key]
        if key.accelerator in known:
            profiles.append(Profile(model=key.model, accelerator=key.accelerator,
                                    alpha_ms=alpha, beta_ms=beta, gamma_ms=gamma,
                                    max_batch=max_batch))
    document = spec.model_dump()
    document["profiles"] = [p.model_dump() for p in profiles]
    return FleetSpec.model_validate(document)
