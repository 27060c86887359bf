"""The evaluation's outputs: `summary.json`, `report.md` and the PNG plots.

`evaluate(scenario, data_dir, out_dir)` runs every policy of the scenario on the same
arrivals, summarises each (`controller.evaluation.metrics`), checks fleetplan's row
against the goals, renders the report and the plots, and only then writes everything
into `out_dir` (each file through a temporary file and a rename): a failed run leaves
nothing half-written.

To extend: a new report section is one function returning markdown lines, called in
`render_markdown`.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from controller.evaluation.calibration import Sizer, make_sizer
from controller.evaluation.metrics import goals, summarize, targets_by_server
from controller.evaluation.plots import PLOTS
from controller.evaluation.progress import PolicyProgress
from controller.evaluation.run import PolicyRun, run_policy, timing_laws
from controller.evaluation.scenario import Scenario, make_requests
from controller.evaluation.sizing import RequestIndex
from controller.evaluation.tail_validation import validate_tails
from controller.evaluation.validation import validate_scenario
from queue_models.capacity_model import CapacityTableModel
from simulator.records import SimRequest
from specs.documents import FleetSpec

Progress = Callable[[str], None]


def evaluate(scenario: Scenario, data_dir: Path, out_dir: Path,
             policies: Sequence[str] | None = None, progress: Progress | None = None,
             validation: bool = False, cache_dir: Path | None = None,
             bar: PolicyProgress | None = None) -> dict[str, Any]:
    """Run, summarise, write (see the module docstring); returns the summary. With
    `validation`, also the queue-model validation on the scenario's hardware
    (`validation.md`, `validation.json`, and a section of the report). Capacity tables
    are kept in `cache_dir` when given (else in memory, for this run). `bar` is told each
    policy's simulated time after every control period."""
    say = progress or (lambda _: None)
    requests = make_requests(scenario, data_dir)
    truth = scenario.fleet()
    index = RequestIndex(requests)
    sizer = make_sizer(scenario, index, timing_laws(scenario, data_dir), cache_dir)
    runs: dict[str, PolicyRun] = {}
    for name in policies or scenario.policies:
        say(f"{scenario.name}: running {name} over {len(requests)} requests")
        runs[name] = run_policy(scenario, name, requests, truth, data_dir, sizer, bar)
        say(f"{scenario.name}: {name} done in {runs[name].wall_s:.1f} s")
    rows = {name: summarize(run, truth, scenario.duration_s) for name, run in runs.items()}
    summary = {"scenario": scenario.name, "description": scenario.description,
               "duration_s": scenario.duration_s, "period_s": scenario.period_s,
               "workload": workload_figures(scenario, requests),
               "targets": {s: {"ttft_ms": t, "itl_ms": i}
                           for s, (t, i) in targets_by_server(truth).items()},
               "policies": rows, "goals": goals(rows)}
    extra: dict[str, str] = {}
    sections: list[str] = []
    if validation:
        say(f"{scenario.name}: queue-model validation")
        extra, sections = _validation(scenario, data_dir, truth, sizer, index)
    markdown = render_markdown(summary, list(PLOTS), ["\n".join(sections)] if sections else [])
    write_outputs(out_dir, summary, markdown, runs, rows, extra)
    return summary


def _validation(scenario: Scenario, data_dir: Path, truth: FleetSpec, sizer: Sizer,
                index: RequestIndex) -> tuple[dict[str, str], list[str]]:
    """validation.md/.json and the report's section: the tail validation of capacity-table
    sizing, or the analytic model's means against one simulated replica."""
    if truth.optimizer.queue_model == CapacityTableModel.name:
        tails = validate_tails(truth, sizer, index)
        files = {"validation.md": tails.to_markdown(),
                 "validation.json": json.dumps(tails.to_json(), indent=2) + "\n"}
        return files, ["## Capacity-table validation on the whole trace", "",
                       "Each feasible accelerator's sized configuration replayed on this "
                       "hardware with every request of the run (the sizing saw a sample), at "
                       "0.8, 1.0 and 1.2 times the per-replica rate it allows, alone and in "
                       "the pool the configured load needs; predicted p99 from the tables. "
                       "Full table: [validation.md](validation.md).", "",
                       *(f"- {line}" for line in tails.findings())]
    result = validate_scenario(scenario, data_dir)
    files = {"validation.md": result.to_markdown(),
             "validation.json": json.dumps(result.to_json(), indent=2) + "\n"}
    return files, ["## Queue-model validation on this hardware", "",
                   "Predicted (queue model, the spec's profiles) against one simulated "
                   "replica (the scenario's hardware), Poisson arrivals at fixed sizes; "
                   "error = (predicted - simulated) / simulated. Full table: "
                   "[validation.md](validation.md).", "",
                   *(f"- {line}" for line in result.findings())]


