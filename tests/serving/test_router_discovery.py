"""Backends sources: file reloads, the plan URL, and Kubernetes against a fake API server.

The Kubernetes test runs the official client against a tiny aiohttp server on 127.0.0.1
that answers the list-pods calls with a valid PodList.
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from serving.discovery import FileSource, PlanSource, SourceUnavailable, poll_source
from serving.discovery_kubernetes import KubernetesSource, PodLabels, api_client
from serving.router_config import RouterSettings
from specs.errors import SpecError
from tests.serving.conftest import running_worker, settings
from tests.serving.test_router_app import BODY, running_router


def write(path: Path, backends: list[dict], **more: object) -> None:
    path.write_text(json.dumps({"backends": backends, **more}))
    stat = path.stat()  # make sure the change is visible even within one mtime tick
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))


def test_file_source_reloads_and_keeps_the_last_good_document(tmp_path: Path) -> None:
    path = tmp_path / "backends.json"
    write(path, [{"url": "http://127.0.0.1:1", "model": "m"}])

    async def scenario() -> None:
        source = FileSource(path)
        first = await source.fetch()
        assert first is not None and len(first.backends) == 1
        assert await source.fetch() is None, "unchanged"
        write(path, [{"url": "http://127.0.0.1:1", "model": "m"},
                     {"url": "http://127.0.0.1:2", "model": "m"}])
        assert len((await source.fetch()).backends) == 2
        path.write_text('{"backends": [{"url": 5}]}')
        with pytest.raises(SpecError, match=r"\$\.backends\[0\]\.url"):
            await source.fetch()
        path.unlink()
        with pytest.raises(SourceUnavailable):
            await source.fetch()

    asyncio.run(scenario())
    with pytest.raises(SpecError, match="no such backends file"):
        asyncio.run(FileSource(tmp_path / "absent.json").fetch())


def test_router_follows_file_changes(tmp_path: Path) -> None:
    path = tmp_path / "backends.json"

    async def scenario() -> None:
        async with running_worker(settings()) as (w1, _), running_worker(settings()) as (w2, _):
            write(path, [{"url": w1, "model": "m"}])
            router_settings = RouterSettings(poll_interval_s=0.05)
            async with running_router(router_settings,
                                      source_factory=lambda s: FileSource(path)) as (url, state), \
                    aiohttp.ClientSession() as s:
                assert [b.url for b in state.pool.backends()] == [w1]
                write(path, [{"url": w2, "model": "m"}])
                await asyncio.sleep(0.3)
                assert [b.url for b in state.pool.backends()] == [w2]
                path.write_text("{broken")
                await asyncio.sleep(0.3)
                assert [b.url for b in state.pool.backends()] == [w2], "last good kept"
                async with s.post(url + "/v1/completions", json=BODY) as r:
                    assert r.status == 200

    asyncio.run(asyncio.wait_for(scenario(), 30))


def test_plan_source_polls_the_controller() -> None:
    served = {"status": 200, "body": {"backends": [], "plan": {"ignored": True}}}

    async def plan(request: web.Request) -> web.Response:
        return web.json_response(served["body"], status=served["status"])

    async def scenario() -> None:
        app = web.Application()
        app.router.add_get("/plan", plan)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        try:
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            host, port = runner.addresses[0][:2]
            async with aiohttp.ClientSession() as session:
                source = PlanSource(f"http://{host}:{port}/plan", session)
                assert (await source.fetch()).backends == []
                assert await source.fetch() is None, "same answer: unchanged"
                served["body"] = {"backends": [{"url": "http://10.0.0.1:8000", "model": "m",
                                                "variant": "v", "weight": 0.5}]}
                assert (await source.fetch()).backends[0].weight == 0.5
                served["status"] = 503
                with pytest.raises(SourceUnavailable, match="HTTP 503"):
                    await source.fetch()
                served.update(status=200, body={"backends": [{"model": "m"}]})
                with pytest.raises(SpecError, match=r"/plan: \$\.backends\[0\]\.url"):
                    await source.fetch()
                applied: list[object] = []
                served["body"] = {"backends": []}
                task = asyncio.create_task(poll_source(source, applied.append, 0.01))
                await asyncio.sleep(0.2)
                task.cancel()
                assert len(applied) == 1
            async with aiohttp.ClientSession() as session:
                gone = PlanSource("http://127.0.0.1:9/plan", session, timeout_s=1.0)
                with pytest.raises(SourceUnavailable):
                    await gone.fetch()
        finally:
            await runner.cleanup()

    asyncio.run(asyncio.wait_for(scenario(), 30))


def pod(name: str, ip: str, model: str | None, ready: bool = True, **more: object) -> dict:
    labels = {"app": "llm"} | ({"fleetplan.io/model": model} if model else {})
    labels |= more.get("labels", {})
    return {
        "metadata": {"name": name, "namespace": "serving", "labels": labels,
                     "annotations": more.get("annotations", {}),
                     "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                                          "name": f"{name[:-2]}-rs", "uid": "u",
                                          "controller": True}]},
        "spec": {"containers": [{"name": "vllm", "args": more.get("args", []), "ports": [
            {"containerPort": 9090, "name": "metrics"}, {"containerPort": 8000, "name": "http"}]}]},
        "status": {"phase": "Running", "podIP": ip,
                   "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]},
    }


PODS = [
    pod("llama-h100-a", "10.1.0.1", "llama", labels={"fleetplan.io/variant": "llama-h100"},
        annotations={"fleetplan.io/router-weight": "0.75"},
        args=["--model", "llama", "--max-num-seqs", "64"]),
    pod("llama-h100-b", "10.1.0.2", "llama", labels={"fleetplan.io/variant": "llama-h100"},
        annotations={"fleetplan.io/router-weight": "0.75"}, args=["--max-num-seqs=64"]),
    pod("llama-a100-a", "10.1.0.3", "llama", annotations={"fleetplan.io/router-weight": "x"},
        args=["--max-num-seqs", "lots"]),
    pod("starting-a", "10.1.0.4", "llama", ready=False),
    pod("unlabelled-a", "10.1.0.5", None),
]


def test_kubernetes_source_against_a_fake_api_server() -> None:
    seen: list[str] = []

    async def pods(request: web.Request) -> web.Response:
        seen.append(f"{request.path}?{request.query_string}")
        return web.json_response({"apiVersion": "v1", "kind": "PodList",
                                  "metadata": {"resourceVersion": "1"}, "items": PODS})

    async def scenario() -> None:
        app = web.Application()
        app.router.add_get("/api/v1/namespaces/{ns}/pods", pods)
        app.router.add_get("/api/v1/pods", pods)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        try:
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            host, port = runner.addresses[0][:2]
            api = api_client(f"http://{host}:{port}")
            source = KubernetesSource("app=llm", api, namespace="serving", labels=PodLabels())
            document = await source.fetch()
            assert await source.fetch() is None, "same pods: unchanged"
            everywhere = await KubernetesSource("app=llm", api).fetch()
            assert everywhere == document
            api.close()
            gone = KubernetesSource("app=llm", api_client("http://127.0.0.1:9"), timeout_s=1.0)
            with pytest.raises(SourceUnavailable):
                await gone.fetch()
        finally:
            await runner.cleanup()
        return document

    document = asyncio.run(asyncio.wait_for(scenario(), 30))
    assert seen[0] == "/api/v1/namespaces/serving/pods?labelSelector=app%3Dllm"
    assert seen[-1] == "/api/v1/pods?labelSelector=app%3Dllm"
    got = [(b.url, b.model, b.variant, b.weight, b.max_batch) for b in document.backends]
    assert got == [("http://10.1.0.1:8000", "llama", "llama-h100", 0.75, 64),
                   ("http://10.1.0.2:8000", "llama", "llama-h100", 0.75, 64),
                   ("http://10.1.0.3:8000", "llama", "llama-a100-rs", None, None)]
    assert document.backends[0].model_extra == {"pod": "serving/llama-h100-a"}
