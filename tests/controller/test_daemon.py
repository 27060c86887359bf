"""The daemon's pure parts: the router backends it serves on /plan."""

from __future__ import annotations

from actuator.base import FleetState, VariantState
from controller.daemon import backends
from serving.router_config import parse_backends
from tests.actuator.plans import allocation, plan, variant


def _state(name: str, urls: tuple[str, ...], max_batch: int | None) -> VariantState:
    return VariantState(name, "premium-llama", "llama_3_1_8b", name.rsplit("-", 1)[1].upper(),
                        len(urls), len(urls), max_batch=max_batch, endpoints=urls)


def test_backends_carry_weight_and_max_batch_for_least_loaded_routing():
    proposed = plan(allocation("premium-llama", variant("H100", 2, 128, 0.75),
                               variant("A100", 1, 64, 0.25)))
    fleet = FleetState((
        _state("premium-llama-h100", ("http://h:1", "http://h:2"), max_batch=96),
        _state("premium-llama-a100", ("http://a:1",), max_batch=None)))
    out = backends(proposed, fleet)
    assert [(b["url"], b["weight"], b["max_batch"]) for b in out] == [
        ("http://h:1", 0.75, 96), ("http://h:2", 0.75, 96),  # what the fleet runs now
        ("http://a:1", 0.25, 64)]  # unknown on the fleet: the plan's
    document = parse_backends({"backends": out}, "/plan")
    assert [b.max_batch for b in document.backends] == [96, 96, 64]
    assert backends(proposed, None) == [] and backends(None, fleet) == []
