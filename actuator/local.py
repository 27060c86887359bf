"""`LocalActuator`: runs each variant as local `fleetplan worker` processes on 127.0.0.1.

A variant (`variant_name(server, accelerator)`) is a set of emulated workers started with
the plan's model, accelerator, max batch and token budget (`--token-budget`, when the plan
sets one; else the worker uses its profile's) (`actuator.local_process`): ports are chosen
at run time (`--port 0`) and a worker counts as a replica only once `/health` answers.
`apply(plan)`:

1. workers that have exited are dropped (and so replaced below);
2. scale-ups start all the new workers at once and wait for them together; one that
   does not come up is stopped and reported as a failure, with its log's tail;
3. max batch and token budget changes go to every running worker of the variant live
   (`POST /admin/max_batch`, `POST /admin/token_budget`, with the bearer token the
   actuator made at first use and started its workers with): nothing restarts (unlike
   vLLM, which reads both only at start-up; the Kubernetes actuator rolls its pods). A
   plan without a token budget leaves the running one as it is;
4. scale-downs (and variants of planned servers the plan no longer lists) take the
   newest workers out of the backends first, tell `on_backends_changed`, wait until
   they have no running or waiting request (at most `drain_timeout_s`), then stop them.

Servers without an allocation in the plan are left as they run (see `actuator.desired`).
`on_backends_changed(backends)` receives the ready workers as router backend entries
(`url`, `model`, `variant`, `weight`, `service_class`: the router's backends document)
whenever they change, so the controller can feed the local router (`backends_file_writer`
keeps a file for `fleetplan router --backends FILE` current). `close()` stops
every process this actuator started; use it as a context manager.

Modes: `apply`, and `dry-run` (reports the same changes, starts and stops nothing).

To extend: a new live setting is a `LocalStep` field, filled in `local_steps` and
enacted in `_reconfigure` (with an admin call in `actuator.local_process`).
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from actuator.base import (
    ActuationFailure,
    ActuationResult,
    FleetState,
    VariantChange,
    VariantState,
)
from actuator.desired import DesiredVariant, desired_variants, retired
from actuator.local_process import (
    WorkerProcess,
    healthy,
    launch,
    set_max_batch,
    set_token_budget,
    terminate,
    wait_idle,
    wait_ready,
)
from specs.clock import Clock, SystemClock
from specs.plan import Plan

LOG = logging.getLogger(__name__)
Backend = dict[str, Any]
BackendsCallback = Callable[[list[Backend]], None]


def backends_file_writer(path: Path) -> BackendsCallback:
    """An `on_backends_changed` callback that writes the backends document to `path`
    atomically (temporary file, then rename), for `fleetplan router --backends PATH`."""
    def write(backends: list[Backend]) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(path.name + ".tmp")
        temporary.write_text(json.dumps({"backends": backends}, indent=2) + "\n")
        os.replace(temporary, path)
    return write


@dataclass(frozen=True)
class LocalSettings:
    """How local workers are started, waited for and stopped."""

    spec_path: Path
    """The fleet spec the workers read their profiles from (`--spec`)."""
    mode: Literal["apply", "dry-run"] = "apply"
    host: str = "127.0.0.1"
    command: tuple[str, ...] = (sys.executable, "-m", "controller.cli", "worker")
    extra_args: tuple[str, ...] = ()
    log_dir: Path | None = None
    """Where worker logs go; None: a temporary directory made at the first start."""
    cwd: Path | None = None
    start_timeout_s: float = 30.0
    drain_timeout_s: float = 30.0
    drain_grace_s: float = 0.2
    """Pause after taking workers out of the backends, before checking they are idle."""
    stop_timeout_s: float = 10.0


@dataclass(frozen=True)
class LocalStep:
    """What one variant needs: workers to start or drain, live changes."""

    desired: DesiredVariant
    running: int
    create: bool = False
    max_batch: tuple[int, int] | None = None
    token_budget: tuple[int | None, int] | None = None
    weight: tuple[float, float] | None = None

    @property
    def start(self) -> int:
        return max(0, self.desired.replicas - self.running)

    @property
    def drain(self) -> int:
        return max(0, self.running - self.desired.replicas)


def local_steps(plan: Plan, current: Mapping[str, tuple[DesiredVariant, int]],
                ) -> list[LocalStep]:
    """The steps that take the running variants (`current`: name -> last desired state,
    running workers) to the plan, by variant name. Pure."""
    desired = desired_variants(plan)
    steps = []
    for d in desired:
        before, running = current.get(d.name, (None, 0))
        if before is None and d.replicas == 0:
            continue
        if before is not None and d.token_budget is None:  # not set: keep what runs
            d = replace(d, token_budget=before.token_budget)
        step = LocalStep(
            d, running, create=before is None,
            max_batch=((before.max_batch, d.max_batch) if before and running and
                       before.max_batch != d.max_batch else None),
            token_budget=((before.token_budget, d.token_budget) if before and running and
                          d.token_budget is not None and before.token_budget != d.token_budget
                          else None),
            weight=(before.router_weight, d.router_weight)
            if before and before.router_weight != d.router_weight else None,
        )
        if (step.create or step.start or step.drain or step.max_batch or step.token_budget
                or step.weight):
            steps.append(step)
    running_pairs = [(name, state[0].server) for name, state in current.items()]
    for name in retired(running_pairs, plan, desired):
        before, running = current[name]
        if running or before.replicas:
            steps.append(LocalStep(replace(before, replicas=0), running))
    return sorted(steps, key=lambda s: s.desired.name)


def describe(step: LocalStep) -> list[VariantChange]:
    """The changes a step makes."""
    d = step.desired
    if step.create:
        budget = f", token budget {d.token_budget}" if d.token_budget is not None else ""
        return [VariantChange(d.name, d.server, "create",
                              f"replicas {d.replicas}, max batch {d.max_batch}{budget}")]
    changes = []
    if step.max_batch:
        changes.append(VariantChange(d.name, d.server, "reconfigure",
                                     f"max batch {step.max_batch[0]} -> {step.max_batch[1]}"))
    if step.token_budget:
        changes.append(VariantChange(d.name, d.server, "reconfigure",
                                     f"token budget {step.token_budget[0]} -> "
                                     f"{step.token_budget[1]}"))
    if step.weight:
        changes.append(VariantChange(d.name, d.server, "reconfigure",
                                     f"router weight {step.weight[0]:.6g} -> "
                                     f"{step.weight[1]:.6g}"))
    if step.start or step.drain:
        changes.append(VariantChange(d.name, d.server, "scale",
                                     f"replicas {step.running} -> {d.replicas}"))
    return changes


@dataclass
class _Variant:
    desired: DesiredVariant
    workers: list[WorkerProcess] = field(default_factory=list)


class LocalActuator:
    """The `Actuator` for local worker processes; see the module docstring."""

    def __init__(self, settings: LocalSettings, *,
                 on_backends_changed: BackendsCallback | None = None,
                 clock: Clock | None = None) -> None:
        self.settings = settings
        self._clock = clock or SystemClock()
        self.on_backends_changed = on_backends_changed
        self._variants: dict[str, _Variant] = {}
        self._log_dir: Path | None = settings.log_dir
        self._sequence = 0
        self._token: str | None = None
        self._sent: list[Backend] | None = None
        self.last_result: ActuationResult | None = None

    def __enter__(self) -> LocalActuator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def observe(self) -> FleetState:
        """The variants and their ready workers (alive and answering /health)."""
        states = []
        for name, variant in sorted(self._variants.items()):
            d = variant.desired
            ready = tuple(w.url for w in variant.workers
                          if w.url and w.alive and healthy(w.url, timeout_s=0.5))
            states.append(VariantState(
                variant=name, server=d.server, model=d.model, accelerator=d.accelerator,
                replicas=d.replicas, ready_replicas=len(ready), max_batch=d.max_batch,
                endpoints=ready, service_class=d.service_class, token_budget=d.token_budget))
        return FleetState(tuple(states), observed_at=self._clock.now())

    def backends(self) -> list[Backend]:
        """Ready workers as router backend entries, sorted by variant and URL."""
        return [{"url": w.url, "model": v.desired.model, "variant": name,
                 "weight": v.desired.router_weight, "max_batch": v.desired.max_batch,
                 "service_class": v.desired.service_class}
                for name, v in sorted(self._variants.items())
                for w in sorted(v.workers, key=lambda w: w.url or "") if w.url and w.alive]

    def apply(self, plan: Plan, *, plan_id: str, reason: str) -> ActuationResult:
        """Start, reconfigure and drain workers towards `plan` (dry-run: only say how)."""
        dry = self.settings.mode == "dry-run"
        failures = [] if dry else self._prune_exited()
        current = {n: (v.desired, sum(w.alive for w in v.workers))
                   for n, v in self._variants.items()}
        steps = local_steps(plan, current)
        changes: list[VariantChange] = []
        if dry:
            changes = [c for s in steps for c in describe(s)]
        else:
            done, failed = self._enact(steps)
            changes, failures = done, failures + failed
        result = ActuationResult(mode=self.settings.mode, plan_id=plan_id,
                                 changes=tuple(changes), failures=tuple(failures))
        for change in changes:
            LOG.info("%s %s: %s %s (plan %s: %s)", self.settings.mode, change.variant,
                     change.kind, change.detail, plan_id, reason)
        for failure in failures:
            LOG.warning("%s: %s (plan %s)", failure.variant, failure.reason, plan_id)
        self.last_result = result
        return result

    def _enact(self, steps: list[LocalStep]) -> tuple[list[VariantChange],
                                                      list[ActuationFailure]]:
        failures: list[ActuationFailure] = []
        started = self._start([s for s in steps if s.start], failures)
        changes: list[VariantChange] = []
        for step in steps:
            d = step.desired
            variant = self._variants.setdefault(d.name, _Variant(d))
            variant.desired = d
            if step.max_batch or step.token_budget:
                self._reconfigure(variant, step, failures)
            step_changes = describe(step)
            if step.start and started.get(d.name, 0) < step.start:
                now = step.running + started.get(d.name, 0)
                step_changes = [replace(c, detail=c.detail + f" (running {now})")
                                for c in step_changes]
            changes += step_changes
        self._drain(steps)
        self._notify()
        return changes, failures

    def _start(self, steps: list[LocalStep], failures: list[ActuationFailure]) -> dict[str, int]:
        launched: list[tuple[DesiredVariant, WorkerProcess]] = []
        for step in steps:
            for _ in range(step.start):
                launched.append((step.desired, self._launch(step.desired)))
        failed = set(wait_ready([w for _, w in launched], self.settings.start_timeout_s))
        terminate(list(failed), self.settings.stop_timeout_s)
        started: dict[str, int] = {}
        for d, worker in launched:
            if worker in failed:
                failures.append(ActuationFailure(d.name, d.server, "worker did not become "
                                                 f"ready (exit code {worker.process.poll()}); "
                                                 f"log {worker.log}: {worker.log_tail()}"))
                continue
            self._variants.setdefault(d.name, _Variant(d)).workers.append(worker)
            started[d.name] = started.get(d.name, 0) + 1
        return started

    def _launch(self, d: DesiredVariant) -> WorkerProcess:
        s = self.settings
        if self._log_dir is None:
            self._log_dir = Path(tempfile.mkdtemp(prefix="fleetplan-workers-"))
        self._sequence += 1
        budget = ["--token-budget", str(d.token_budget)] if d.token_budget is not None else []
        command = [*s.command, "--model", d.model, "--accelerator", d.accelerator,
                   "--spec", str(s.spec_path), "--host", s.host, "--port", "0",
                   "--max-batch", str(d.max_batch), *budget, *s.extra_args]
        return launch(command, self._log_dir / f"{d.name}-{self._sequence}.log", s.cwd,
                      self.token)

    @property
    def token(self) -> str:
        """The bearer token of this actuator's workers: random, made at first use, passed
        to each worker in its environment and sent with every admin call."""
        if self._token is None:
            self._token = secrets.token_urlsafe(32)
        return self._token

    def _reconfigure(self, variant: _Variant, step: LocalStep,
                     failures: list[ActuationFailure]) -> None:
        """Apply the step's live changes to every worker of the variant."""
        d = variant.desired
        calls: list[tuple[str, Callable[..., int], int]] = []
        if step.max_batch:
            calls.append(("max batch", set_max_batch, d.max_batch))
        if step.token_budget and d.token_budget is not None:
            calls.append(("token budget", set_token_budget, d.token_budget))
        for worker in variant.workers:
            for what, call, value in calls:
                try:
                    call(worker.url or "", value, token=self.token)
                except (OSError, ValueError) as exc:
                    failures.append(ActuationFailure(d.name, d.server,
                                                     f"{what} on {worker.url}: {exc}"))

    def _drain(self, steps: list[LocalStep]) -> None:
        leaving: list[WorkerProcess] = []
        for step in steps:
            variant = self._variants[step.desired.name]
            if step.drain:
                keep = len(variant.workers) - step.drain
                leaving += variant.workers[keep:]
                variant.workers = variant.workers[:keep]
        if not leaving:
            return
        self._notify()  # out of the router first, then wait for in-flight work
        time.sleep(self.settings.drain_grace_s)
        still_busy = wait_idle(leaving, self.settings.drain_timeout_s)
        for worker in still_busy:
            LOG.warning("worker %s still busy after %.0f s of draining; stopping it",
                        worker.url, self.settings.drain_timeout_s)
        terminate(leaving, self.settings.stop_timeout_s)

    def _prune_exited(self) -> list[ActuationFailure]:
        failures = []
        for name, variant in sorted(self._variants.items()):
            for worker in [w for w in variant.workers if not w.alive]:
                variant.workers.remove(worker)
                failures.append(ActuationFailure(
                    name, variant.desired.server,
                    f"worker {worker.url} exited (code {worker.process.returncode}); "
                    f"replacing it: {worker.log_tail(200)}"))
        return failures

    def _notify(self) -> None:
        backends = self.backends()
        if backends != self._sent:
            self._sent = backends
            if self.on_backends_changed is not None:
                self.on_backends_changed(backends)

    def close(self) -> None:
        """Stop every worker this actuator started (SIGTERM, then SIGKILL)."""
        workers = [w for v in self._variants.values() for w in v.workers]
        self._variants.clear()
        terminate(workers, self.settings.stop_timeout_s)
        self._notify()
