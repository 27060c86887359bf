"""The live terminal view of `fleetplan up` (rich): load, replicas per variant, cost, SLOs.

`LiveView` is a callable taking the `SessionResult` so far (called once a second). On a
terminal it redraws a rich table; elsewhere (logs, tests) it prints one plain line every
`every_s` seconds.

To extend: a new row is one more `table.add_row` in `_table`.
"""

from __future__ import annotations

from rich.console import Console
from rich.live import Live
from rich.table import Table

from controller.embedded.session import SessionResult


def _attained(result: SessionResult) -> str:
    from controller.report import attainment

    parts = [f"{a.service_class} {a.attainment:.0%}" for a in
             attainment([r for r in result.results if r.status or r.error], result.spec)]
    return ", ".join(parts) or "-"


def _table(result: SessionResult) -> Table:
    s = result.samples[-1]
    table = Table(title=f"fleetplan up  t={s.t:.0f}/{result.options.duration_s:g} s",
                  show_header=True)
    table.add_column("what")
    table.add_column("value")
    table.add_row("load (scheduled / completed)", f"{s.scheduled_rps:.1f} / "
                  f"{s.completed_rps:.0f} req/s")
    table.add_row("capacity (ready replicas)", f"{s.capacity_rps:.1f} req/s")
    for name in sorted(set(s.desired) | set(s.ready)):
        variant = name.replace("/", "-").lower()
        table.add_row(f"replicas {name}", f"desired {s.desired.get(name, 0)}, ready "
                      f"{s.ready.get(variant, 0)}")
    table.add_row("cost per hour", f"{s.cost_per_hour:.2f}")
    table.add_row("SLO attainment", _attained(result))
    if result.ticks:
        t, report = result.ticks[-1]
        table.add_row("last tick", f"#{report.tick} {report.status} "
                      f"({report.total_ms:.0f} ms), held {len(report.held)}")
    return table


class LiveView:
    """See the module docstring."""

    def __init__(self, console: Console, every_s: float = 10.0) -> None:
        self.console = console
        self.every_s = every_s
        self._live: Live | None = None
        self._printed = -1.0

    def __call__(self, result: SessionResult) -> None:
        """Show the latest sample."""
        if not result.samples:
            return
        if self.console.is_terminal:
            if self._live is None:
                self._live = Live(console=self.console, auto_refresh=False)
                self._live.start()
            self._live.update(_table(result), refresh=True)
            return
        s = result.samples[-1]
        if s.t - self._printed >= self.every_s:
            self._printed = s.t
            replicas = " ".join(f"{k}={v}" for k, v in sorted(s.desired.items()))
            self.console.print(f"t={s.t:5.0f}s load={s.scheduled_rps:4.1f} rps "
                               f"capacity={s.capacity_rps:5.1f} rps {replicas} "
                               f"cost/h={s.cost_per_hour:.2f} SLO {_attained(result)}",
                               highlight=False)

    def close(self) -> None:
        """Stop redrawing."""
        if self._live is not None:
            self._live.stop()
            self._live = None
