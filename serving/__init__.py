"""The data plane: the router, the emulated batched inference worker and the load generator.

- `serving.worker` (+ `driver`, `metrics`, `openai_api`, `worker_config`): an aiohttp
  server with vLLM's OpenAI-compatible API and metric names, batching with
  `queue_models.engine.BatchEngine` in real time.
- `serving.loadgen`, `serving.loadclient`, `serving.report`: the load generator as a
  library (run a schedule from `workloads.arrivals` against target URLs, get a typed
  report).
- `serving.router` (+ `router_*`, `discovery*`, `routing/`): the OpenAI-compatible router:
  backends from a file, the controller's `/plan`, Kubernetes pods or registration;
  routing policies registered by name in `serving.routing`; admission, retries, cache.

Layer: below `controller`; may import every package but `controller` and `simulator`. The simulator must not
import this package (it runs `BatchEngine` itself).
"""
