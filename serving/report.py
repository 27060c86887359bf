"""The load generator's report: per service class and overall, typed and JSON-ready.

For each class (and all requests together): requests, successes, errors by kind, tokens,
TTFT, ITL and end-to-end latency (mean, p50, p95, p99, in ms; ITL over every gap between
tokens), achieved throughput, and, when the class has targets for the model in a spec,
SLO attainment: the fraction of requests (errors count as misses) whose TTFT and mean ITL
are within the targets, and whether the class statistic the target names (mean or a
percentile, `ModelTarget.ttft_statistic`) meets it.

To extend: add a field with a default to the pydantic model and fill it in
`_class_report`; `render_table` shows the most useful columns only.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from serving.loadclient import RequestResult
from specs.documents import ModelTarget

NO_CLASS = "(none)"
"""Class name used in the report for requests sent without a service class."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Summary(_Model):
    """Statistics of one latency, in ms (None without samples)."""

    count: int = Field(description="Samples.")
    mean: float | None = Field(None, description="Mean, ms.")
    p50: float | None = Field(None, description="Median, ms.")
    p95: float | None = Field(None, description="95th percentile, ms.")
    p99: float | None = Field(None, description="99th percentile, ms.")

    @classmethod
    def of(cls, seconds: Sequence[float] | np.ndarray) -> Summary:
        """Summarise samples given in seconds."""
        values = np.asarray(seconds, dtype=float) * 1000.0
        if values.size == 0:
            return cls(count=0)
        p50, p95, p99 = np.percentile(values, [50, 95, 99])
        return cls(count=int(values.size), mean=float(values.mean()), p50=float(p50),
                   p95=float(p95), p99=float(p99))

    def statistic(self, name: str, samples_s: np.ndarray) -> float | None:
        """The value of 'mean' or 'pNN' (ms) for these samples."""
        if self.count == 0:
            return None
        pct = ModelTarget.percentile(name)
        return self.mean if pct is None else float(np.percentile(samples_s * 1000.0, pct))


class SloReport(_Model):
    """Attainment of a class's targets (0 targets are not checked)."""

    ttft_target_ms: float = Field(description="TTFT target, ms (0: none).")
    itl_target_ms: float = Field(description="ITL target, ms (0: none).")
    ttft_statistic: str = Field(description="What the TTFT target bounds: mean or pNN.")
    itl_statistic: str = Field(description="What the ITL target bounds: mean or pNN.")
    attainment: float = Field(description="Fraction of requests within every target.")
    ttft_attainment: float = Field(description="Fraction of requests with TTFT within target.")
    itl_attainment: float = Field(description="Fraction of requests with mean ITL within target.")
    ttft_value_ms: float | None = Field(None, description="The class's TTFT statistic, ms.")
    itl_value_ms: float | None = Field(None, description="The class's ITL statistic, ms.")
    ttft_met: bool | None = Field(None, description="TTFT statistic within target.")
    itl_met: bool | None = Field(None, description="ITL statistic within target.")


class ClassReport(_Model):
    """One class (or all requests)."""

    service_class: str = Field(description="Class name; '(all)' for the overall row.")
    requests: int = Field(description="Requests sent.")
    ok: int = Field(description="Requests completed.")
    errors: int = Field(description="Requests that failed.")
    errors_by_kind: dict[str, int] = Field(default_factory=dict, description="Errors by kind.")
    prompt_tokens: int = Field(description="Prompt tokens of completed requests.")
    output_tokens: int = Field(description="Output tokens of completed requests.")
    ttft_ms: Summary = Field(description="Time to first token.")
    itl_ms: Summary = Field(description="Inter-token latency (every gap).")
    e2e_ms: Summary = Field(description="End-to-end latency of completed requests.")
    throughput_rps: float = Field(description="Completed requests per second of the run.")
    output_tokens_per_s: float = Field(description="Output tokens per second of the run.")
    slo: SloReport | None = Field(None, description="Target attainment, if the class has targets.")


