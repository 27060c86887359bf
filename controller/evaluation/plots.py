"""PNG plots of an evaluation (matplotlib, Agg backend): one function per figure.

- `load_capacity.png`: arrivals per second (1-minute bins, all servers) and each
  policy's ready capacity (ready replicas times planned max rate per replica);
- `replicas.png`: replicas per accelerator over time, one panel per policy;
- `latency.png`: p99 TTFT and p99 ITL per minute of arrival, per policy;
- `cost.png`: cost per hour and SLO attainment per policy.

To extend: a new figure is one function `(runs, rows, path)` listed in `PLOTS`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from controller.evaluation.run import PolicyRun  # noqa: E402

Runs = Mapping[str, PolicyRun]
Rows = Mapping[str, Mapping[str, Any]]
BIN_S = 60.0


def _minutes(values: Sequence[float]) -> np.ndarray:
    return np.asarray(values) / 60.0


def load_capacity(runs: Runs, rows: Rows, path: Path) -> None:
    """Arrivals against each policy's ready capacity."""
    fig, ax = plt.subplots(figsize=(10, 4.5))
    first = next(iter(runs.values()))
    arrivals = [r.arrival_s for r in first.records]
    end = max(s.time_s for s in first.samples)
    edges = np.arange(0.0, end + BIN_S, BIN_S)
    counts, _ = np.histogram(arrivals, bins=edges)
    ax.step(_minutes(edges[:-1]), counts / BIN_S, where="post", color="black", lw=1.5,
            label="arrivals (req/s)")
    for name, run in runs.items():
        ax.plot(_minutes([s.time_s for s in run.samples]),
                [sum(s.capacity_rps.values()) for s in run.samples], lw=1, label=name)
    ax.set(xlabel="minutes", ylabel="req/s", title="Load and ready capacity")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def replicas(runs: Runs, rows: Rows, path: Path) -> None:
    """Stacked replicas per accelerator, one panel per policy."""
    fig, axes = plt.subplots(len(runs), 1, figsize=(10, 2.0 * len(runs)), sharex=True,
                             squeeze=False)
    accelerators = sorted({a for run in runs.values() for s in run.samples for a in s.replicas})
    for ax, (name, run) in zip(axes[:, 0], runs.items(), strict=True):
        t = _minutes([s.time_s for s in run.samples])
        stack = [[s.replicas.get(a, 0) for s in run.samples] for a in accelerators]
        ax.stackplot(t, stack, labels=accelerators, step="post")
        ax.set_ylabel(name, fontsize=8)
    axes[0, 0].legend(fontsize=8, loc="upper left")
    axes[-1, 0].set_xlabel("minutes")
    fig.suptitle("Replicas per accelerator (any phase)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def latency(runs: Runs, rows: Rows, path: Path) -> None:
    """p99 TTFT and ITL per minute of arrival."""
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 6), sharex=True)
    for name, run in runs.items():
        t, ttft, itl = _per_minute_p99(run)
        top.plot(t, ttft, lw=1, label=name)
        bottom.plot(t, itl, lw=1, label=name)
    top.set(ylabel="p99 TTFT (ms)", yscale="log", title="Latency per minute of arrival")
    bottom.set(ylabel="p99 ITL (ms)", xlabel="minutes")
    top.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _per_minute_p99(run: PolicyRun) -> tuple[list[float], list[float], list[float]]:
    groups: dict[int, list[tuple[float, float | None]]] = {}
    for r in run.records:
        if r.ttft_s is not None and r.finish_s is not None:
            groups.setdefault(int(r.arrival_s // BIN_S), []).append(
                (r.ttft_s * 1000.0, None if r.itl_s is None else r.itl_s * 1000.0))
    t, ttft, itl = [], [], []
    for minute in sorted(groups):
        values = groups[minute]
        itls = [i for _, i in values if i is not None]
        t.append(minute)
        ttft.append(float(np.percentile([x for x, _ in values], 99)))
        itl.append(float(np.percentile(itls, 99)) if itls else float("nan"))
    return t, ttft, itl


def cost(runs: Runs, rows: Rows, path: Path) -> None:
    """Cost per hour, annotated with SLO attainment."""
    names = list(rows)
    fig, ax = plt.subplots(figsize=(8, 4))
    bars = ax.bar(names, [rows[n]["cost"] for n in names], color="tab:blue")
    for bar, name in zip(bars, names, strict=True):
        share = rows[name]["slo_attainment"] or 0.0
        ax.annotate(f"{100 * share:.1f}% SLO", (bar.get_x() + bar.get_width() / 2,
                                                 bar.get_height()),
                    ha="center", va="bottom", fontsize=8)
    ax.set(ylabel="cost per hour", title="Cost and SLO attainment")
    ax.tick_params(axis="x", labelsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


PLOTS: dict[str, Callable[[Runs, Rows, Path], None]] = {
    "load_capacity.png": load_capacity,
    "replicas.png": replicas,
    "latency.png": latency,
    "cost.png": cost,
}
