"""Per-server figures from per-variant ones (pure).

A server may run on several variants (accelerator types, max batches). Its arrival and
completion rates and replica count are sums; token means and mean TTFT are weighted by
each variant's completions, mean ITL by its generated tokens (completions x output
tokens), and the p95 TTFT is the worst variant's (a conservative bound: percentiles do
not average). A variant whose figure is unknown makes the server's figure `partial` (if
another variant has it) or unknown: never a sum that silently dropped a part.

To extend: another aggregate is one more entry in `servers_of` using `_sum`, `_weighted`
or `_max`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from collector.estimate import combine, unknown, worst
from collector.snapshot import Figure, FigureStatus, ServerSnapshot, VariantSnapshot

Pick = Callable[[VariantSnapshot], Figure]


def _partial_if_some_missing(figure: Figure, used: int, total: int) -> Figure:
    if used < total and figure.known:
        return figure.with_status(worst(figure.status, FigureStatus.PARTIAL))
    return figure


def _sum(variants: Sequence[VariantSnapshot], pick: Pick) -> Figure:
    figures = [pick(v) for v in variants]
    known = [f for f in figures if f.known]
    if not known:
        return unknown(*figures)
    total = combine(sum(f.value or 0.0 for f in known), *known)
    return _partial_if_some_missing(total, len(known), len(figures))


def _weighted(variants: Sequence[VariantSnapshot], pick: Pick,
              weight: Callable[[VariantSnapshot], float | None]) -> Figure:
    figures = [pick(v) for v in variants]
    pairs = [(f, weight(v)) for f, v in zip(figures, variants, strict=True)
             if f.known and weight(v)]
    if not pairs:
        return unknown(*figures) if not any(f.known for f in figures) else Figure.nan()
    total = sum(w or 0.0 for _, w in pairs)
    mean = sum((f.value or 0.0) * (w or 0.0) for f, w in pairs) / total
    return _partial_if_some_missing(combine(mean, *(f for f, _ in pairs)), len(pairs),
                                    len(figures))


def _max(variants: Sequence[VariantSnapshot], pick: Pick) -> Figure:
    figures = [pick(v) for v in variants]
    known = [f for f in figures if f.known]
    if not known:
        return unknown(*figures)
    found = combine(max(f.value or 0.0 for f in known), *known)
    return _partial_if_some_missing(found, len(known), len(figures))


def _completions(v: VariantSnapshot) -> float | None:
    return v.completion_rate_rps.value if v.completion_rate_rps.known else None


def _tokens(v: VariantSnapshot) -> float | None:
    rate = _completions(v)
    out = v.out_tokens.value if v.out_tokens.known else None
    return rate * out if rate is not None and out is not None else None


def server_of(name: str, variants: Sequence[VariantSnapshot]) -> ServerSnapshot:
    """One server's aggregate over its variants."""
    return ServerSnapshot(
        name=name, variants=tuple(v.name for v in variants),
        arrival_rate_rps=_sum(variants, lambda v: v.arrival_rate_rps),
        completion_rate_rps=_sum(variants, lambda v: v.completion_rate_rps),
        in_tokens=_weighted(variants, lambda v: v.in_tokens, _completions),
        out_tokens=_weighted(variants, lambda v: v.out_tokens, _completions),
        ttft_mean_ms=_weighted(variants, lambda v: v.ttft_mean_ms, _completions),
        ttft_p95_ms=_max(variants, lambda v: v.ttft_p95_ms),
        itl_mean_ms=_weighted(variants, lambda v: v.itl_mean_ms, _tokens),
        replicas=_sum(variants, lambda v: v.replicas),
    )


def servers_of(variants: Sequence[VariantSnapshot]) -> tuple[ServerSnapshot, ...]:
    """Every named server's aggregate, sorted by name (variants without a server skipped)."""
    groups: dict[str, list[VariantSnapshot]] = {}
    for variant in variants:
        if variant.server:
            groups.setdefault(variant.server, []).append(variant)
    return tuple(server_of(name, groups[name]) for name in sorted(groups))
