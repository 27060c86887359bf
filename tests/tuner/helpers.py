"""Shared pieces of the tuner tests: a true profile, a config with 5% noise, error measures."""

from __future__ import annotations

from specs.documents import Profile
from tuner import MeasurementNoise, TunedProfile, TunerConfig
from tuner.synthetic import Truth

TRUTH = Truth("llama_3_1_8b", "H100", 6.49, 0.0219, 4.96e-5)
"""inferno's fitted H100 profile of Llama 3.1 8B (control-loop vllm-gpu)."""
NOISE = 0.05
CONFIG = TunerConfig(measurement_noise=MeasurementNoise(ttft=NOISE, itl=NOISE, running=NOISE))


def profile_of(truth: Truth, max_batch: int = 128) -> Profile:
    """A configured profile with the truth's parameters."""
    return Profile(model=truth.model, accelerator=truth.accelerator, alpha_ms=truth.alpha_ms,
                   beta_ms=truth.beta_ms, gamma_ms=truth.gamma_ms, max_batch=max_batch)


def errors(found: TunedProfile, truth: Truth) -> tuple[float, float, float]:
    """Relative errors of alpha, beta, gamma."""
    return (abs(found.alpha_ms / truth.alpha_ms - 1), abs(found.beta_ms / truth.beta_ms - 1),
            abs(found.gamma_ms / truth.gamma_ms - 1))
