"""The `fleetplan up` report: it states the targets, draws them on the latency plot, starts
the cost axis at 0 and explains the actions the stabiliser held off."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import pytest

from controller import report
from controller.embedded.example import fleet_document
from controller.embedded.session import Sample, SessionResult, UpOptions
from controller.tick import Held, TickReport
from serving.loadclient import RequestResult
from specs.documents import FleetSpec, Load
from specs.plan import Plan, ServerAllocation, VariantAllocation


def _plan(spec: FleetSpec, replicas: int) -> Plan:
    allocations = []
    for server in spec.servers:
        variant = VariantAllocation(
            accelerator="A100", card_type="A100", replicas=replicas, max_batch=16, cards=replicas,
            cost_per_hour=4.6 * replicas, arrival_rate_rps=2.0, router_weight=1.0,
            predicted_ttft_ms=150.0, predicted_itl_ms=20.0)
        allocations.append(ServerAllocation(
            server=server.name, model=server.model, service_class=server.service_class,
            priority=1, load=Load(arrival_rate_rps=2.0, in_tokens=256, out_tokens=32),
            variants=[variant], cost_per_hour=variant.cost_per_hour))
    return Plan(allocations=allocations,
                total_cost_per_hour=sum(a.cost_per_hour for a in allocations))


def _result() -> SessionResult:
    spec = FleetSpec.model_validate(fleet_document())
    result = SessionResult(spec=spec, options=UpOptions(duration_s=60.0, period_s=10.0))
    for t in range(0, 60, 5):
        result.samples.append(Sample(
            t=float(t), scheduled_rps=2.0, completed_rps=2.0, desired={"A100": 2},
            ready={"a100": 2}, per_accelerator={"A100": 2}, cost_per_hour=9.2 + t / 10,
            capacity_rps=5.0))
    server = spec.servers[0].name
    held = Held(server=server, accelerator="A100", kind="scale-down", proposed=1, kept=2,
                reason="2 proposed within the last 30 s; 1 in 20 s if the lower plan holds")
    for tick, t in enumerate((10.0, 20.0, 30.0), start=1):
        result.ticks.append((t, TickReport(
            tick=tick, time_s=t, status="applied", plan=_plan(spec, 2),
            held=[held] if tick == 2 else [])))
    for i in range(40):
        klass = spec.servers[i % len(spec.servers)].service_class
        result.results.append(RequestResult(
            target="u", service_class=klass, scheduled_s=i * 1.5, status=200, ttft_s=0.12,
            e2e_s=1.0, itl_s=[0.02] * 31, chunks=32, output_tokens=32))
    result.elapsed_s = 60.0
    return result


def test_report_states_the_targets_and_explains_held_off_actions(tmp_path: Path) -> None:
    result = _result()
    text = report.write_report(result, tmp_path).read_text()
    for server in result.spec.servers:
        target = result.spec.targets_for(server)
        assert f"| {server.service_class} |" in text
        assert f"{target.ttft_ms:g} ms" in text and f"{target.itl_ms:g} ms" in text
    assert "## Held-off actions" in text
    assert "scale-down" in text and "1 in 20 s if the lower plan holds" in text
    assert "stabiliser" in text  # says what a held-off action is
    for name in report.PLOTS:
        assert (tmp_path / name).is_file()


def test_latency_plot_draws_the_target_lines() -> None:
    result = _result()
    fig = report.latency_figure(result)
    try:
        for ax, field in zip(fig.axes, ("ttft_ms", "itl_ms"), strict=True):
            levels = {line.get_ydata()[0] for line in ax.get_lines()
                      if "target" in line.get_label()}
            wanted = {getattr(result.spec.targets_for(s), field) for s in result.spec.servers}
            assert levels == {w for w in wanted if w > 0}
    finally:
        plt.close(fig)


def test_cost_axis_starts_at_zero() -> None:
    fig = report.cost_figure(_result())
    try:
        assert fig.axes[0].get_ylim()[0] == pytest.approx(0.0)
    finally:
        plt.close(fig)
