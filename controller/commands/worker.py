"""`fleetplan worker`: run one emulated batched inference worker (vLLM's HTTP API).

The worker takes the profile of `--model` on `--accelerator` from `--spec` (anything
`fleetplan validate` reads) and serves until SIGINT or SIGTERM. Once listening it prints
one line, `fleetplan worker: listening on http://HOST:PORT ...`, to stdout (so a parent
process started with `--port 0` learns the port). See `serving.worker` for the routes.
Its /admin endpoints need a bearer token (`--auth-token-file` or `FLEETPLAN_AUTH_TOKEN`;
without one they are refused; `--insecure-no-auth` turns the check off on loopback only).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from dataclasses import replace

from controller.commands.argtypes import non_negative_float, non_negative_int, positive_int
from controller.commands.server_args import (
    add_auth_options,
    add_body_options,
    auth_policy,
    body_limits,
)
from serving.overload import DEFAULT_MAX_QUEUE_WAIT_S
from serving.worker import serve
from serving.worker_config import (
    DEFAULT_MAX_MODEL_LEN,
    DEFAULT_MAX_TOKENS,
    WorkerSettings,
    worker_settings,
)
from specs.loading import load_fleet


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `worker` sub-command."""
    parser = subparsers.add_parser(
        "worker", help="run an emulated batched inference worker (OpenAI API, vLLM metrics)",
        description="Serve an emulated LLM inference worker: continuous batching with chunked "
        "prefill, iteration times from the profile of MODEL on ACCELERATOR in the spec.",
    )
    parser.add_argument("--model", required=True, help="model name in the spec's profiles")
    parser.add_argument("--accelerator", required=True, help="accelerator of the profile")
    parser.add_argument("--spec", required=True,
                        help="fleet spec: native document, inferno system-data.json or directory")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind")
    parser.add_argument("--port", type=non_negative_int, default=8000,
                        help="port (0 picks a free one)")
    parser.add_argument("--max-batch", type=positive_int,
                        help="max requests running at once (default: the profile's max_batch; "
                        "POST /admin/max_batch changes it live)")
    parser.add_argument("--max-queue", type=non_negative_int,
                        help="bound on waiting requests beyond free batch slots; more get 429 "
                        "(default: unbounded)")
    parser.add_argument("--max-queue-wait", type=non_negative_float,
                        default=DEFAULT_MAX_QUEUE_WAIT_S, metavar="S",
                        help="429 with Retry-After when a request's expected wait for a batch "
                        "slot (from max batch and the measured, else profiled, time in the "
                        "batch) exceeds S seconds (default %(default)g; 0: no bound)")
    parser.add_argument("--kv-capacity-tokens", type=positive_int,
                        help="KV cache size in tokens (default: max batch x mean in+out tokens "
                        "of the spec's servers of the model, see serving/worker_config.py)")
    parser.add_argument("--token-budget", type=positive_int,
                        help="tokens per iteration (vLLM's --max-num-batched-tokens): prompts "
                        "are prefilled in chunks under it, after one token per decoding request "
                        "(default: the profile's token_budget, 8192 unless the spec sets it; "
                        "POST /admin/token_budget changes it live)")
    parser.add_argument("--max-model-len", type=positive_int,
                        help="context length: the longest request (prompt + output tokens) "
                        "accepted, reported by /v1/models; longer ones get 400 (default: "
                        f"{DEFAULT_MAX_MODEL_LEN}, or the KV capacity where smaller)")
    parser.add_argument("--served-model-name", help="model name in the API (default: --model)")
    parser.add_argument("--default-max-tokens", type=positive_int, default=DEFAULT_MAX_TOKENS,
                        help="output tokens when a request sets none")
    add_auth_options(parser)
    add_body_options(parser)
    parser.set_defaults(func=run)


def settings_from_args(args: argparse.Namespace) -> WorkerSettings:
    """Load the spec and build the worker's settings (raises `SpecError`)."""
    auth, body = auth_policy(args, args.host), body_limits(args)
    loaded = load_fleet(args.spec)
    settings = worker_settings(
        loaded.spec, args.model, args.accelerator, source=loaded.path,
        max_batch=args.max_batch, max_queue=args.max_queue,
        kv_capacity_tokens=args.kv_capacity_tokens, token_budget=args.token_budget,
        served_model_name=args.served_model_name, default_max_tokens=args.default_max_tokens,
        max_model_len=args.max_model_len,
    )
    return replace(settings, auth=auth, body=body,
                   max_queue_wait_s=args.max_queue_wait or None)


def run(args: argparse.Namespace) -> int:
    """Serve until interrupted."""
    settings = settings_from_args(args)
    engine = settings.engine

    def ready(url: str) -> None:
        print(f"fleetplan worker: listening on {url} model {settings.served_model_name} "
              f"accelerator {settings.accelerator} max_batch {engine.max_batch} "
              f"token_budget {engine.token_budget} "
              f"kv_capacity_tokens {engine.kv_capacity_tokens} {settings.auth.describe()}",
              flush=True)

    try:
        asyncio.run(serve(settings, args.host, args.port, ready))
    except OSError as exc:
        print(f"fleetplan worker: error: {exc}", file=sys.stderr)
        return 1
    return 0
