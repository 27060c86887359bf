"""Building the concrete objects from a `ControllerConfig` (the only place that does).

- `FleetScrapeSource`: the collector's `ScrapeCollector` as the loop's `MetricsSource`:
  each tick its variants (names, servers, models, accelerators, replica URLs, max batch)
  are taken from the fleet the actuator reports; baselines are kept per replica URL, so
  a variant's rates survive scaling.
- `FleetPrometheusSource`: the collector's `PrometheusCollector` as the loop's
  `MetricsSource`: each tick it asks Prometheus about the variants the actuator reports
  with a ready replica, each selected by its variant label (`collector.variant_label`,
  default `variant`) and the configured `match_labels` (with the kubernetes actuator,
  `namespace` defaults to its namespace); with none ready it still probes Prometheus, so
  an outage is reported as `unavailable`, never as an empty "ok".
- `SnapshotSource`: any collector `MetricsSource` with a fixed configuration
  (`RecordedSource`) as the loop's `MetricsSource`.
- `build_actuator(config, spec)`: `local` is `actuator.local.LocalActuator`, `kubernetes`
  is `actuator.kubernetes.KubernetesActuator`, both built from `actuator.options`
  through `actuator.options` (unknown options are a `SpecError`).
- `build_daemon(config)`: spec, source, actuator, tuner, loop (resuming the state file)
  and the daemon around them.

To extend: a new kind is one branch in `build_source` or `build_actuator`; a source whose
variants follow the fleet is a class with `collect(now, fleet)` like the two above.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from actuator.base import Actuator, FleetState
from collector.config import CollectorConfig, VariantConfig
from collector.scrape import ScrapeCollector
from collector.snapshot import FleetSnapshot
from collector.source import MetricsSource as CollectorSource
from controller.config import ControllerConfig
from controller.daemon import Daemon
from controller.decision_log import DecisionLog, FileRecorder
from controller.loop import ControlLoop, LoopParts
from controller.sources import MetricsSource
from controller.state import StateFile, require_writable
from specs.clock import SystemClock
from specs.documents import FleetSpec
from specs.errors import SpecError
from specs.loading import load_fleet
from tuner.tuner import Tuner

if TYPE_CHECKING:  # imported lazily: prometheus-api-client is needed only with that kind
    from collector.prometheus import PrometheusCollector


def variant_configs(fleet: FleetState) -> tuple[VariantConfig, ...]:
    """Collector variants for the fleet's variants with known replica URLs."""
    return tuple(VariantConfig(name=v.variant, server=v.server, model=v.model,
                               accelerator=v.accelerator, urls=v.endpoints,
                               max_batch=v.max_batch)
                 for v in fleet.variants if v.endpoints)


class FleetScrapeSource:
    """See the module docstring."""

    def __init__(self, collector: ScrapeCollector) -> None:
        self.collector = collector

    def collect(self, now: float, fleet: FleetState) -> FleetSnapshot:
        """Scrape the fleet's current replicas."""
        config = self.collector.config.model_copy(update={"variants": variant_configs(fleet)})
        self.collector.config = config
        return self.collector.snapshot(now)


def prometheus_variants(fleet: FleetState, variant_label: str,
                        match_labels: Mapping[str, str]) -> tuple[VariantConfig, ...]:
    """Collector variants for the fleet's variants with a ready replica (a variant with
    none has no series yet: asking would only mark its server's figures missing)."""
    return tuple(VariantConfig(name=v.variant, server=v.server, model=v.model,
                               accelerator=v.accelerator, max_batch=v.max_batch,
                               labels={**match_labels, variant_label: v.variant})
                 for v in fleet.variants if v.ready_replicas > 0)


class FleetPrometheusSource:
    """See the module docstring."""

    def __init__(self, collector: PrometheusCollector, variant_label: str = "variant",
                 match_labels: Mapping[str, str] | None = None) -> None:
        self.collector = collector
        self.variant_label = variant_label
        self.match_labels = dict(match_labels or {})

    def collect(self, now: float, fleet: FleetState) -> FleetSnapshot:
        """Query Prometheus about the fleet's ready variants."""
        variants = prometheus_variants(fleet, self.variant_label, self.match_labels)
        self.collector.config = self.collector.config.model_copy(update={"variants": variants})
        return self.collector.snapshot(now)


class SnapshotSource:
    """A collector source with a fixed configuration."""

    def __init__(self, source: CollectorSource) -> None:
        self.source = source

    def collect(self, now: float, fleet: FleetState) -> FleetSnapshot:
        """The source's snapshot at `now`."""
        return self.source.snapshot(now)


def match_labels(config: ControllerConfig) -> dict[str, str]:
    """Label matchers every variant's series must carry (see the module docstring)."""
    labels = dict(config.collector.match_labels)
    if config.actuator.kind == "kubernetes":
        labels.setdefault("namespace", config.actuator.namespace)
    return labels


def build_source(config: ControllerConfig) -> MetricsSource:
    """The configured metrics source."""
    settings = config.collector
    collector_config = CollectorConfig(window_s=settings.window_s, engine=settings.engine,
                                       stale_after_s=config.stale_after_s)
    if settings.kind == "scrape":
        return FleetScrapeSource(ScrapeCollector(collector_config))
    if settings.kind == "recorded":
        from collector.recorded import RecordedSource

        if not settings.path:
            raise SpecError("a recorded collector needs 'path'", json_path="$.collector.path")
        return SnapshotSource(RecordedSource.from_path(settings.path))
    from collector.prometheus import PrometheusCollector
    from collector.prometheus_api import PrometheusConnectApi

    if not settings.url:
        raise SpecError("a prometheus collector needs 'url'", json_path="$.collector.url")
    return FleetPrometheusSource(PrometheusCollector(PrometheusConnectApi(settings.url),
                                                     collector_config),
                                 settings.variant_label, match_labels(config))


def local_actuator(spec_path: str | Path, log_dir: str | Path,
                   mode: str = "apply") -> Actuator:
    """`actuator.local.LocalActuator` for the workers of `spec_path`, logging to `log_dir`."""
    from actuator.options import local_actuator as build_local

    return build_local(spec_path, mode="dry-run" if mode == "dry-run" else "apply",
                       options={"log_dir": str(log_dir)})


def build_actuator(config: ControllerConfig, spec: FleetSpec) -> Actuator:
    """The configured actuator (see the module docstring)."""
    from actuator.options import kubernetes_actuator
    from actuator.options import local_actuator as build_local

    options: dict[str, Any] = dict(config.actuator.options)
    if config.actuator.kind == "local":
        options.setdefault("log_dir", str(Path(config.state_path).parent / "workers"))
        return build_local(config.spec, mode=config.mode, options=options)
    base = Path(config.base_dir) if config.base_dir else None
    return kubernetes_actuator(spec, namespace=config.actuator.namespace, mode=config.mode,
                               options=options, base_dir=base)


def build_daemon(config: ControllerConfig) -> tuple[Daemon, Actuator]:
    """The loop (resumed from the state file) and the daemon around it."""
    spec = load_fleet(config.spec).spec
    state_file = StateFile(config.state_path)
    for path in (Path(config.state_path), Path(config.decision_log)):
        require_writable(path)
    actuator = build_actuator(config, spec)
    recorder = FileRecorder(DecisionLog(config.decision_log), state_file)
    parts = LoopParts(spec=spec, metrics=build_source(config), actuator=actuator,
                      clock=SystemClock(), tuner=Tuner(), recorder=recorder)
    loop = ControlLoop(parts, config.loop_options(), state_file.load())
    return Daemon(loop, actuator), actuator
