"""Text sections of the `fleetplan up` report: the latency targets the run is judged by,
and the actions the stabiliser held off, explained.

`target_lines(spec)` is a markdown table of every service class's targets per model (with
the statistic each bounds: mean or a percentile). `held_off_lines(ticks)` says what a
held-off action is, counts them by kind with what each kind means, and lists them (the
first `MAX_HELD_ROWS`) with the stabiliser's own reason, from the tick reports' `held`.

To extend: a new stabiliser hold kind gets a sentence in `HELD_KINDS`; a new section is
one function returning markdown lines, called from `controller.report.write_report`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from controller.tick import TickReport
from specs.documents import FleetSpec, ModelTarget

MAX_HELD_ROWS = 20
"""Held-off actions listed one per row; the rest are only counted."""

HELD_KINDS = {
    "scale-down": "a lower replica count was proposed, but a higher one was proposed within "
    "the scale-down delay, so the variant keeps its replicas until the lower proposals "
    "have held for the whole delay (as Kubernetes' HPA stabilises scale-down)",
    "step-down": "fewer replicas were proposed than one tick may remove; the variant "
    "scales down by the maximum step",
    "step-up": "more replicas were proposed than one tick may add; the variant scales up "
    "by the maximum step",
    "switch": "a move to another accelerator was proposed, but it saves less than the "
    "minimum switch saving, so the server stays on its accelerators, resized for the load",
}
"""What each kind of held-off action means (`controller.stabilize.HeldKind`)."""


def _target(value: float, statistic: str) -> str:
    if value <= 0:
        return "none"
    return f"{value:g} ms" + ("" if ModelTarget.percentile(statistic) is None
                             else f" ({statistic})")


def target_lines(spec: FleetSpec) -> list[str]:
    """The latency targets per service class and model (markdown)."""
    lines = ["## Latency targets", "",
             "A request meets its class's targets when its TTFT and its own mean ITL are "
             "within them; the latency plot draws them as dotted lines.", "",
             "| class | priority | model | TTFT target | ITL target |",
             "|---|---:|---|---:|---:|"]
    for c in sorted(spec.service_classes, key=lambda c: (c.priority, c.name)):
        for t in sorted(c.targets, key=lambda t: t.model):
            lines.append(f"| {c.name} | {c.priority} | {t.model} | "
                         f"{_target(t.ttft_ms, t.ttft_statistic)} | "
                         f"{_target(t.itl_ms, t.itl_statistic)} |")
    return lines


def held_off_lines(ticks: Sequence[tuple[float, TickReport]]) -> list[str]:
    """What the stabiliser held off, by kind and one row per action (markdown)."""
    rows = [(t, h) for t, report in ticks for h in report.held]
    lines = ["## Held-off actions", "",
             "A held-off action is a change the optimizer proposed that the stabiliser "
             "postponed or cut short, so the fleet does not flap with every new answer; "
             "the tick applied the kept count instead. "
             f"This run: {len(rows)} held off in {len(ticks)} ticks."]
    if not rows:
        return lines
    lines.append("")
    for kind, count in sorted(Counter(h.kind for _, h in rows).items()):
        lines.append(f"- {kind} ({count}): {HELD_KINDS.get(kind, 'see controller/stabilize.py')}")
    lines += ["", "| time s | server | accelerator | kind | proposed | kept | reason |",
              "|---:|---|---|---|---:|---:|---|"]
    for t, h in rows[:MAX_HELD_ROWS]:
        lines.append(f"| {t:.0f} | {h.server} | {h.accelerator} | {h.kind} | {h.proposed} | "
                     f"{h.kept} | {h.reason} |")
    if len(rows) > MAX_HELD_ROWS:
        lines.append(f"\n{len(rows) - MAX_HELD_ROWS} more in `decisions.jsonl` (`held`).")
    return lines
