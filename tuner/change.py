"""Which parameter changed? Change detection after repeated gate rejections.

When the innovation gate rejects several observations in a row, the profile has most
likely changed (new driver, new hardware, another request mix) rather than the data gone
bad. Widening the whole covariance would throw away what the filter knows about the
parameters that did not change, and a handful of observations cannot pin all three again
(gamma least of all). So, as in a generalised-likelihood-ratio test, each hypothesis
"only alpha changed", "only beta", "only gamma", "all three" is fitted to the rejected
observations (MAP from the current estimate with that parameter's variance widened) and
scored by BIC: 2 x cost + (parameters freed) x ln(residuals). The winner's parameters get
the reset variance; the others keep their covariance.

To extend: another hypothesis (e.g. "beta and gamma") is one more row of `HYPOTHESES`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from queue_models.base import FloatArray
from tuner.ekf import Belief, Bounds
from tuner.fit import map_fit
from tuner.observation import Observation
from tuner.observe import ObservationModel

HYPOTHESES: tuple[tuple[float, float, float], ...] = (
    (1.0, 0.0, 0.0),
    (0.0, 1.0, 0.0),
    (0.0, 0.0, 1.0),
    (1.0, 1.0, 1.0),
)
"""Which parameters each hypothesis frees (alpha, beta, gamma)."""


def changed_parameters(belief: Belief, rejected: Sequence[Observation],
                       model: ObservationModel, noise_std: Sequence[FloatArray],
                       bounds: Bounds, reset_variances: FloatArray) -> FloatArray:
    """The hypothesis mask (1 = changed) that explains the rejected observations best."""
    residuals = sum(model.dim(obs) for obs in rejected)
    penalty = math.log(max(residuals, 2))
    best: tuple[float, FloatArray] | None = None
    for row in HYPOTHESES:
        mask = np.array(row)
        prior = Belief(belief.mean, belief.cov + np.diag(mask * reset_variances))
        _, cost = map_fit(prior, rejected, model, noise_std, bounds)
        score = 2.0 * cost + float(mask.sum()) * penalty
        if best is None or score < best[0]:
            best = (score, mask)
    assert best is not None
    return best[1]


def widened(belief: Belief, mask: FloatArray, reset_variances: FloatArray) -> Belief:
    """The belief with the reset variance added to the changed parameters."""
    return Belief(belief.mean, belief.cov + np.diag(mask * reset_variances))
