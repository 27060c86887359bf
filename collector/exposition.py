"""Parse one `/metrics` page (Prometheus text format) into a typed `Scrape`.

Every sample is summed over its label sets (a replica serves one model, so labels such as
`finished_reason` only split a total), with histogram buckets kept per upper bound.
Names are stored with colons turned into underscores, so `vllm:x` and `vllm_x` (the
OpenMetrics escaping of prometheus/client_python#1177) are the same series; look them up
with `Scrape.value(name)` in either spelling. Parsing uses prometheus_client's parser.

To extend: keep the raw sums; derived figures belong to `collector.scrape`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families


class ExpositionError(ValueError):
    """The page is not in the Prometheus text format."""


def canonical(name: str) -> str:
    """The spelling-independent form of a metric name."""
    return name.replace(":", "_")


@dataclass(frozen=True)
class Scrape:
    """One replica's metrics at one time."""

    time_s: float
    samples: Mapping[str, float] = field(default_factory=dict)
    buckets: Mapping[str, tuple[tuple[float, float], ...]] = field(default_factory=dict)

    def value(self, name: str) -> float | None:
        """A sample's value summed over labels (None when absent)."""
        return self.samples.get(canonical(name))

    def histogram(self, name: str) -> tuple[tuple[float, float], ...]:
        """Cumulative (upper bound, count) pairs of a histogram (name without _bucket)."""
        return self.buckets.get(canonical(name), ())


def parse_exposition(text: str, time_s: float) -> Scrape:
    """A `Scrape` of the page (raises `ExpositionError` on malformed text)."""
    samples: dict[str, float] = {}
    buckets: dict[str, dict[float, float]] = {}
    try:
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                name = canonical(sample.name)
                if name.endswith("_bucket") and "le" in sample.labels:
                    bound = float(sample.labels["le"])
                    per = buckets.setdefault(name[: -len("_bucket")], {})
                    per[bound] = per.get(bound, 0.0) + sample.value
                elif not math.isnan(sample.value):
                    samples[name] = samples.get(name, 0.0) + sample.value
    except (ValueError, TypeError, IndexError) as exc:
        raise ExpositionError(f"not a Prometheus text page: {exc}") from exc
    return Scrape(time_s, samples,
                  {name: tuple(sorted(per.items())) for name, per in buckets.items()})
