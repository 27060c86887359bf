"""`fleetplan router`: one OpenAI-compatible endpoint in front of the fleet's replicas.

Backends come from one source: `--backends FILE` (a JSON backends document, re-read when
it changes), `--plan URL` (the controller's plan endpoint, polled; the same document) or
`--kubernetes SELECTOR` (ready Pods matching a label selector). With none, the router
starts empty and workers register themselves (`POST /router/backends`: with the bearer
token of `--auth-token-file` or `FLEETPLAN_AUTH_TOKEN`, from a host on `--register-allow`,
loopback by default). Once listening it
prints one line, `fleetplan router: listening on http://HOST:PORT ...`, to stdout (so a
parent started with `--port 0` learns the port). See `serving.router` for the routes and
`serving.routing` for the policies.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Callable, Coroutine
from typing import Any

from controller.commands.argtypes import non_negative_float, non_negative_int, positive_float
from controller.commands.helptext import RawDescriptionDefaultsFormatter
from controller.commands.server_args import (
    add_auth_options,
    add_body_options,
    auth_policy,
    body_limits,
)
from serving.auth import AllowList
from serving.discovery import FileSource, PlanSource
from serving.overload import DEFAULT_MAX_QUEUE_WAIT_S
from serving.router import RouterState, SourceFactory, build_state, serve
from serving.router_config import SESSION_HEADER, RouterSettings
from serving.routing import POLICIES, POLICY_NAMES, PolicyOptions
from specs.errors import SpecError


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `router` sub-command."""
    p = subparsers.add_parser(
        "router", help="route OpenAI requests over the replicas of every model",
        description=DESCRIPTION, epilog=BACKENDS_FORMAT,
        formatter_class=RawDescriptionDefaultsFormatter,
    )
    p.add_argument("--host", default="127.0.0.1", help="address to bind")
    p.add_argument("--port", type=non_negative_int, default=8080,
                   help="port (0 picks a free one)")
    source = p.add_mutually_exclusive_group()
    source.add_argument("--backends", metavar="FILE",
                        help="backends JSON document (format below; re-read when it changes)")
    source.add_argument("--plan", metavar="URL",
                        help="controller plan endpoint serving the same document, e.g. "
                        "http://127.0.0.1:8080/plan (polled)")
    source.add_argument("--kubernetes", metavar="SELECTOR",
                        help="label selector of the Pods to route to, e.g. "
                        "app.kubernetes.io/part-of=fleetplan")
    p.add_argument("--policy", choices=POLICY_NAMES,
                   help="policy for models the config does not name (default: least_loaded "
                   "when backends carry a weight or max batch, as a plan's do, else "
                   "least_outstanding)")
    p.add_argument("--model-policy", action="append", default=[], metavar="MODEL=NAME",
                   help="policy for one model (repeatable; overrides the document's)")
    _add_behaviour(p)
    _add_kubernetes(p)
    add_auth_options(p)
    p.add_argument("--register-allow", action="append", default=[], metavar="CIDR|HOST",
                   help="backend hosts POST /router/backends may register: a CIDR, an "
                   "address or an exact host name (repeatable; default: loopback only)")
    add_body_options(p)
    p.set_defaults(func=run)


DESCRIPTION = """\
Reverse proxy for /v1/completions, /v1/chat/completions and /v1/models that
spreads requests over the replicas serving each model, by policy. Backends come
from --backends FILE, --plan URL or --kubernetes SELECTOR; with none, workers
register themselves (POST /router/backends). Also serves /health, /healthz,
/readyz (503 while no backend is healthy), /metrics and GET /router/backends."""

BACKENDS_FORMAT = """\
backends document (--backends FILE; also what --plan URL serves):
  {"backends": [
     {"url": "http://127.0.0.1:8001", "model": "llama_3_1_8b",
      "variant": "llama-h100", "weight": 0.75, "max_batch": 64},
     {"url": "http://127.0.0.1:8002", "model": "llama_3_1_8b",
      "variant": "llama-l4", "weight": 0.25, "max_batch": 16,
      "service_class": "batch"}],
   "policies": {"llama_3_1_8b": "least_loaded"}}
  url, model       required: base URL (http or https) and the model requests name
  variant          Deployment name (default: the URL); replicas of one variant
                   must carry the same weight
  weight           the variant's share of the model's requests (>= 0)
  max_batch        requests the replica runs at once (least_loaded divides by it)
  service_class    serve only this class's requests (default: any class)
  policies         a routing policy per model (optional)
Other top-level keys are ignored; other per-backend keys are kept. A bad
document is reported with its JSON path (exit 2 at start-up). See docs/router.md."""


