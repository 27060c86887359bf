"""The report of a `fleetplan up` run: SLO attainment, cost, and four PNG plots.

`attainment(results, spec)` counts, per service class, the requests that completed within
their class's TTFT and ITL targets (per request: TTFT, and the request's mean ITL).
`write_report(result, out_dir)` writes `report.md` with a summary table, the latency
targets, the held-off actions explained (`controller.report_sections`) and the plots
(matplotlib, Agg backend): `load_capacity.png` (scheduled and completed load against the
capacity of the ready replicas), `replicas.png` (replicas per accelerator),
`latency.png` (predicted vs measured mean TTFT and ITL per class, per tick, with each
class's targets as dotted lines) and `cost.png` (cost per hour of the running fleet and
of the plan, from 0).

To extend: a new figure is one function `(result) -> Figure` listed in `PLOTS`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from controller.embedded.session import SessionResult  # noqa: E402
from controller.report_sections import held_off_lines, target_lines  # noqa: E402
from serving.loadclient import RequestResult  # noqa: E402
from specs.documents import FleetSpec  # noqa: E402


@dataclass(frozen=True)
class ClassAttainment:
    """SLO attainment of one service class."""

    service_class: str
    requests: int
    completed: int
    met: int
    mean_ttft_ms: float | None
    mean_itl_ms: float | None

    @property
    def attainment(self) -> float:
        """Share of requests that met both targets."""
        return self.met / self.requests if self.requests else 1.0


def _targets(spec: FleetSpec) -> dict[str, tuple[float, float]]:
    """(TTFT, ITL) target per class: its first model's (the example serves one model)."""
    return {c.name: (c.targets[0].ttft_ms, c.targets[0].itl_ms) if c.targets else (0.0, 0.0)
            for c in spec.service_classes}


def _mean_itl_ms(r: RequestResult) -> float | None:
    return 1000.0 * sum(r.itl_s) / len(r.itl_s) if r.itl_s else None


def _met(r: RequestResult, ttft_ms: float, itl_ms: float) -> bool:
    if not r.ok or r.ttft_s is None:
        return False
    itl = _mean_itl_ms(r)
    return (ttft_ms <= 0 or r.ttft_s * 1000.0 <= ttft_ms) and (
        itl_ms <= 0 or itl is None or itl <= itl_ms)


def attainment(results: Sequence[RequestResult], spec: FleetSpec) -> list[ClassAttainment]:
    """Per class (see the module docstring), sorted by class name."""
    targets = _targets(spec)
    out = []
    for name in sorted(targets):
        mine = [r for r in results if r.service_class == name]
        done = [r for r in mine if r.ok and r.ttft_s is not None]
        itls = [x for x in (_mean_itl_ms(r) for r in done) if x is not None]
        out.append(ClassAttainment(
            name, len(mine), len(done), sum(_met(r, *targets[name]) for r in mine),
            1000.0 * sum(r.ttft_s or 0.0 for r in done) / len(done) if done else None,
            sum(itls) / len(itls) if itls else None))
    return out


def load_figure(result: SessionResult) -> Figure:
    """Scheduled and completed load against the capacity of the ready replicas."""
    s = result.samples
    fig, ax = plt.subplots(figsize=(8, 4))
    ax.plot([x.t for x in s], [x.scheduled_rps for x in s], label="scheduled load")
    ax.plot([x.t for x in s], [x.completed_rps for x in s], label="completed", alpha=0.5)
    ax.plot([x.t for x in s], [x.capacity_rps for x in s], label="capacity (ready replicas)")
    ax.set(xlabel="time (s)", ylabel="requests/s", title="Load vs capacity")
    ax.legend()
    return fig


def replicas_figure(result: SessionResult) -> Figure:
    """Replicas per accelerator, stacked."""
    s = result.samples
    accelerators = sorted({a for x in s for a in x.per_accelerator})
    fig, ax = plt.subplots(figsize=(8, 4))
    if accelerators:
        ax.stackplot([x.t for x in s], *[[x.per_accelerator.get(a, 0) for x in s]
                                         for a in accelerators], labels=accelerators, step="post")
        ax.legend(loc="upper left")
    ax.set(xlabel="time (s)", ylabel="replicas", title="Replicas per accelerator")
    return fig


def _predicted(result: SessionResult, server: str) -> tuple[list[float], list[float], list[float]]:
    ts, ttft, itl = [], [], []
    for t, report in result.ticks:
        alloc = report.plan.allocation(server) if report.plan else None
        if alloc is None or not alloc.variants:
            continue
        ts.append(t)
        ttft.append(sum(v.router_weight * v.predicted_ttft_ms for v in alloc.variants))
        itl.append(sum(v.router_weight * v.predicted_itl_ms for v in alloc.variants))
    return ts, ttft, itl