def workload_figures(scenario: Scenario, requests: Sequence[SimRequest]) -> dict[str, Any]:
    """Per server: requests, mean and peak 1-minute rate, mean tokens."""
    out = {}
    for w in scenario.workloads:
        mine = [r for r in requests if r.server == w.server]
        bins: dict[int, int] = {}
        for r in mine:
            bins[int(r.time_s // 60)] = bins.get(int(r.time_s // 60), 0) + 1
        n = max(len(mine), 1)
        out[w.server] = {
            "source": w.trace.path if w.trace else "synthetic",
            "requests": len(mine),
            "mean_rps": round(len(mine) / scenario.duration_s, 3),
            "peak_1min_rps": round(max(bins.values(), default=0) / 60.0, 3),
            "mean_prompt_tokens": round(sum(r.prompt_tokens for r in mine) / n, 1),
            "mean_output_tokens": round(sum(r.output_tokens for r in mine) / n, 1),
        }
    return out


def _fmt(value: Any, scale: float = 1.0, digits: int = 0) -> str:
    return "-" if value is None else f"{value * scale:,.{digits}f}"


def _table(summary: dict[str, Any]) -> list[str]:
    rows = summary["policies"]
    base = rows.get("static_peak", {}).get("cost")
    lines = ["| policy | cost/h | vs static peak | SLO attainment | by class | TTFT p50 / p99 ms "
             "| ITL p50 / p99 ms | E2E p99 ms | scaling actions | switches |",
             "|---|---:|---:|---:|---|---:|---:|---:|---:|---:|"]
    for name, r in rows.items():
        vs = f"{100 * (r['cost'] / base - 1):+.1f}%" if base else "-"
        classes = ", ".join(f"{c} {100 * v['attainment']:.1f}%"
                            for c, v in r["slo_attainment_by_class"].items())
        lines.append(
            f"| {name} | {r['cost']:.2f} | {vs} | {_fmt(r['slo_attainment'], 100, 2)}% | "
            f"{classes} | {_fmt(r['ttft_p50_ms'])} / {_fmt(r['ttft_p99_ms'])} | "
            f"{_fmt(r['itl_p50_ms'], 1, 1)} / {_fmt(r['itl_p99_ms'], 1, 1)} | "
            f"{_fmt(r['e2e_p99_ms'])} | {r['scaling_actions']} | {r['accelerator_switches']} |")
    return lines


def _goal_lines(summary: dict[str, Any]) -> list[str]:
    g = summary["goals"]
    if not g:
        return ["fleetplan was not run."]
    out = []
    for key, item in g.items():
        value, goal = item["value"], item["goal"]
        short = "met" if item["met"] else f"**not met**, short by {100 * abs(value - goal):.1f} points"
        if key == "slo_attainment":
            text = f"SLO attainment {100 * value:.2f}% (goal >= {100 * goal:.0f}%)"
        elif key == "within_clairvoyant":
            text = (f"cost {100 * -value:+.1f}% against clairvoyant "
                    f"(goal <= {100 * -goal:+.0f}%)")
        else:
            other = key.removeprefix("below_")
            text = f"cost {100 * value:.1f}% below {other} (goal >= {100 * goal:.0f}%)"
        out.append(f"- {text}: {short}")
    return out


def render_markdown(summary: dict[str, Any], plots: Sequence[str],
                    extra_sections: Sequence[str] = ()) -> str:
    """The report text."""
    lines = [f"# Evaluation: {summary['scenario']}", "", summary["description"], "",
             "## Workload", "", "| server | source | requests | mean req/s | peak 1-min req/s "
             "| mean prompt | mean output | TTFT target ms | ITL target ms |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for server, w in summary["workload"].items():
        t = summary["targets"][server]
        lines.append(f"| {server} | {w['source']} | {w['requests']} | {w['mean_rps']} | "
                     f"{w['peak_1min_rps']} | {w['mean_prompt_tokens']} | "
                     f"{w['mean_output_tokens']} | {t['ttft_ms']:g} | {t['itl_ms']:g} |")
    lines += ["", "## Results", "", "Cost in the spec's currency per hour of the run; SLO "
              "attainment is the share of requests meeting both their TTFT and ITL targets.",
              "", *_table(summary), "", "## fleetplan against the goals", "",
              *_goal_lines(summary), "", "## Plots", ""]
    lines += [f"![{p}]({p})" for p in plots]
    lines += ["", "## Notes", ""]
    lines += [f"- {name}: {'; '.join(r['notes']) or '-'} (simulated in {r['wall_s']} s)"
              for name, r in summary["policies"].items()]
    for section in extra_sections:
        lines += ["", section]
    return "\n".join(lines) + "\n"


def write_outputs(out_dir: Path, summary: dict[str, Any], markdown: str,
                  runs: dict[str, PolicyRun], rows: dict[str, dict[str, Any]],
                  extra: dict[str, str] | None = None) -> None:
    """Render plots into a temporary folder, then move every file into `out_dir`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_dir, prefix=".evaluate-") as tmp:
        staging = Path(tmp)
        for name, plot in PLOTS.items():
            plot(runs, rows, staging / name)
        (staging / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        (staging / "report.md").write_text(markdown)
        for name, text in (extra or {}).items():
            (staging / name).write_text(text)
        for path in sorted(staging.iterdir()):
            os.replace(path, out_dir / path.name)