def _add_behaviour(p: argparse.ArgumentParser) -> None:
    p.add_argument("--max-retries", type=non_negative_int, default=2,
                   help="attempts on other replicas after a failure before the first byte")
    p.add_argument("--max-outstanding", type=non_negative_int, default=256,
                   help="429 when every candidate has this many requests in flight (0: off)")
    p.add_argument("--max-queue-wait", type=non_negative_float,
                   default=DEFAULT_MAX_QUEUE_WAIT_S, metavar="S",
                   help="429 with Retry-After when every candidate's expected wait for a "
                   "batch slot (from its max batch and measured completion rate) exceeds S "
                   "seconds (default %(default)g; 0: no bound; candidates without a max "
                   "batch are bounded by --max-outstanding only)")
    p.add_argument("--tenant-header", help="enable per-tenant fair share keyed on this header")
    p.add_argument("--session-header", default=SESSION_HEADER,
                   help="header holding the session key for session_affinity")
    p.add_argument("--p2c-metric", choices=("outstanding", "latency"), default="outstanding",
                   help="what power_of_two compares: requests in flight or latency")
    p.add_argument("--cache-size", type=non_negative_int, default=0,
                   help="exact-match response cache entries (0: off)")
    p.add_argument("--cache-ttl", type=positive_float, default=60.0, help="cache TTL, s")
    p.add_argument("--health-interval", type=positive_float, default=2.0,
                   help="seconds between health checks")
    p.add_argument("--heartbeat-timeout", type=positive_float, default=10.0,
                   help="heartbeat deadline of a registered worker that sends no ttl_s, s")
    p.add_argument("--poll-interval", type=positive_float, default=1.0,
                   help="seconds between reads of the backends source")
    p.add_argument("--seed", type=int, help="seed of the randomised policies")
    p.add_argument("--loop", choices=("auto", "uvloop", "asyncio"), default="auto",
                   help="event loop (auto: uvloop when installed)")
    p.add_argument("--log-level", default="WARNING",
                   help="logging level: DEBUG, INFO, WARNING or ERROR")


def _add_kubernetes(p: argparse.ArgumentParser) -> None:
    p.add_argument("--namespace", help="Kubernetes namespace (default: all)")
    p.add_argument("--kubernetes-port", type=int, help="backend port (default: the container "
                   "port named 'http', else the first)")
    p.add_argument("--kubernetes-api", metavar="URL",
                   help="API server URL without auth (default: in-cluster, then kubeconfig)")
    p.add_argument("--model-label", default="fleetplan.io/model",
                   help="Pod label naming the model a Pod serves")
    p.add_argument("--variant-label", default="fleetplan.io/variant",
                   help="Pod label naming the Pod's variant (its Deployment)")
    p.add_argument("--weight-annotation", default="fleetplan.io/router-weight",
                   help="Pod annotation carrying the variant's router weight")
    p.add_argument("--class-label", default="fleetplan.io/service-class",
                   help="Pod label that restricts a Pod to one service class")


def _model_policies(items: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        model, sep, name = item.partition("=")
        if not sep or not model or not name:
            raise SpecError(f"expected MODEL=NAME, got {item!r}", json_path="--model-policy")
        POLICIES.get(name)  # unknown names list the known ones
        out[model] = name
    return out


def settings_from_args(args: argparse.Namespace) -> RouterSettings:
    """The router's settings from the command line (raises `SpecError`)."""
    return RouterSettings(
        default_policy=args.policy, model_policies=_model_policies(args.model_policy),
        policy_options=PolicyOptions(p2c_metric=args.p2c_metric),
        max_retries=args.max_retries, max_outstanding=args.max_outstanding or None,
        max_queue_wait_s=args.max_queue_wait or None,
        tenant_header=args.tenant_header, session_header=args.session_header.lower(),
        cache_size=args.cache_size, cache_ttl_s=args.cache_ttl,
        health_interval_s=args.health_interval, heartbeat_timeout_s=args.heartbeat_timeout,
        poll_interval_s=args.poll_interval, seed=args.seed,
        auth=auth_policy(args, args.host), body=body_limits(args),
        register_allow=(AllowList.parse(args.register_allow) if args.register_allow
                        else AllowList()),
    )


def source_from_args(args: argparse.Namespace) -> SourceFactory | None:
    """How the router learns its backends."""
    if args.backends:
        source = FileSource(args.backends)
        return lambda session: source
    if args.plan:
        return lambda session: PlanSource(args.plan, session)
    if args.kubernetes:
        from serving.discovery_kubernetes import KubernetesSource, PodLabels, api_client

        labels = PodLabels(args.model_label, args.variant_label, args.weight_annotation,
                           args.class_label)
        return lambda session: KubernetesSource(
            args.kubernetes, api_client(args.kubernetes_api), args.namespace,
            args.kubernetes_port, labels=labels)
    return None


def _runner(choice: str) -> Callable[[Coroutine[Any, Any, None]], None]:
    if choice != "asyncio":
        try:
            import uvloop
        except ImportError:
            if choice == "uvloop":
                raise SpecError("uvloop is not installed", json_path="--loop") from None
        else:
            return uvloop.run
    return asyncio.run


def run(args: argparse.Namespace) -> int:
    """Serve until interrupted."""
    logging.basicConfig(level=args.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = settings_from_args(args)
    state: RouterState = build_state(settings, source_from_args(args))

    def ready(url: str) -> None:
        models = ", ".join(state.pool.models()) or "none yet"
        print(f"fleetplan router: listening on {url} backends {len(state.pool.backends())} "
              f"models {models} {settings.auth.describe()}", flush=True)

    try:
        _runner(args.loop)(serve(state, args.host, args.port, ready))
    except OSError as exc:
        print(f"fleetplan router: error: {exc}", file=sys.stderr)
        return 1
    return 0