def _measured(result: SessionResult, klass: str, bucket_s: float,
              ) -> tuple[list[float], list[float], list[float]]:
    buckets: dict[int, list[RequestResult]] = {}
    for r in result.results:
        if r.service_class == klass and r.ok and r.ttft_s is not None:
            buckets.setdefault(int(r.scheduled_s // bucket_s), []).append(r)
    ts, ttft, itl = [], [], []
    for b, rs in sorted(buckets.items()):
        ts.append((b + 0.5) * bucket_s)
        ttft.append(1000.0 * sum(r.ttft_s or 0.0 for r in rs) / len(rs))
        itls = [x for x in (_mean_itl_ms(r) for r in rs) if x is not None]
        itl.append(sum(itls) / len(itls) if itls else float("nan"))
    return ts, ttft, itl


def latency_figure(result: SessionResult) -> Figure:
    """Measured (solid) and predicted (dashed) mean TTFT and ITL per server, with its
    class's targets (dotted, one line per distinct target)."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    drawn: set[tuple[int, float]] = set()
    for server in result.spec.servers:
        pt, pttft, pitl = _predicted(result, server.name)
        mt, mttft, mitl = _measured(result, server.service_class, result.options.period_s)
        target = result.spec.targets_for(server)
        for i, (predicted, measured, goal) in enumerate(
                ((pttft, mttft, target.ttft_ms), (pitl, mitl, target.itl_ms))):
            ax = axes[i]
            line = ax.plot(mt, measured, label=f"{server.name} measured")[0]
            ax.plot(pt, predicted, "--", color=line.get_color(), label=f"{server.name} predicted")
            if goal > 0 and (i, goal) not in drawn:
                drawn.add((i, goal))
                ax.axhline(goal, linestyle=":", color=line.get_color(),
                           label=f"{server.service_class} target {goal:g} ms")
    axes[0].set(xlabel="time (s)", ylabel="mean TTFT (ms)", title="TTFT")
    axes[1].set(xlabel="time (s)", ylabel="mean ITL (ms)", title="ITL")
    for ax in axes:
        ax.set_ylim(bottom=0)
        ax.legend(fontsize=8)
    return fig


def cost_figure(result: SessionResult) -> Figure:
    """Cost per hour of the running fleet and of the plan; the axis starts at 0."""
    s = result.samples
    fig, ax = plt.subplots(figsize=(8, 4))
    ax.plot([x.t for x in s], [x.cost_per_hour for x in s], label="running fleet")
    planned = [(t, r.plan.total_cost_per_hour) for t, r in result.ticks if r.plan]
    if planned:
        ax.step([t for t, _ in planned], [c for _, c in planned], where="post", label="plan")
    ax.set(xlabel="time (s)", ylabel="cost per hour", title="Cost")
    ax.set_ylim(bottom=0)
    ax.legend()
    return fig


PLOTS: dict[str, Callable[[SessionResult], Figure]] = {
    "load_capacity.png": load_figure, "replicas.png": replicas_figure,
    "latency.png": latency_figure, "cost.png": cost_figure,
}


def _save(figure: Figure, path: Path) -> None:
    figure.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(figure)


def summary_lines(result: SessionResult) -> list[str]:
    """The markdown summary table rows (also printed at the end of the run)."""
    samples = result.samples
    mean_cost = sum(s.cost_per_hour for s in samples) / len(samples) if samples else 0.0
    spent = sum(s.cost_per_hour for s in samples) / 3600.0
    statuses: dict[str, int] = {}
    for _, r in result.ticks:
        statuses[r.status] = statuses.get(r.status, 0) + 1
    lines = ["| class | requests | completed | met SLO | attainment | mean TTFT ms | "
             "mean ITL ms |", "|---|---:|---:|---:|---:|---:|---:|"]
    for a in attainment(result.results, result.spec):
        lines.append(f"| {a.service_class} | {a.requests} | {a.completed} | {a.met} | "
                     f"{a.attainment:.1%} | {a.mean_ttft_ms or 0:.0f} | {a.mean_itl_ms or 0:.1f} |")
    peak = max((sum(s.per_accelerator.values()) for s in samples), default=0)
    lines += ["", f"- duration: {result.elapsed_s:.0f} s; ticks: "
              + ", ".join(f"{k} {v}" for k, v in sorted(statuses.items())),
              f"- mean cost of the running fleet: {mean_cost:.2f} per hour; spent "
              f"{spent:.3f} in the run; peak replicas {peak}",
              f"- held-off actions: {sum(len(r.held) for _, r in result.ticks)} "
              "(changes the stabiliser postponed; report.md explains them)"]
    return lines


def write_report(result: SessionResult, out_dir: Path) -> Path:
    """Plots and `report.md` in `out_dir`; returns the report's path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, figure in PLOTS.items():
        _save(figure(result), out_dir / name)
    text = ["# fleetplan up: run report", "",
            f"Built-in example ({len(result.spec.servers)} servers, accelerators "
            f"{', '.join(a.name for a in result.spec.accelerators)}), "
            f"{result.options.duration_s:g} s schedule (ramp, plateau, burst, fall), "
            f"control period {result.options.period_s:g} s.", "",
            *summary_lines(result), "", *target_lines(result.spec), "",
            *[f"![{name[:-4]}]({name})" for name in PLOTS], "",
            *held_off_lines(result.ticks), "",
            "Decision log: `decisions.jsonl` (one line per tick); fleet: `fleet.json`."]
    path = out_dir / "report.md"
    path.write_text("\n".join(text) + "\n", encoding="utf-8")
    return path
