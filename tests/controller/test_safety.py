"""Safety rules: make-before-break keeps a server's capacity until its replacement serves."""

from __future__ import annotations

import pytest

from actuator.base import VariantState
from controller.safety import make_before_break
from specs.loading import load_fleet
from tests.controller.test_loop import EXAMPLE
from tests.controller.test_policies import _plan, _variant

SERVER = "premium-llama"


@pytest.fixture(scope="module")
def spec():
    return load_fleet(EXAMPLE).spec


def _running(acc: str, replicas: int, ready: int) -> VariantState:
    return VariantState(f"{SERVER}-{acc}".lower(), SERVER, "llama_3_1_8b", acc, replicas,
                        ready, max_batch=8)


def _counts(plan) -> dict[str, int]:
    return {v.accelerator: v.replicas for a in plan.allocations for v in a.variants}


def test_a_switch_keeps_the_old_variant_until_the_new_one_is_ready(spec):
    proposed = _plan(_variant("A100", 3))
    starting = [_running("H100", 2, 2), _running("A100", 3, 0)]
    held, reasons = make_before_break(proposed, starting, spec)
    assert _counts(held) == {"A100": 3, "H100": 2}
    assert reasons and "H100" in reasons[0]
    ready = [_running("H100", 2, 2), _running("A100", 3, 3)]
    done, reasons = make_before_break(proposed, ready, spec)
    assert _counts(done) == {"A100": 3} and reasons == []


def test_a_variant_shrinking_while_another_grows_waits(spec):
    proposed = _plan(_variant("H100", 1), _variant("A100", 4))
    fleet = [_running("H100", 3, 3), _running("A100", 4, 2)]
    held, _ = make_before_break(proposed, fleet, spec)
    assert _counts(held) == {"H100": 3, "A100": 4}


def test_plain_scale_downs_and_scale_ups_pass(spec):
    down = _plan(_variant("H100", 1))
    assert _counts(make_before_break(down, [_running("H100", 3, 3)], spec)[0]) == {"H100": 1}
    up = _plan(_variant("H100", 5))
    assert _counts(make_before_break(up, [_running("H100", 3, 3)], spec)[0]) == {"H100": 5}


def test_holds_that_would_exceed_capacity_are_dropped(spec):
    cap = spec.capacity["H100"]
    proposed = _plan(_variant("A100", 2))
    fleet = [_running("H100", cap, cap), _running("A100", 2, 0)]
    tight = spec.model_copy(update={"capacity": {**spec.capacity, "H100": cap - 1}})
    plan, reasons = make_before_break(proposed, fleet, tight)
    assert _counts(plan) == {"A100": 2} and reasons == []
