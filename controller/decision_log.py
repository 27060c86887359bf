"""The decision log (one JSON line per tick) and replaying a tick from it.

`DecisionLog(path).append(report)` writes a `TickReport` as one line and flushes it;
`read_reports(path)` reads them back. `FileRecorder` is the loop's `Recorder`: it appends
the line, then saves the state file (atomically), so after a crash the state is never
ahead of the log.

`replay(report)` re-runs a logged tick's decisions from its own inputs: the optimisation
of the spec exactly as optimised (with the logged solver), then the stabiliser (from the
logged stabiliser state, fleet, previous plan and time) and the safety rules. It returns
the proposed and final plans, which equal the logged ones (plans carry no timings).

To extend: anything a new stage decides from must be on the `TickReport`, so that
`replay` can re-run it here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from controller.config import LoopOptions
from controller.loop import OptimizeFn, Optimizer
from controller.safety import enforce_min_replicas, hold_servers
from controller.stabilize import STABILIZERS, StabilizeInput
from controller.state import LoopState, StateFile
from controller.tick import TickReport, current_replicas
from specs.errors import SpecError
from specs.plan import Plan


class DecisionLog:
    """Appends tick reports to a JSON-lines file (nothing happens in the constructor)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def append(self, report: TickReport) -> None:
        """One line, flushed."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(report.model_dump_json() + "\n")
            handle.flush()


class FileRecorder:
    """Decision log first, then the state file."""

    def __init__(self, log: DecisionLog, state_file: StateFile | None) -> None:
        self.log = log
        self.state_file = state_file

    def record(self, report: TickReport, state: LoopState) -> None:
        """Persist one tick."""
        self.log.append(report)
        if self.state_file is not None:
            self.state_file.save(state)


def parse_report(line: str) -> TickReport:
    """One decision-log line as a `TickReport` (`SpecError` if it is not one)."""
    try:
        return TickReport.model_validate_json(line)
    except ValueError as exc:
        raise SpecError(f"not a decision-log line: {str(exc).splitlines()[0]}") from None


def read_reports(path: str | Path) -> list[TickReport]:
    """Every line of a decision log."""
    path = Path(path)
    if not path.is_file():
        raise SpecError("no such decision log", file=path)
    lines = path.read_text(encoding="utf-8").splitlines()
    return [parse_report(line) for line in lines if line.strip()]


@dataclass(frozen=True)
class Replayed:
    """What replaying a tick decided."""

    proposed: Plan
    final: Plan


def replay(report: TickReport | str, options: LoopOptions | None = None,
           optimize: OptimizeFn | None = None) -> Replayed:
    """Re-run a logged tick's optimisation and stabilisation (see the module docstring)."""
    if isinstance(report, str):
        report = parse_report(report)
    if report.spec is None:
        raise SpecError(f"tick {report.tick} ({report.status}) did not optimise",
                        json_path="$.spec")
    options = options or LoopOptions()
    proposed = (optimize or Optimizer())(report.spec, report.solver)
    inp = StabilizeInput(report.spec, proposed, current_replicas(report.fleet),
                         report.previous_plan, report.time_s)
    result = STABILIZERS.get(options.stabilizer)(report.stabilizer_before, inp,
                                                 options.stabilizer_options)
    missing = [s.name for s in report.spec.servers if s.name not in report.measured]
    final = enforce_min_replicas(hold_servers(result.plan, missing, inp), report.spec)
    return Replayed(proposed, final)


def same_plan(a: Plan | None, b: Plan | None) -> bool:
    """True when two plans are equal as JSON."""
    if a is None or b is None:
        return a is b
    return json.loads(a.model_dump_json()) == json.loads(b.model_dump_json())
