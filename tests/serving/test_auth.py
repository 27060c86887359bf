"""Bearer tokens on every state-changing endpoint, and the router's registration allow-list."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

import aiohttp
import pytest

from serving.auth import AllowList, AuthPolicy, bearer, load_policy
from serving.router_config import RouterSettings
from specs.errors import SpecError
from tests.serving.conftest import ADMIN, TOKEN, running_worker, settings
from tests.serving.test_router_app import fake_upstream, running_router


def test_the_policy_comes_from_a_file_or_the_environment(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("from-file\n")
    env = {"FLEETPLAN_AUTH_TOKEN": "from-env"}
    assert load_policy(str(token_file), False, "0.0.0.0", env).token == "from-file"
    assert load_policy(None, False, "0.0.0.0", env).token == "from-env"
    assert load_policy(None, False, "0.0.0.0", {}) == AuthPolicy()
    assert load_policy(None, True, "127.0.0.1", env).insecure
    assert "from-env" not in repr(load_policy(None, False, "0.0.0.0", env))
    with pytest.raises(SpecError, match="loopback"):
        load_policy(None, True, "0.0.0.0", {})
    (tmp_path / "empty").write_text(" \n")
    with pytest.raises(SpecError, match="empty"):
        load_policy(str(tmp_path / "empty"), False, "127.0.0.1", {})
    with pytest.raises(SpecError, match="cannot read"):
        load_policy(str(tmp_path / "missing"), False, "127.0.0.1", {})


def test_the_allow_list_takes_networks_and_exact_hosts() -> None:
    default = AllowList()
    assert default.allows("http://127.0.0.1:8000") and default.allows("http://localhost:1")
    assert not default.allows("http://10.0.0.5:8000") and not default.allows("http://evil:80")
    allow = AllowList.parse(["10.0.0.0/8", "worker.fleet.svc"])
    assert allow.allows("http://10.1.2.3:8000") and allow.allows("http://worker.fleet.svc:80")
    assert not allow.allows("http://127.0.0.1:1") and not allow.allows("http://11.0.0.1:1")
    with pytest.raises(SpecError):
        AllowList.parse(["10.0.0.0/99"])


async def _status(s: aiohttp.ClientSession, method: str, url: str, json: object = None,
                  headers: dict | None = None) -> int:
    async with s.request(method, url, json=json, headers=headers) as response:
        return response.status


def test_worker_admin_writes_need_the_token_and_inference_does_not() -> None:
    async def scenario() -> None:
        async with running_worker(settings()) as (url, state), aiohttp.ClientSession() as s:
            change = {"max_batch": 3}
            assert await _status(s, "POST", url + "/admin/max_batch", change) == 401
            assert await _status(s, "POST", url + "/admin/max_batch", change,
                                 bearer("wrong")) == 401
            assert await _status(s, "PUT", url + "/admin/token_budget", {"token_budget": 9},
                                 {"Authorization": TOKEN}) == 401  # no "Bearer"
            assert state.engine.max_batch == 8 and state.engine.token_budget != 9
            assert await _status(s, "GET", url + "/admin/max_batch") == 200
            assert await _status(s, "POST", url + "/v1/completions",
                                 {"prompt": "hi", "max_tokens": 1}) == 200
            assert await _status(s, "POST", url + "/admin/max_batch", change, ADMIN) == 200
            assert state.engine.max_batch == 3
        unconfigured = replace(settings(), auth=AuthPolicy())
        async with running_worker(unconfigured) as (url, _), aiohttp.ClientSession() as s, \
                s.post(url + "/admin/max_batch", json={"max_batch": 3}, headers=ADMIN) as answer:
            assert answer.status == 403
            assert "FLEETPLAN_AUTH_TOKEN" in (await answer.json())["message"]

    asyncio.run(scenario())


def test_router_registration_needs_the_token_and_an_allowed_host() -> None:
    async def ok(request: aiohttp.web.Request) -> aiohttp.web.Response:
        return aiohttp.web.json_response({})

    async def scenario() -> None:
        router_settings = RouterSettings(auth=AuthPolicy(token=TOKEN))
        async with fake_upstream(ok) as up, running_router(router_settings) as (url, state), \
                aiohttp.ClientSession() as s:
            entry = {"url": up, "model": "m"}
            assert await _status(s, "POST", url + "/router/backends", entry) == 401
            assert await _status(s, "DELETE", url + "/router/backends", entry) == 401
            outside = {"url": "http://203.0.113.9:8000", "model": "m"}
            assert await _status(s, "POST", url + "/router/backends", outside, ADMIN) == 403
            assert state.pool.backends() == []
            assert await _status(s, "POST", url + "/router/backends", entry, ADMIN) == 200
            assert [b.url for b in state.pool.backends()] == [up]
            assert await _status(s, "GET", url + "/router/backends") == 200
            assert await _status(s, "POST", url + "/v1/completions", {"model": "m"}) == 200

    asyncio.run(scenario())
