"""The tuner policy: observations in, new filter states and a report out (pure).

`Tuner.update(state, observations, profiles)` feeds each observation, in order, to the
filter of its (model, accelerator) pair:

- a pair with no filter starts one from its configured profile (the spec's), with the
  configured `initial_uncertainty`, bounds `bounds_factor` either way, in warm-up; a pair
  with no profile buffers observations until `initial_fit_observations`, then starts from
  a least-squares fit (`tuner.fit.initial_fit`), whose observations count as the first
  of its warm-up (`warmup_updates` more follow, refitted from the fit's weak prior);
- in warm-up, each observation joins the window and the estimate is refitted from the
  warm-up prior over the whole window (MAP, `tuner.fit.map_fit`), with no gate; after
  `warmup_updates` observations the filter tracks;
- tracking is an extended Kalman filter (`tuner.ekf`): state = log parameters as a random
  walk (process noise per update), observation = log [TTFT, ITL, running] from the queue
  model (`tuner.observe`), Jacobian by finite differences, iterated linearisation, estimate
  clamped to the bounds. An innovation gate (NIS against the chi-square quantile)
  rejects outliers; `reset_after_rejects` rejections in a row are taken as a real change
  (new hardware, software, request mix): `tuner.change` picks which parameter changed,
  its variance widens by `reset_uncertainty`, and the filter warms up again starting
  with the rejected observations.

After the observations, each pair seen that tracks moves its served parameters (what the
optimizer sees, `tuner.served`) one bounded step toward its estimate: at most
`max_merged_step` per parameter and call, within `bounds_factor` of the configured profile.
Warm-up observations are not gated, which is why warm-up estimates are never served.

An observation the queue model cannot evaluate is skipped and reported. No clock, no I/O.

To extend: a new outcome is one more `Outcome` literal; a different filter for tracking
is a function with `tuner.ekf.update`'s signature, called from `_track`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from queue_models.base import FloatArray, QueueModel
from queue_models.registry import get_queue_model
from specs.documents import Profile
from tuner import ekf
from tuner.change import changed_parameters, widened
from tuner.config import TunerConfig
from tuner.ekf import Belief, Bounds
from tuner.fit import FIT_BOUNDS, initial_fit, map_fit, weak_prior
from tuner.observation import Observation, ProfileKey
from tuner.observe import ObservationModel, PredictionError
from tuner.served import served_step
from tuner.state import FilterState, TunerState, new_filter, restart_warmup

Outcome = Literal["pending", "fit", "warmup", "accepted", "rejected", "reset", "skipped"]


@dataclass(frozen=True)
class UpdateReport:
    """What one observation did to its pair's filter."""

    model: str
    accelerator: str
    outcome: Outcome
    nis: float | None = None
    detail: str = ""


def profile_belief(profile: Profile, config: TunerConfig) -> Belief:
    """A configured profile as a starting belief (log parameters)."""
    params = np.array([profile.alpha_ms, profile.beta_ms, profile.gamma_ms], dtype=np.float64)
    mean = np.log(np.maximum(params, np.exp(FIT_BOUNDS.lower)))
    return Belief(mean, np.diag(config.initial_uncertainty.variances()))


def bounds_around(mean: FloatArray, factor: float) -> Bounds:
    """[x / factor, x factor] intersected with the absolute fit bounds (log space)."""
    width = float(np.log(factor))
    lower = np.maximum(mean - width, FIT_BOUNDS.lower)
    upper = np.minimum(mean + width, FIT_BOUNDS.upper)
    return Bounds(lower, upper)


