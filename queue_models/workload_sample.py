"""A workload sample: the arrival pattern and request sizes a capacity table replays.

Latency tails depend on more than the mean sizes a `ServiceParams` carries: on how
heavy the prompt-size tail is, and on how bursty arrivals are (the Azure code trace
has a coefficient of variation of inter-arrival gaps of about 12: a median of 0 and a
99th percentile of 28 requests per second, at a mean of 2.6). A `WorkloadSample` keeps
a stretch of real (or synthetic) requests so the calibration (`queue_models.replay`)
can replay them at any rate:

- `offsets`: arrival times in units of the mean gap (the sample's rate is 1 per unit),
  with the slow drift of the rate removed (each gap is multiplied by the local rate
  over `local_window_s`), so replaying at rate r means arrival times `offsets / r` and
  the bursts within a few minutes are kept as they were;
- `prompt_tokens`, `output_tokens`: each request's sizes, in arrival order.

Samples are values: equal when their contents are (`digest`, a SHA-1 of the arrays and
used in cache keys), immutable (the arrays are read-only).

To extend: another source of samples is one more constructor returning
`WorkloadSample.of(...)`; keep the arrays in arrival order.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

DEFAULT_LOCAL_WINDOW_S = 300.0
"""Window over which the local arrival rate is measured when normalising gaps, s."""


def _frozen(values: Sequence[float] | npt.NDArray, dtype: type) -> npt.NDArray:
    array = np.array(values, dtype=dtype)
    array.setflags(write=False)
    return array


@dataclass(frozen=True, eq=False)
class WorkloadSample:
    """Requests to replay: normalised arrival offsets and sizes (see the module)."""

    name: str
    offsets: npt.NDArray[np.float64]
    prompt_tokens: npt.NDArray[np.int64]
    output_tokens: npt.NDArray[np.int64]
    digest: str = field(default="")

    @classmethod
    def of(cls, name: str, offsets: Sequence[float] | npt.NDArray,
           prompt_tokens: Sequence[int] | npt.NDArray,
           output_tokens: Sequence[int] | npt.NDArray) -> WorkloadSample:
        """A checked sample (offsets non-decreasing from 0, prompts >= 0, outputs >= 1)."""
        off = _frozen(offsets, np.float64)
        prompts = _frozen(prompt_tokens, np.int64)
        outputs = _frozen(output_tokens, np.int64)
        if not (off.size == prompts.size == outputs.size) or off.size < 2:
            raise ValueError("a workload sample needs >= 2 requests and equal-length arrays")
        if not np.all(np.isfinite(off)) or np.any(np.diff(off) < 0) or off[0] < 0:
            raise ValueError("offsets must be finite, >= 0 and non-decreasing")
        if np.any(prompts < 0) or np.any(outputs < 1):
            raise ValueError("prompt tokens must be >= 0 and output tokens >= 1")
        digest = hashlib.sha1()
        for array in (off, prompts, outputs):
            digest.update(array.tobytes())
        return cls(name, off, prompts, outputs, digest.hexdigest()[:16])

    @classmethod
    def from_arrivals(cls, name: str, times_s: Sequence[float], prompt_tokens: Sequence[int],
                      output_tokens: Sequence[int], *, max_requests: int | None = None,
                      segments: int = 4,
                      local_window_s: float = DEFAULT_LOCAL_WINDOW_S) -> WorkloadSample:
        """A sample of a recorded stream of requests (times in seconds, sorted).

        With more than `max_requests` requests, `segments` evenly spaced runs of
        consecutive requests are kept (bursts stay whole) and laid end to end.
        """
        times = np.asarray(times_s, dtype=np.float64)
        prompts = np.asarray(prompt_tokens, dtype=np.int64)
        outputs = np.maximum(np.asarray(output_tokens, dtype=np.int64), 1)
        if times.size < 2:
            raise ValueError(f"{name}: a workload sample needs at least 2 requests")
        order = np.argsort(times, kind="stable")
        times, prompts, outputs = times[order], prompts[order], outputs[order]
        gaps = np.diff(times) * _local_rate(times, local_window_s)[1:]
        keep = _segments(times.size, max_requests, segments)
        offsets = np.concatenate([[0.0], np.cumsum(_joined_gaps(gaps, keep))])
        index = np.concatenate(keep)
        return cls.of(name, offsets, prompts[index], outputs[index])

    @classmethod
    def synthetic(cls, in_tokens: float, out_tokens: float, *, requests: int = 4000,
                  size_cv: float = 1.0, seed: int = 0) -> WorkloadSample:
        """Poisson arrivals with lognormal sizes of the given means and coefficient of
        variation: what a server with no recorded sample is calibrated with."""
        rng = np.random.default_rng(seed)
        offsets = np.cumsum(rng.exponential(1.0, requests))
        offsets -= offsets[0]
        sigma = math.sqrt(math.log1p(size_cv * size_cv))

        def sizes(mean: float, low: int) -> npt.NDArray[np.int64]:
            draws = mean * np.exp(sigma * rng.standard_normal(requests) - sigma * sigma / 2)
            return np.maximum(np.rint(draws), low).astype(np.int64)

        name = f"synthetic(in={in_tokens:g},out={out_tokens:g},cv={size_cv:g},n={requests})"
        return cls.of(name, offsets, sizes(in_tokens, 0), sizes(out_tokens, 1))

    # -- reading ------------------------------------------------------------------------

    @property
    def requests(self) -> int:
        """Requests in the sample."""
        return int(self.offsets.size)

    @property
    def mean_in_tokens(self) -> float:
        """Mean prompt tokens."""
        return float(self.prompt_tokens.mean())

    @property
    def mean_out_tokens(self) -> float:
        """Mean output tokens."""
        return float(self.output_tokens.mean())

    def arrival_times(self, rate_rps: float) -> npt.NDArray[np.float64]:
        """Arrival times (s) of the sample replayed at `rate_rps` requests per second."""
        if rate_rps <= 0:
            raise ValueError(f"rate must be > 0, got {rate_rps}")
        span = float(self.offsets[-1])
        scale = (self.requests - 1) / span if span > 0 else 1.0
        return self.offsets * (scale / rate_rps)

    def gap_cv(self) -> float:
        """Coefficient of variation of the (normalised) inter-arrival gaps."""
        gaps = np.diff(self.offsets)
        mean = float(gaps.mean())
        return float(gaps.std() / mean) if mean > 0 else 0.0

    def __eq__(self, other: object) -> bool:
        return isinstance(other, WorkloadSample) and other.digest == self.digest

    def __hash__(self) -> int:
        return hash(self.digest)

    def __repr__(self) -> str:
        return (f"WorkloadSample({self.name!r}, {self.requests} requests, "
                f"digest={self.digest})")


def _local_rate(times: npt.NDArray[np.float64], window_s: float) -> npt.NDArray[np.float64]:
    """Arrivals per second in the window centred on each arrival (clipped to the run)."""
    lo = np.searchsorted(times, times - window_s / 2, side="left")
    hi = np.searchsorted(times, times + window_s / 2, side="right")
    span = np.minimum(times + window_s / 2, times[-1]) - np.maximum(times - window_s / 2,
                                                                   times[0])
    overall = (times.size - 1) / max(times[-1] - times[0], 1e-9)
    rate = (hi - lo) / np.maximum(span, 1e-9)
    return np.where(span > 1e-9, rate, overall)


def _segments(n: int, max_requests: int | None, segments: int) -> list[npt.NDArray[np.int64]]:
    """Indices of the requests kept: all, or `segments` evenly spaced consecutive runs."""
    if max_requests is None or n <= max_requests:
        return [np.arange(n, dtype=np.int64)]
    count = max(1, min(segments, max_requests))
    length = max_requests // count
    starts = np.linspace(0, n - length, count).astype(np.int64)
    return [np.arange(s, s + length, dtype=np.int64) for s in starts]


def _joined_gaps(gaps: npt.NDArray[np.float64], keep: list[npt.NDArray[np.int64]],
                 ) -> npt.NDArray[np.float64]:
    """Gaps within each kept run; one mean gap (1 unit) joins consecutive runs."""
    parts: list[npt.NDArray[np.float64]] = []
    for i, run in enumerate(keep):
        if i:
            parts.append(np.array([1.0]))
        parts.append(gaps[run[:-1]])
    return np.concatenate(parts) if parts else np.zeros(0)
