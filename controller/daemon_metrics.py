"""The daemon's `/metrics`: the last tick as Prometheus gauges (built at scrape time).

`LoopMetrics(view)` is a prometheus_client collector over a `view()` returning the last
`TickReport` and the fleet last observed; each scrape renders, all prefixed `fleetplan_`:

- `tick_stage_seconds{stage}`, `tick_seconds`, `ticks_total{status}`, `last_tick_time_seconds`;
- `metrics_up`: 1 when the last tick read the fleet and its metrics source, 0 during an
  outage (the tick held the fleet; /readyz answers 503 meanwhile);
- `plan_cost_per_hour`, `desired_replicas{variant,server,accelerator}` (the final plan),
  `actual_replicas{variant,server,accelerator}` and `ready_replicas{...}` (the fleet);
- `predicted_ttft_ms{variant}`, `predicted_itl_ms{variant}`, `router_weight{variant}`;
- `load_rps{server,kind}` (measured, forecast, sizing), `held_actions`;
- `tuner_parameter{model,accelerator,parameter}` (alpha_ms, beta_ms, gamma_ms).

Metrics mode (an HPA or KEDA reading `desired_replicas`) uses the same gauges.

To extend: one more family in `collect`, named `fleetplan_<what>_<unit>`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from actuator.base import FleetState, variant_name
from controller.tick import TickReport, blind

View = Callable[[], tuple[TickReport | None, FleetState | None, Counter[str]]]
_V = ["variant", "server", "accelerator"]


class LoopMetrics(Collector):
    """See the module docstring."""

    def __init__(self, view: View) -> None:
        self.view = view

    def collect(self) -> Iterator[Metric]:
        """Every family, from the last tick."""
        report, fleet, statuses = self.view()
        ticks = CounterMetricFamily("fleetplan_ticks", "Ticks by status.", labels=["status"])
        for status, n in sorted(statuses.items()):
            ticks.add_metric([status], n)
        yield ticks
        if report is not None:
            yield from self._outage(report)
            yield from self._timings(report)
            yield from self._plan(report)
            yield from self._loads(report)
            yield from self._tuner(report)
        if fleet is not None:
            yield from self._fleet(fleet)

    def _outage(self, report: TickReport) -> Iterator[Metric]:
        up = 0.0 if blind(report) else 1.0
        yield GaugeMetricFamily("fleetplan_metrics_up", "1 when the last tick read the fleet "
                                "and its metrics source, 0 during an outage (the fleet is held).",
                                value=up)

    def _timings(self, report: TickReport) -> Iterator[Metric]:
        stage = GaugeMetricFamily("fleetplan_tick_stage_seconds", "Last tick's time per stage.",
                                  labels=["stage"])
        for name, ms in report.timings_ms.items():
            stage.add_metric([name], ms / 1000.0)
        yield stage
        yield GaugeMetricFamily("fleetplan_tick_seconds", "Last tick's total time.",
                                value=report.total_ms / 1000.0)
        yield GaugeMetricFamily("fleetplan_last_tick_time_seconds", "Loop clock at the last "
                                "tick.", value=report.time_s)
        yield GaugeMetricFamily("fleetplan_held_actions", "Actions held off at the last tick.",
                                value=len(report.held))

    def _plan(self, report: TickReport) -> Iterator[Metric]:
        plan = report.plan
        if plan is None:
            return
        yield GaugeMetricFamily("fleetplan_plan_cost_per_hour", "Cost of the final plan.",
                                value=plan.total_cost_per_hour)
        families = {
            "desired": GaugeMetricFamily("fleetplan_desired_replicas", "Replicas in the final "
                                         "plan.", labels=_V),
            "ttft": GaugeMetricFamily("fleetplan_predicted_ttft_ms", "Predicted TTFT.",
                                      labels=_V),
            "itl": GaugeMetricFamily("fleetplan_predicted_itl_ms", "Predicted ITL.", labels=_V),
            "weight": GaugeMetricFamily("fleetplan_router_weight", "Router weight.", labels=_V),
        }
        for alloc in plan.allocations:
            for v in alloc.variants:
                labels = [variant_name(alloc.server, v.accelerator), alloc.server, v.accelerator]
                families["desired"].add_metric(labels, v.replicas)
                families["ttft"].add_metric(labels, v.predicted_ttft_ms)
                families["itl"].add_metric(labels, v.predicted_itl_ms)
                families["weight"].add_metric(labels, v.router_weight)
        yield from families.values()

    def _loads(self, report: TickReport) -> Iterator[Metric]:
        family = GaugeMetricFamily("fleetplan_load_rps", "Arrival rate: measured, forecast "
                                   "one start-up ahead, sized for.", labels=["server", "kind"])
        for server, load in sorted(report.measured.items()):
            family.add_metric([server, "measured"], load.arrival_rate_rps)
        for server, rate in sorted(report.forecast_rps.items()):
            family.add_metric([server, "forecast"], rate)
        for server, load in sorted(report.sizing.items()):
            family.add_metric([server, "sizing"], load.arrival_rate_rps)
        yield family

    def _tuner(self, report: TickReport) -> Iterator[Metric]:
        family = GaugeMetricFamily("fleetplan_tuner_parameter", "Tuned profile parameters, ms.",
                                   labels=["model", "accelerator", "parameter"])
        for t in report.tuned:
            for name in ("alpha_ms", "beta_ms", "gamma_ms"):
                family.add_metric([t.model, t.accelerator, name], getattr(t, name))
        yield family

    def _fleet(self, fleet: FleetState) -> Iterator[Metric]:
        actual = GaugeMetricFamily("fleetplan_actual_replicas", "Replicas configured on the "
                                   "fleet.", labels=_V)
        ready = GaugeMetricFamily("fleetplan_ready_replicas", "Replicas ready.", labels=_V)
        for v in fleet.variants:
            actual.add_metric([v.variant, v.server, v.accelerator], v.replicas)
            ready.add_metric([v.variant, v.server, v.accelerator], v.ready_replicas)
        yield actual
        yield ready
