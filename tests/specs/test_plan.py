"""The plan document: round trips, older plan files, its schema."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from specs.documents import Load
from specs.loading import dump_json
from specs.plan import Plan, ServerAllocation, VariantAllocation


def _plan(**variant: object) -> Plan:
    v = VariantAllocation(accelerator="H100", card_type="H100", replicas=2, max_batch=64,
                          cards=2, cost_per_hour=16.44, arrival_rate_rps=4.0, router_weight=1.0,
                          **variant)
    alloc = ServerAllocation(server="premium-llama", model="llama_3_1_8b",
                             service_class="premium", priority=1,
                             load=Load(arrival_rate_rps=4.0, in_tokens=1020, out_tokens=129),
                             variants=[v], cost_per_hour=v.cost_per_hour)
    return Plan(allocations=[alloc], total_cost_per_hour=v.cost_per_hour)


def test_a_token_budget_survives_a_round_trip():
    plan = _plan(token_budget=2048)
    text = dump_json(plan)
    assert json.loads(text)["allocations"][0]["variants"][0]["token_budget"] == 2048
    again = Plan.model_validate(json.loads(text))
    assert again == plan and again.allocations[0].variants[0].token_budget == 2048
    with pytest.raises(ValidationError, match="token_budget"):
        _plan(token_budget=0)


def test_a_plan_without_a_token_budget_round_trips_as_not_set():
    plan = _plan()
    data = json.loads(dump_json(plan))
    assert data["allocations"][0]["variants"][0]["token_budget"] is None
    assert Plan.model_validate(data) == plan


def test_an_older_plan_file_without_the_field_still_loads():
    data = json.loads(dump_json(_plan()))
    del data["allocations"][0]["variants"][0]["token_budget"]
    assert Plan.model_validate(data).allocations[0].variants[0].token_budget is None


def test_the_plan_schema_describes_the_token_budget():
    field = Plan.model_json_schema()["$defs"]["VariantAllocation"]["properties"]["token_budget"]
    assert "--max-num-batched-tokens" in field["description"]
