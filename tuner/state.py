"""The tuner's state: one filter per (model, accelerator), as a typed, persistable value.

`TunerState` is what the control loop keeps between ticks and writes to disk between
restarts (`to_json` / `from_json`): for each pair a `FilterState` with the estimate (log
parameters), its covariance, the bounds, the phase (warm-up or tracking), the warm-up
window and prior, the counters, the parameters served to the optimizer (`tuner.served`),
and the observations waiting for an initial fit of pairs without a profile. Everything is a frozen pydantic model; the tuner returns a new state
instead of changing one.

Parameters are stored as natural logarithms of (alpha, beta, gamma) in ms (see
`tuner.observe` for why); `FilterState.alpha_ms` and friends give them back in ms.

To extend: add a field with a default, so states written by an older version still load.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from queue_models.base import FloatArray
from tuner.ekf import Belief, Bounds
from tuner.observation import Observation, ProfileKey

Vector3 = tuple[float, float, float]
Matrix3 = tuple[Vector3, Vector3, Vector3]
Phase = Literal["warmup", "tracking"]
Origin = Literal["configured", "fit"]


def _vector(x: FloatArray) -> Vector3:
    a, b, c = (float(v) for v in np.asarray(x).reshape(-1))
    return (a, b, c)


def _matrix(m: FloatArray) -> Matrix3:
    rows = np.asarray(m, dtype=np.float64).reshape(3, 3)
    return (_vector(rows[0]), _vector(rows[1]), _vector(rows[2]))


class _State(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FilterState(_State):
    """One (model, accelerator) filter."""

    model: str = Field(description="Model name.")
    accelerator: str = Field(description="Accelerator name.")
    origin: Origin = Field(description="Where the first estimate came from: a configured "
                           "profile or an initial fit.")
    phase: Phase = Field("warmup", description="warmup: refit on every observation, no gate; "
                         "tracking: gated filter updates.")
    mean: Vector3 = Field(description="Estimate: ln(alpha_ms), ln(beta_ms), ln(gamma_ms).")
    covariance: Matrix3 = Field(description="Covariance of the estimate (log space).")
    lower: Vector3 = Field(description="Lower bounds of the log parameters.")
    upper: Vector3 = Field(description="Upper bounds of the log parameters.")
    prior_mean: Vector3 = Field(description="Prior of the current warm-up (log space).")
    prior_covariance: Matrix3 = Field(description="Covariance of the warm-up prior.")
    window: tuple[Observation, ...] = Field((), description="Observations of this warm-up.")
    warmup_length: int = Field(5, ge=1, description="Window length at which this warm-up "
                               "ends (an initial fit's observations count).")
    rejected_window: tuple[Observation, ...] = Field(
        (), description="The current run of consecutively rejected observations."
    )
    max_batch: int = Field(1, ge=1, description="Largest max batch observed (for new profiles).")
    updates: int = Field(0, ge=0, description="Observations processed.")
    accepted: int = Field(0, ge=0, description="Observations that changed the estimate.")
    rejected: int = Field(0, ge=0, description="Observations the innovation gate rejected.")
    resets: int = Field(0, ge=0, description="Times repeated rejections restarted warm-up.")
    last_nis: float | None = Field(None, description="Normalised innovation squared of the "
                                   "last gated update.")
    served: Vector3 | None = Field(
        None, description="The parameters the optimizer sees, ln(alpha_ms), ln(beta_ms), "
        "ln(gamma_ms): moved toward the estimate by at most max_merged_step per update while "
        "tracking (tuner.served); None until the filter first tracks.")

    @property
    def key(self) -> ProfileKey:
        """The (model, accelerator) pair."""
        return ProfileKey(self.model, self.accelerator)

    @property
    def belief(self) -> Belief:
        """The estimate as arrays."""
        return Belief(np.array(self.mean), np.array(self.covariance))

    @property
    def prior(self) -> Belief:
        """The warm-up prior as arrays."""
        return Belief(np.array(self.prior_mean), np.array(self.prior_covariance))

    @property
    def bounds(self) -> Bounds:
        """The box the estimate is kept in."""
        return Bounds(np.array(self.lower), np.array(self.upper))

    @property
    def params_ms(self) -> Vector3:
        """(alpha, beta, gamma) in ms."""
        a, b, c = (math.exp(v) for v in self.mean)
        return (a, b, c)

    @property
    def served_ms(self) -> Vector3 | None:
        """The served (alpha, beta, gamma) in ms, None until the filter first tracks."""
        if self.served is None:
            return None
        a, b, c = (math.exp(v) for v in self.served)
        return (a, b, c)

    @property
    def relative_std(self) -> Vector3:
        """Approximate relative standard deviation of each parameter."""
        a, b, c = (math.expm1(math.sqrt(max(self.covariance[i][i], 0.0))) for i in range(3))
        return (a, b, c)

    def with_belief(self, belief: Belief, **changes: object) -> FilterState:
        """A copy with a new estimate (and any other changed fields)."""
        return self.model_copy(update={"mean": _vector(belief.mean),
                                       "covariance": _matrix(belief.cov), **changes})


def new_filter(key: ProfileKey, origin: Origin, belief: Belief, bounds: Bounds,
               max_batch: int, warmup_length: int, prior: Belief | None = None,
               window: tuple[Observation, ...] = ()) -> FilterState:
    """A filter in warm-up at `belief`; the warm-up prior is `prior` (default: `belief`)
    and `window` the observations already behind the estimate."""
    prior = prior or belief
    return FilterState(
        model=key.model, accelerator=key.accelerator, origin=origin, phase="warmup",
        mean=_vector(belief.mean), covariance=_matrix(belief.cov),
        lower=_vector(bounds.lower), upper=_vector(bounds.upper),
        prior_mean=_vector(prior.mean), prior_covariance=_matrix(prior.cov),
        window=window, warmup_length=warmup_length, max_batch=max_batch,
    )


def restart_warmup(state: FilterState, prior: Belief, warmup_length: int) -> FilterState:
    """Warm up again from `prior`, with an empty window."""
    return state.model_copy(update={
        "phase": "warmup", "prior_mean": _vector(prior.mean),
        "prior_covariance": _matrix(prior.cov), "window": (), "rejected_window": (),
        "warmup_length": warmup_length,
    })


class TunerState(_State):
    """Every filter, plus observations waiting for an initial fit."""

    filters: tuple[FilterState, ...] = Field((), description="Filters, sorted by pair.")
    pending: tuple[Observation, ...] = Field(
        (), description="Observations of pairs without a profile, until their initial fit."
    )

    def filter(self, key: ProfileKey) -> FilterState | None:
        """The filter of a pair, if it exists."""
        return next((f for f in self.filters if f.key == key), None)

    def pending_for(self, key: ProfileKey) -> tuple[Observation, ...]:
        """Buffered observations of a pair."""
        return tuple(o for o in self.pending if o.key == key)

    def with_filter(self, state: FilterState) -> TunerState:
        """A copy with `state` replacing the pair's filter (kept sorted by pair)."""
        others = [f for f in self.filters if f.key != state.key]
        filters = tuple(sorted([*others, state], key=lambda f: (f.model, f.accelerator)))
        pending = tuple(o for o in self.pending if o.key != state.key)
        return TunerState(filters=filters, pending=pending)

    def with_pending(self, obs: Observation) -> TunerState:
        """A copy with one more buffered observation."""
        return self.model_copy(update={"pending": (*self.pending, obs)})

    def to_json(self) -> str:
        """JSON text (for the loop to persist)."""
        return self.model_dump_json(indent=2)

    @classmethod
    def from_json(cls, text: str) -> TunerState:
        """Read what `to_json` wrote (raises pydantic's ValidationError on bad input)."""
        return cls.model_validate_json(text)