class Tuner:
    """Learns profiles from observations (see the module docstring)."""

    def __init__(self, config: TunerConfig | None = None,
                 queue_model: QueueModel | None = None) -> None:
        self.config = config or TunerConfig()
        model = queue_model or get_queue_model(self.config.queue_model)
        self.observation_model = ObservationModel(
            model, self.config.jacobian_step, self.config.use_running)

    # -- the policy ---------------------------------------------------------------------

    def update(self, state: TunerState, observations: Iterable[Observation],
               profiles: Sequence[Profile] = ()) -> tuple[TunerState, list[UpdateReport]]:
        """Feed observations in order; returns the new state and one report each."""
        configured = {ProfileKey(p.model, p.accelerator): p for p in profiles}
        reports: list[UpdateReport] = []
        seen: set[ProfileKey] = set()
        for obs in observations:
            state, report = self._one(state, obs, configured.get(obs.key))
            reports.append(report)
            seen.add(obs.key)
        return self._serve(state, seen, configured), reports

    def fit_pending(self, state: TunerState) -> tuple[TunerState, list[UpdateReport]]:
        """Fit every pair still buffering, however few observations it has (offline
        calibration's last step; the loop waits for `initial_fit_observations`)."""
        reports = []
        keys = sorted({o.key for o in state.pending})
        for key in keys:
            waiting = state.pending_for(key)
            state = state.with_filter(self._fitted(waiting))
            reports.append(_report(waiting[-1], "fit", detail=f"{len(waiting)} observations"))
        return state, reports

    def _one(self, state: TunerState, obs: Observation, profile: Profile | None,
             ) -> tuple[TunerState, UpdateReport]:
        current = state.filter(obs.key)
        if current is None and profile is None:
            return self._pending(state, obs)
        if current is None:
            belief = profile_belief(profile, self.config)
            bounds = bounds_around(belief.mean, self.config.bounds_factor)
            current = new_filter(obs.key, "configured", belief, bounds, profile.max_batch,
                                 self.config.warmup_updates)
        try:
            self.observation_model.predict(current.belief.mean, obs)
        except PredictionError as exc:
            return state, _report(obs, "skipped", detail=str(exc))
        current = current.model_copy(update={"updates": current.updates + 1,
                                             "max_batch": max(current.max_batch, obs.max_batch)})
        if current.phase == "warmup":
            updated, report = self._warmup(current, obs)
        else:
            updated, report = self._track(current, obs)
        return state.with_filter(updated), report

    def _pending(self, state: TunerState, obs: Observation) -> tuple[TunerState, UpdateReport]:
        waiting = (*state.pending_for(obs.key), obs)
        if len(waiting) < self.config.initial_fit_observations:
            return state.with_pending(obs), _report(obs, "pending",
                                                    detail=f"{len(waiting)} observations")
        return state.with_filter(self._fitted(waiting)), _report(
            obs, "fit", detail=f"{len(waiting)} observations")

    def _fitted(self, waiting: tuple[Observation, ...]) -> FilterState:
        belief = initial_fit(waiting, self.observation_model, self._noise(waiting),
                             self.config.fit_loss, self.config.fit_loss_scale)
        bounds = bounds_around(belief.mean, self.config.bounds_factor)
        created = new_filter(waiting[0].key, "fit", belief, bounds,
                             max(o.max_batch for o in waiting),
                             len(waiting) + self.config.warmup_updates, weak_prior(), waiting)
        return created.model_copy(update={"updates": len(waiting), "accepted": len(waiting)})

    def _warmup(self, current: FilterState, obs: Observation) -> tuple[FilterState, UpdateReport]:
        window = (*current.window, obs)
        prior = current.prior
        prior = Belief(prior.mean, prior.cov + self._process_cov() * len(window))
        belief, _ = map_fit(prior, window, self.observation_model, self._noise(window),
                            current.bounds, current.belief.mean, self.config.fit_loss,
                            self.config.fit_loss_scale)
        done = len(window) >= current.warmup_length
        updated = current.with_belief(
            belief, window=() if done else window, phase="tracking" if done else "warmup",
            accepted=current.accepted + 1, rejected_window=())
        return updated, _report(obs, "warmup", detail=f"{len(window)} of "
                                f"{self.config.warmup_updates}")

    def _track(self, current: FilterState, obs: Observation) -> tuple[FilterState, UpdateReport]:
        model = self.observation_model
        prior = ekf.predict(current.belief, self._process_cov())
        z = model.measured(obs)
        try:
            result = ekf.update(
                prior, z, lambda x: model.predict(x, obs), lambda x: model.jacobian(x, obs),
                np.diag(self._noise([obs])[0] ** 2), current.bounds,
                gate=self.config.gate_threshold(len(z)), iterations=self.config.iterations)
        except PredictionError as exc:
            return current, _report(obs, "skipped", detail=str(exc))
        if result.accepted:
            updated = current.with_belief(result.belief, accepted=current.accepted + 1,
                                          rejected_window=(), last_nis=result.nis)
            return updated, _report(obs, "accepted", result.nis)
        rejected = (*current.rejected_window, obs)
        updated = current.model_copy(update={"rejected": current.rejected + 1,
                                             "rejected_window": rejected,
                                             "last_nis": result.nis})
        if len(rejected) < self.config.reset_after_rejects:
            return updated, _report(obs, "rejected", result.nis)
        return self._reset(updated, rejected), _report(
            obs, "reset", result.nis, f"{len(rejected)} consecutive rejections")

    def _reset(self, current: FilterState, rejected: tuple[Observation, ...]) -> FilterState:
        reset = self.config.reset_uncertainty.variances()
        mask = changed_parameters(current.belief, rejected, self.observation_model,
                                  self._noise(rejected), current.bounds, reset)
        restarted = restart_warmup(current, widened(current.belief, mask, reset),
                                   self.config.warmup_updates)
        restarted = restarted.model_copy(update={"resets": current.resets + 1})
        for obs in rejected:
            restarted, _ = self._warmup(restarted, obs)
        return restarted

    def _serve(self, state: TunerState, keys: set[ProfileKey],
               configured: dict[ProfileKey, Profile]) -> TunerState:
        """One bounded step of the served parameters of each pair in `keys` that tracks
        (`tuner.served`)."""
        for key in sorted(keys):
            current = state.filter(key)
            if current is None or current.phase != "tracking":
                continue
            profile = configured.get(key)
            start = None if profile is None else profile_belief(profile, self.config).mean
            box = (current.bounds if start is None
                   else bounds_around(start, self.config.bounds_factor))
            state = state.with_filter(served_step(current, start, box,
                                                  self.config.max_merged_step))
        return state

    # -- helpers ------------------------------------------------------------------------

    def _process_cov(self) -> FloatArray:
        return np.diag(self.config.process_noise.variances())

    def _noise(self, observations: Sequence[Observation]) -> list[FloatArray]:
        noise = self.config.measurement_noise
        return [noise.stds(self.observation_model.with_running(o)) for o in observations]


def _report(obs: Observation, outcome: Outcome, nis: float | None = None,
            detail: str = "") -> UpdateReport:
    return UpdateReport(obs.model, obs.accelerator, outcome, nis, detail)
