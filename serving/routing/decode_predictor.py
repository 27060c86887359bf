"""An online bucket predictor of a request's decode length (output tokens).

After the output-length predictor of Jain et al. (arXiv 2408.13510), which classifies a
request into an output-length bucket, without the language model: the features are the
service class and the prompt length (log2 bins), and the "training" is counting. For
each (class, prompt bin) the predictor keeps decayed counts of the output-length bucket
completed requests fell in (edges `OUTPUT_EDGES`) and the mean output length within each
bucket; the prediction is the mean of the most frequent bucket. A key with fewer than
`min_samples` observations falls back to the class's counts over all prompt lengths, then
to all requests, then to `default_tokens`. The request's `max_tokens` caps the answer.

Pure: no clock, no I/O; counts decay by `decay` per observation of the same key, so the
predictor follows a workload that drifts.

To extend: other features (the endpoint, a tenant) become part of `_key`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

OUTPUT_EDGES = (16, 64, 256, 1024, 4096)
"""Upper edges (exclusive) of the output-length buckets; a last bucket holds the rest."""


@dataclass(slots=True)
class _Histogram:
    """Decayed counts per output bucket. Decay is applied lazily: each observation adds a
    weight that grows by 1 / decay, which keeps every ratio the predictor uses (count to
    count, sum to count) the same as decaying every entry, at O(1) per observation."""

    counts: list[float] = field(default_factory=lambda: [0.0] * (len(OUTPUT_EDGES) + 1))
    sums: list[float] = field(default_factory=lambda: [0.0] * (len(OUTPUT_EDGES) + 1))
    samples: int = 0
    weight: float = 1.0

    def add(self, tokens: int, decay: float) -> None:
        bucket = bucket_of(tokens)
        self.counts[bucket] += self.weight
        self.sums[bucket] += self.weight * tokens
        self.samples += 1
        self.weight /= decay
        if self.weight > 1e12:  # rescale before the numbers lose precision
            self.counts = [c / self.weight for c in self.counts]
            self.sums = [s / self.weight for s in self.sums]
            self.weight = 1.0

    def mode_mean(self) -> int:
        counts = self.counts
        bucket = max(range(len(counts)), key=counts.__getitem__)
        return max(1, round(self.sums[bucket] / counts[bucket]))


def bucket_of(tokens: int) -> int:
    """Index of the output-length bucket of `tokens`."""
    for i, edge in enumerate(OUTPUT_EDGES):
        if tokens < edge:
            return i
    return len(OUTPUT_EDGES)


def prompt_bin(prompt_tokens: int) -> int:
    """Log2 bin of a prompt length (0 for 1 token, 10 for 1,024-2,047, ...)."""
    return max(prompt_tokens, 1).bit_length() - 1


class DecodePredictor:
    """Predicts output tokens from (service class, prompt length), learned online."""

    def __init__(self, default_tokens: int = 128, min_samples: int = 8,
                 decay: float = 0.995) -> None:
        self.default_tokens = default_tokens
        self.min_samples = min_samples
        self.decay = decay
        self._keys: dict[tuple[str | None, int | None], _Histogram] = {}

    def predict(self, prompt_tokens: int, service_class: str | None,
                max_tokens: int | None = None) -> int:
        """Predicted output tokens (at most `max_tokens` when given)."""
        guess = self.default_tokens
        for key in ((service_class, prompt_bin(prompt_tokens)), (service_class, None),
                    (None, None)):
            found = self._keys.get(key)
            if found is not None and found.samples >= self.min_samples:
                guess = found.mode_mean()
                break
        return min(guess, max_tokens) if max_tokens else guess

    def observe(self, prompt_tokens: int, service_class: str | None, output_tokens: int,
                ) -> None:
        """Learn from one completed request."""
        if output_tokens < 1:
            return
        for key in ((service_class, prompt_bin(prompt_tokens)), (service_class, None),
                    (None, None)):
            histogram = self._keys.get(key)
            if histogram is None:
                histogram = self._keys[key] = _Histogram()
            histogram.add(output_tokens, self.decay)
