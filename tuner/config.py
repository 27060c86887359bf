"""Configuration of the tuner: noise levels, bounds, gate, warm-up, initial fit, merge step.

All noise levels are relative standard deviations, because the filter works in log space
(`tuner.tuner` explains why): a process noise of 0.02 lets a parameter drift by about 2%
per update, a measurement noise of 0.05 says a measured mean is within about 5% of the
truth. The defaults suit a loop that collects over 30-120 s windows; tests and offline
calibration pass their own.

To extend: add a field with a default and a `Field(description=...)`; read it in the
module that needs it (`tuner.tuner` for the policy, `tuner.observe` for the observation).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from scipy.stats import chi2

from queue_models.base import FloatArray
from queue_models.registry import DEFAULT_QUEUE_MODEL

Loss = Literal["linear", "soft_l1", "huber", "cauchy"]


class _Config(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class ParameterNoise(_Config):
    """A relative standard deviation for each of alpha, beta, gamma."""

    alpha: float = Field(gt=0, description="Relative standard deviation of alpha.")
    beta: float = Field(gt=0, description="Relative standard deviation of beta.")
    gamma: float = Field(gt=0, description="Relative standard deviation of gamma.")

    @classmethod
    def uniform(cls, value: float) -> ParameterNoise:
        """The same relative standard deviation for all three."""
        return cls(alpha=value, beta=value, gamma=value)

    def variances(self) -> FloatArray:
        """Variances in log space, diag of a covariance (log(1 + s) per parameter)."""
        return np.log1p(np.array([self.alpha, self.beta, self.gamma])) ** 2


class MeasurementNoise(_Config):
    """A relative standard deviation for each observed mean."""

    ttft: float = Field(0.10, gt=0, description="Relative standard deviation of mean TTFT.")
    itl: float = Field(0.05, gt=0, description="Relative standard deviation of mean ITL.")
    running: float = Field(
        0.10, gt=0, description="Relative standard deviation of the mean running batch."
    )

    def stds(self, with_running: bool) -> FloatArray:
        """Log-space standard deviations of [TTFT, ITL] or [TTFT, ITL, running]."""
        values = [self.ttft, self.itl] + ([self.running] if with_running else [])
        return np.log1p(np.array(values))


class TunerConfig(_Config):
    """How the tuner filters; every default is documented in its description."""

    queue_model: str = Field(
        DEFAULT_QUEUE_MODEL, description="Queue model that predicts the observations."
    )
    process_noise: ParameterNoise = Field(
        default_factory=lambda: ParameterNoise.uniform(0.02),
        description="Random-walk drift per update (relative).",
    )
    initial_uncertainty: ParameterNoise = Field(
        default_factory=lambda: ParameterNoise.uniform(1.0),
        description="Uncertainty of a configured profile when the filter starts (relative).",
    )
    reset_uncertainty: ParameterNoise = Field(
        default_factory=lambda: ParameterNoise.uniform(0.5),
        description="Uncertainty added to the parameters judged changed (tuner.change) "
        "when repeated rejections signal a change (relative).",
    )
    measurement_noise: MeasurementNoise = Field(
        default_factory=MeasurementNoise, description="Noise of the observed means."
    )
    use_running: bool = Field(
        True, description="Observe the mean running batch too, when the observation has it."
    )
    bounds_factor: float = Field(
        10.0, gt=1, description="Parameters stay within [x / f, x f] of where the filter started; "
        "the parameters merged into the optimizer's spec, within [x / f, x f] of the "
        "configured profile."
    )
    max_merged_step: float = Field(
        0.05, gt=0, le=1,
        description="Most the parameters merged into the optimizer's spec move per update "
        "(one Tuner.update call with observations of the pair, i.e. one loop tick), relative "
        "and per parameter: 0.05 lets alpha, beta and gamma each change by at most 5%.",
    )
    gate_probability: float = Field(
        0.99, gt=0, lt=1,
        description="Innovation gate: reject when the normalised innovation squared exceeds "
        "the chi-square quantile of this probability (degrees of freedom = observations).",
    )
    warmup_updates: int = Field(
        5, ge=1, description="Updates without a gate; each refits prior plus the observations "
        "so far by least squares (see tuner.fit).",
    )
    initial_fit_observations: int = Field(
        5, ge=1, description="Observations to buffer before fitting a pair without a profile."
    )
    fit_loss: Loss = Field(
        "soft_l1", description="Loss of the initial and warm-up fits: linear (least squares) "
        "or a robust one (soft_l1, huber, cauchy) that limits the pull of outliers.",
    )
    fit_loss_scale: float = Field(
        3.0, gt=0, description="Residual (in standard deviations) beyond which a robust loss "
        "stops growing quadratically.",
    )
    reset_after_rejects: int = Field(
        2, ge=1, description="Consecutive gate rejections taken as a real change: the filter "
        "widens its covariance and warms up again on those observations.",
    )
    jacobian_step: float = Field(
        0.01, gt=0, le=0.2, description="Finite-difference step in log parameters (~1%)."
    )
    iterations: int = Field(
        5, ge=1, le=50, description="Gauss-Newton iterations of each filter update (1: plain EKF)."
    )
    keep_configured_profiles: bool = Field(
        False, description="Merge tuned values only for pairs the spec has no profile for."
    )

    def gate_threshold(self, dof: int) -> float:
        """Chi-square quantile for `dof` observed values."""
        return float(chi2.ppf(self.gate_probability, dof))
