"""The router's pure parts: pool membership and health, cache, admission, body parsing."""

from __future__ import annotations

import json

import pytest

from serving.openai_api import BadRequest
from serving.router_admission import TenantLoad, over_fair_share, saturated
from serving.router_cache import ResponseCache, cacheable
from serving.router_config import BackendEntry, parse_backends
from serving.router_pool import BackendPool
from serving.router_request import TokenCounter, completion_tokens, parse_body
from serving.routing import Backend


def document(*entries: dict) -> object:
    return parse_backends({"backends": list(entries)}, "test")


def entry(port: int, model: str = "m", **more: object) -> dict:
    return {"url": f"http://127.0.0.1:{port}", "model": model, **more}


# -- pool ---------------------------------------------------------------------------------

def test_pool_keeps_live_state_across_reloads() -> None:
    pool = BackendPool()
    assert pool.apply(document(entry(1), entry(2)))
    _, first = pool.candidates("m", None)
    first[0].outstanding = 5
    generation = pool.generation
    assert not pool.apply(document(entry(1), entry(2))), "same document: no change"
    assert pool.generation == generation
    assert pool.apply(document(entry(1, weight=2.0), entry(3)))
    _, now = pool.candidates("m", None)
    assert [b.url for b in now] == ["http://127.0.0.1:1", "http://127.0.0.1:3"]
    assert now[0] is first[0] and now[0].outstanding == 5 and now[0].weight == 2.0
    assert pool.models() == ["m"] and pool.planned("m")
    assert pool.candidates("other", None) == (("other", None), [])


def test_pool_takes_max_batch_from_the_source_and_rebuilds_on_a_change() -> None:
    pool = BackendPool()
    pool.apply(document(entry(1), entry(2, model="other")))
    assert not pool.planned("m"), "no weight, no max batch: not from a plan"
    generation = pool.generation
    assert pool.apply(document(entry(1, max_batch=32), entry(2, model="other")))
    assert pool.generation > generation and pool.planned("m") and not pool.planned("other")
    (backend,) = pool.candidates("m", None)[1]
    assert backend.max_batch == 32
    registered = pool.register(BackendEntry(url="http://127.0.0.1:9", model="m", max_batch=8),
                               now=0.0, ttl_s=10.0)
    assert registered.max_batch == 8


def test_pool_ejection_readmission_and_panic() -> None:
    pool = BackendPool()
    pool.apply(document(entry(1), entry(2)))
    a, b = pool.backends()
    assert pool.eject(a, "connection") and not pool.eject(a, "health")
    assert pool.candidates("m", None)[1] == [b]
    pool.eject(b, "health")
    assert pool.candidates("m", None)[1] == [a, b], "nothing healthy: route to all (panic)"
    assert pool.readmit(a) and not pool.readmit(a)
    assert pool.candidates("m", None)[1] == [a]


def test_pool_service_class_candidates() -> None:
    pool = BackendPool()
    pool.apply(document(entry(1, service_class="Premium"), entry(2), entry(3)))
    premium, shared_1, shared_2 = pool.backends()
    assert pool.candidates("m", "Premium") == (("m", "Premium"), [premium])
    assert pool.candidates("m", "Bronze") == (("m", None), [shared_1, shared_2])
    assert pool.candidates("m", None) == (("m", None), [shared_1, shared_2])
    only_premium = BackendPool()
    only_premium.apply(document(entry(1, service_class="Premium")))
    assert len(only_premium.candidates("m", "Bronze")[1]) == 1, "fall back to any backend"


def test_pool_registration_and_heartbeats() -> None:
    pool = BackendPool()
    pool.apply(document(entry(1)))
    backend = pool.register(BackendEntry(**entry(2)), now=0.0, ttl_s=5.0)
    assert len(pool.candidates("m", None)[1]) == 2
    assert pool.expire(4.0) == []
    assert pool.expire(6.0) == [backend] and backend.ejected == "heartbeat"
    assert len(pool.candidates("m", None)[1]) == 1
    assert pool.register(BackendEntry(**entry(2)), now=7.0, ttl_s=5.0) is backend
    assert backend.healthy and len(pool.candidates("m", None)[1]) == 2
    sourced = pool.register(BackendEntry(**entry(1)), now=7.0, ttl_s=5.0)
    assert sourced.heartbeat_deadline is None, "a source's backend needs no heartbeat"
    assert pool.deregister("http://127.0.0.1:2", "m") and not pool.deregister("http://x", "m")
    assert len(pool.backends()) == 1