class LoadReport(_Model):
    """The whole run."""

    targets: list[str] = Field(description="Target URLs.")
    duration_s: float = Field(description="Wall time from the first scheduled send to the end.")
    max_send_lag_ms: float = Field(description="Largest delay of a send behind its schedule.")
    overall: ClassReport = Field(description="All requests.")
    classes: list[ClassReport] = Field(description="Per service class, by name.")


def _slo(results: list[RequestResult], target: ModelTarget) -> SloReport:
    ok = [r for r in results if r.ok]
    ttft = np.array([r.ttft_s for r in ok], dtype=float)
    itl_all = np.array([x for r in ok for x in r.itl_s], dtype=float)
    mean_itl = [sum(r.itl_s) / len(r.itl_s) if r.itl_s else 0.0 for r in ok]
    n = max(len(results), 1)
    ttft_in = [target.ttft_ms <= 0 or t * 1000 <= target.ttft_ms for t in ttft]
    itl_in = [target.itl_ms <= 0 or m * 1000 <= target.itl_ms for m in mean_itl]
    ttft_value = Summary.of(ttft).statistic(target.ttft_statistic, ttft)
    itl_value = Summary.of(itl_all).statistic(target.itl_statistic, itl_all)

    def met(value: float | None, goal: float) -> bool | None:
        return None if goal <= 0 or value is None else value <= goal

    return SloReport(
        ttft_target_ms=target.ttft_ms, itl_target_ms=target.itl_ms,
        ttft_statistic=target.ttft_statistic, itl_statistic=target.itl_statistic,
        attainment=sum(a and b for a, b in zip(ttft_in, itl_in, strict=True)) / n,
        ttft_attainment=sum(ttft_in) / n, itl_attainment=sum(itl_in) / n,
        ttft_value_ms=ttft_value, itl_value_ms=itl_value,
        ttft_met=met(ttft_value, target.ttft_ms), itl_met=met(itl_value, target.itl_ms),
    )


def _class_report(name: str, results: list[RequestResult], duration_s: float,
                  target: ModelTarget | None) -> ClassReport:
    ok = [r for r in results if r.ok]
    errors = Counter(r.error or f"http {r.status}" for r in results if not r.ok)
    span = max(duration_s, 1e-9)
    output = sum(r.output_tokens for r in ok)
    return ClassReport(
        service_class=name, requests=len(results), ok=len(ok), errors=len(results) - len(ok),
        errors_by_kind=dict(sorted(errors.items())),
        prompt_tokens=sum(r.prompt_tokens for r in ok), output_tokens=output,
        ttft_ms=Summary.of([r.ttft_s for r in ok if r.ttft_s is not None]),
        itl_ms=Summary.of([x for r in ok for x in r.itl_s]),
        e2e_ms=Summary.of([r.e2e_s for r in ok if r.e2e_s is not None]),
        throughput_rps=len(ok) / span, output_tokens_per_s=output / span,
        slo=_slo(results, target) if target is not None else None,
    )


def build_report(results: Sequence[RequestResult], targets: Sequence[str], duration_s: float,
                 class_targets: Mapping[str, ModelTarget] | None = None) -> LoadReport:
    """Summarise a run; `class_targets` maps class name -> the model's targets."""
    class_targets = class_targets or {}
    by_class: dict[str, list[RequestResult]] = {}
    for r in results:
        by_class.setdefault(r.service_class or NO_CLASS, []).append(r)
    classes = [_class_report(name, rs, duration_s, class_targets.get(name))
               for name, rs in sorted(by_class.items())]
    lag = max((r.sent_s - r.scheduled_s for r in results), default=0.0)
    return LoadReport(
        targets=list(targets), duration_s=duration_s, max_send_lag_ms=max(lag, 0.0) * 1000,
        overall=_class_report("(all)", list(results), duration_s, None), classes=classes,
    )
