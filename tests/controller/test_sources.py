"""`controller.sources.tuner_observations`: observations carry what the replicas ran."""

from __future__ import annotations

from actuator.base import FleetState, VariantState
from collector.snapshot import Figure, FleetSnapshot, SourceStatus, VariantSnapshot
from controller.sources import tuner_observations


def _variant(name: str, max_batch: Figure | None = None) -> VariantSnapshot:
    return VariantSnapshot(
        name=name, server="chat", model="m", accelerator="H100", window_s=60.0,
        arrival_rate_rps=Figure.ok(4.0), completion_rate_rps=Figure.ok(4.0),
        replicas=Figure.ok(2.0), in_tokens=Figure.ok(300.0), out_tokens=Figure.ok(100.0),
        ttft_mean_ms=Figure.ok(80.0), itl_mean_ms=Figure.ok(20.0),
        max_batch=max_batch or Figure())


def test_max_batch_and_token_budget_come_from_the_fleet() -> None:
    snapshot = FleetSnapshot(time_s=0, source="t", status=SourceStatus.OK, variants=(
        _variant("chat-h100"), _variant("chat-a100", Figure.ok(48.0)), _variant("other")))
    fleet = FleetState((
        VariantState("chat-h100", "chat", "m", "H100", 2, 2, max_batch=64, token_budget=512),
        VariantState("chat-a100", "chat", "m", "A100", 2, 2, max_batch=32),
    ))
    found = {(o.max_batch, o.token_budget) for o in tuner_observations(snapshot, fleet)}
    # "other" has no max batch anywhere: no observation; the metrics' 48 beats the fleet's
    assert found == {(64, 512), (48, None)}
    observation = tuner_observations(snapshot, fleet)[1]
    assert observation.arrival_rate_rps == 2.0  # per replica