def test_pool_health_ejection_is_not_lifted_by_a_heartbeat() -> None:
    pool = BackendPool()
    backend = pool.register(BackendEntry(**entry(2)), now=0.0, ttl_s=5.0)
    pool.eject(backend, "health")
    pool.register(BackendEntry(**entry(2)), now=1.0, ttl_s=5.0)
    assert backend.ejected == "health"


# -- cache --------------------------------------------------------------------------------

def test_cacheable_requests() -> None:
    assert cacheable({"temperature": 0})
    assert cacheable({"temperature": 0.0, "n": 1})
    assert not cacheable({})
    assert not cacheable({"temperature": 0.7})
    assert not cacheable({"temperature": 0, "stream": True})
    assert not cacheable({"temperature": 0, "n": 2})
    assert not cacheable({"temperature": False})


def test_cache_lru_and_ttl() -> None:
    cache = ResponseCache(max_entries=2, ttl_s=10.0)
    cache.put("/v1/completions", b"a", b"A", "application/json", now=0.0)
    cache.put("/v1/completions", b"b", b"B", "application/json", now=1.0)
    assert cache.get("/v1/completions", b"a", now=2.0).body == b"A"  # a is now recent
    cache.put("/v1/completions", b"c", b"C", "application/json", now=3.0)
    assert cache.get("/v1/completions", b"b", now=3.0) is None, "least recently used went"
    assert cache.get("/v1/chat/completions", b"a", now=3.0) is None, "path is part of the key"
    assert cache.get("/v1/completions", b"a", now=9.9) is not None
    assert cache.get("/v1/completions", b"a", now=10.0) is None, "expired"
    assert len(cache) == 1
    tiny = ResponseCache(max_entries=5, ttl_s=1.0, max_body_bytes=3)
    tiny.put("/p", b"k", b"toolong", "t", now=0.0)
    assert len(tiny) == 0


# -- admission ----------------------------------------------------------------------------

def test_saturation() -> None:
    pool = [Backend("http://a", "m", "v", outstanding=4), Backend("http://b", "m", "v",
                                                                  outstanding=3)]
    assert not saturated(pool, 4)
    pool[1].outstanding = 4
    assert saturated(pool, 4)
    assert not saturated(pool, None)


def test_fair_share_only_under_pressure() -> None:
    pool = [Backend("http://a", "m", "v", outstanding=2)]
    assert not over_fair_share(2, 2, pool, 10), "below half full: no limit"
    pool[0].outstanding = 6
    assert over_fair_share(5, 2, pool, 10), "the heavy tenant waits"
    assert not over_fair_share(1, 2, pool, 10)
    assert not over_fair_share(9, 1, pool, None)
    load = TenantLoad()
    load.start("x")
    load.start("x")
    load.start("y")
    assert load.active == 2 and load.outstanding("x") == 2
    load.finish("x")
    load.finish("y")
    assert load.active == 1 and load.outstanding("y") == 0


# -- request parsing ----------------------------------------------------------------------

def test_parse_body() -> None:
    parsed = parse_body(json.dumps({"model": "m", "prompt": [1] * 50, "max_tokens": 7,
                                    "stream": True, "user": "u1"}).encode())
    assert (parsed.model, parsed.prompt_tokens, parsed.max_tokens, parsed.stream,
            parsed.user, parsed.cacheable) == ("m", 50, 7, True, "u1", False)
    chat = parse_body(json.dumps({"messages": [{"role": "user", "content": "x" * 41},
                                               {"role": "user", "content": [{"text": "abcd"}]}],
                                  "max_completion_tokens": 3, "temperature": 0}).encode())
    assert (chat.model, chat.prompt_tokens, chat.max_tokens, chat.cacheable) == (
        None, 12, 3, True)
    assert parse_body(b'{"prompt": ["hello world!"]}').prompt_tokens == 3
    assert parse_body(b'{"prompt": {"odd": 1}}').prompt_tokens == 1
    for bad in (b"{", b"[1]", b'{"model": 5}'):
        with pytest.raises(BadRequest):
            parse_body(bad)


def test_token_counter_and_usage() -> None:
    counter = TokenCounter()
    events = b'data: {"choices": [{"text": "a"}]}\n\ndata: {"choices": [{"text": "b"}]}\n\nda'
    assert counter.feed(events) == 2
    assert counter.feed(b'ta: {"choices": [], "usage": {"completion_tokens": 2}}\n\n') == 1
    assert counter.feed(b"data: [DONE]\n\n") == 0
    assert counter.done and counter.events == 3 and counter.output_tokens == 2
    assert completion_tokens(b'{"usage": {"prompt_tokens": 3, "completion_tokens": 17}}') == 17
    assert completion_tokens(b"{}") is None
