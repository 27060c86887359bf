"""Router policies as pure units: fake backend states, seeded RNGs, no I/O."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from serving.routing import (
    POLICIES,
    POLICY_NAMES,
    Backend,
    DecodePredictor,
    PolicyOptions,
    RouteRequest,
)
from serving.routing.decode_predictor import bucket_of, prompt_bin
from serving.routing.session_affinity import hash64
from serving.routing.workload_aware import mixing_cost_ms
from specs.registry import UnknownNameError

REQUEST = RouteRequest(model="m")


def backends(n: int, **fields: object) -> list[Backend]:
    return [Backend(url=f"http://b{i}", model="m", variant=f"v{i}", **fields) for i in range(n)]


def policy(name: str, seed: int = 0, **options: object):
    return POLICIES.get(name)(PolicyOptions(**options), random.Random(seed))


def test_registry_matches_the_names_the_cli_accepts() -> None:
    assert tuple(POLICIES.names()) == POLICY_NAMES
    with pytest.raises(UnknownNameError, match="known: least_loaded, least_outstanding"):
        POLICIES.get("random")


def test_round_robin_cycles() -> None:
    pool = backends(3)
    rr = policy("round_robin")
    assert [rr.choose(REQUEST, pool, 0.0).url for _ in range(6)] == [
        "http://b0", "http://b1", "http://b2"] * 2


def test_least_outstanding_picks_the_least_loaded_and_rotates_ties() -> None:
    pool = backends(3)
    pool[0].outstanding, pool[1].outstanding, pool[2].outstanding = 5, 1, 3
    lo = policy("least_outstanding")
    assert lo.choose(REQUEST, pool, 0.0) is pool[1]
    idle = backends(3)
    assert {lo.choose(REQUEST, idle, 0.0).url for _ in range(3)} == {b.url for b in idle}


def test_least_loaded_picks_by_outstanding_per_max_batch_across_variants() -> None:
    big = Backend("http://big", "m", "h100", weight=0.1, max_batch=32, outstanding=12)
    small = Backend("http://small", "m", "l4", weight=0.9, max_batch=8, outstanding=4)
    ll = policy("least_loaded")
    # 12/32 = 0.375 per slot against 4/8 = 0.5: the big replica, whatever the weights
    assert ll.choose(REQUEST, [small, big], 0.0) is big
    assert policy("least_outstanding").choose(REQUEST, [small, big], 0.0) is small
    big.outstanding = 17  # 0.53 per slot
    assert ll.choose(REQUEST, [small, big], 0.0) is small


def test_least_loaded_breaks_ties_by_outstanding_then_rotates() -> None:
    half_big = Backend("http://a", "m", "a", max_batch=32, outstanding=16)
    half_small = Backend("http://b", "m", "b", max_batch=8, outstanding=4)
    ll = policy("least_loaded")
    assert all(ll.choose(REQUEST, [half_big, half_small], 0.0) is half_small for _ in range(4))
    idle = backends(3, max_batch=16)
    assert {ll.choose(REQUEST, idle, 0.0).url for _ in range(3)} == {b.url for b in idle}


def test_least_loaded_without_every_max_batch_is_least_outstanding() -> None:
    known = Backend("http://known", "m", "a", max_batch=64, outstanding=6)
    unknown = Backend("http://unknown", "m", "b", outstanding=5)
    assert policy("least_loaded").choose(REQUEST, [known, unknown], 0.0) is unknown


def test_power_of_two_never_picks_the_worst_of_three_and_is_seeded() -> None:
    pool = backends(3)
    pool[0].outstanding, pool[1].outstanding, pool[2].outstanding = 0, 10, 20
    p2c = policy("power_of_two", seed=7)
    picks = Counter(p2c.choose(REQUEST, pool, 0.0).url for _ in range(600))
    assert "http://b2" not in picks
    assert picks["http://b0"] > picks["http://b1"] > 0
    one, two = policy("power_of_two", seed=3), policy("power_of_two", seed=3)
    assert [one.choose(REQUEST, pool, 0.0).url for _ in range(50)] == [
        two.choose(REQUEST, pool, 0.0).url for _ in range(50)]


def test_power_of_two_by_latency() -> None:
    pool = backends(2)
    pool[0].ewma_ttfb_s, pool[1].ewma_ttfb_s = 0.5, 0.1
    pool[0].outstanding, pool[1].outstanding = 0, 9
    p2c = policy("power_of_two", p2c_metric="latency")
    assert all(p2c.choose(REQUEST, pool, 0.0) is pool[1] for _ in range(10))
    assert policy("power_of_two").choose(REQUEST, pool, 0.0) is pool[0]


def test_single_candidate_is_always_chosen() -> None:
    only = backends(1)
    for name in POLICY_NAMES:
        request = RouteRequest(model="m", session_key="s")
        assert policy(name).choose(request, only, 0.0) is only[0]


def test_weighted_follows_variant_weights_exactly() -> None:
    pool = [Backend("http://a0", "m", "a", weight=0.75), Backend("http://a1", "m", "a", weight=0.75),
            Backend("http://b0", "m", "b", weight=0.25)]
    w = policy("weighted")
    picks = Counter(w.choose(REQUEST, pool, 0.0).variant for _ in range(2000))
    assert picks == {"a": 1500, "b": 500}


def test_weighted_is_least_outstanding_inside_a_variant() -> None:
    pool = [Backend("http://a0", "m", "a", weight=1.0, outstanding=4),
            Backend("http://a1", "m", "a", weight=1.0, outstanding=1)]
    assert policy("weighted").choose(REQUEST, pool, 0.0).url == "http://a1"


def test_weighted_redistributes_a_missing_variant_and_handles_zero_weights() -> None:
    w = policy("weighted")
    only_b = [Backend("http://b0", "m", "b", weight=0.25)]
    assert all(w.choose(REQUEST, only_b, 0.0).variant == "b" for _ in range(5))
    zero = [Backend("http://a", "m", "a", weight=0.0), Backend("http://b", "m", "b", weight=0.0)]
    assert Counter(w.choose(REQUEST, zero, 0.0).variant for _ in range(10)) == {"a": 5, "b": 5}
    mixed = [Backend("http://a", "m", "a", weight=0.0), Backend("http://b", "m", "b", weight=2.0)]
    assert Counter(w.choose(REQUEST, mixed, 0.0).variant for _ in range(10)) == {"b": 10}


def test_session_affinity_is_sticky_and_moves_only_the_lost_replicas_sessions() -> None:
    pool = backends(4)
    sa = policy("session_affinity")
    sessions = [f"user-{i}" for i in range(200)]
    home = {s: sa.choose(RouteRequest("m", session_key=s), pool, 0.0).url for s in sessions}
    assert len(set(home.values())) == 4, "sessions spread over every replica"
    again = {s: sa.choose(RouteRequest("m", session_key=s), pool, 0.0).url for s in sessions}
    assert again == home
    without_b1 = [b for b in pool if b.url != "http://b1"]
    moved = {s: sa.choose(RouteRequest("m", session_key=s), without_b1, 0.0).url
             for s in sessions}
    for s in sessions:
        if home[s] != "http://b1":
            assert moved[s] == home[s], "only the lost replica's sessions move"


def test_session_affinity_spills_when_the_home_replica_is_overloaded() -> None:
    pool = backends(3)
    sa = policy("session_affinity", affinity_min_load=4)
    request = RouteRequest("m", session_key="alice")
    home = sa.choose(request, pool, 0.0)
    home.outstanding = 10
    spilled = sa.choose(request, pool, 0.0)
    assert spilled is not home
    home.outstanding = 3  # below the floor: never overloaded
    assert sa.choose(request, pool, 0.0) is home


def test_session_affinity_without_a_key_is_least_outstanding() -> None:
    pool = backends(2)
    pool[0].outstanding = 3
    assert policy("session_affinity").choose(REQUEST, pool, 0.0) is pool[1]


def test_hash_is_stable() -> None:
    assert hash64("abc") == hash64("abc") != hash64("abd")
    assert 0 <= hash64("x") < 2**64


def test_workload_aware_keeps_long_prompts_away_from_busy_decoders() -> None:
    decoding = Backend("http://dec", "m", "v", outstanding=8, decode_tokens=8 * 300,
                       context_tokens=8 * 600)
    prefilling = Backend("http://pre", "m", "v", outstanding=2, prefill_tokens=6000,
                         decode_tokens=20, context_tokens=6000)
    long_prompt = RouteRequest("m", prompt_tokens=4000, decode_estimate=10)
    wa = policy("workload_aware")
    assert wa.choose(long_prompt, [decoding, prefilling], 0.0) is prefilling
    assert wa.choose(long_prompt, [prefilling, decoding], 0.0) is prefilling


def test_workload_aware_keeps_long_decodes_away_from_queued_prompts_and_long_contexts() -> None:
    queued = Backend("http://queued", "m", "v", outstanding=2, prefill_tokens=8000,
                     decode_tokens=200, context_tokens=8400)
    clear = Backend("http://clear", "m", "v", outstanding=2, decode_tokens=200,
                    context_tokens=400)
    long_contexts = Backend("http://long", "m", "v", outstanding=2, decode_tokens=200,
                            context_tokens=60_000)
    long_decode = RouteRequest("m", prompt_tokens=50, decode_estimate=500)
    wa = policy("workload_aware")
    for order in ([queued, clear, long_contexts], [long_contexts, queued, clear]):
        assert wa.choose(long_decode, order, 0.0) is clear


def test_workload_aware_mixing_cost_terms() -> None:
    idle = Backend("http://idle", "m", "v")
    request = RouteRequest("m", prompt_tokens=1000, decode_estimate=100)
    assert mixing_cost_ms(request, idle, 0.02, 1e-4) == 0.0
    busy = Backend("http://busy", "m", "v", outstanding=2, prefill_tokens=500, decode_tokens=50,
                   context_tokens=3000)
    # overlap 50; suffered 0.02*500 + 50*(0.02 + 1e-4*1500); caused 0.02*1000*2 + 50*(0.02
    # + 1e-4*1050)
    expected = 10 + 50 * (0.02 + 0.15) + 40 + 50 * (0.02 + 0.105)
    assert mixing_cost_ms(request, busy, 0.02, 1e-4) == pytest.approx(expected)
    assert policy("workload_aware").choose(request, [busy, idle], 0.0) is idle


def test_decode_predictor_learns_buckets_per_class_and_prompt_length() -> None:
    p = DecodePredictor(default_tokens=128, min_samples=4)
    assert p.predict(100, "chat") == 128
    assert p.predict(100, "chat", max_tokens=20) == 20
    for _ in range(10):
        p.observe(100, "chat", 40)
        p.observe(3000, "chat", 900)
        p.observe(100, "code", 8)
    assert p.predict(100, "chat") == 40
    assert p.predict(3000, "chat") == 900
    assert p.predict(100, "code") == 8
    assert p.predict(100_000, "chat") in (40, 900), "unseen prompt bin: the class's mode"
    assert p.predict(100, "unseen") in (8, 40, 900), "unseen class: every request's mode"
    p.observe(100, "chat", 0)  # ignored


def test_decode_predictor_follows_a_drifting_workload() -> None:
    p = DecodePredictor(min_samples=2, decay=0.9)
    for _ in range(20):
        p.observe(64, None, 10)
    for _ in range(20):
        p.observe(64, None, 2000)
    assert p.predict(64, None) == 2000


def test_bins() -> None:
    assert [bucket_of(t) for t in (1, 15, 16, 255, 256, 5000)] == [0, 0, 1, 2, 3, 5]
    assert [prompt_bin(t) for t in (0, 1, 2, 1023, 1024)] == [0, 0, 1, 9, 10]
