"""The discrete-event twin of a fleet: replicas running `queue_models.engine.BatchEngine`
in virtual time, driven by the real control loop.

- `simulator.cluster.SimCluster`: the twin; an `actuator.base.Actuator` and a
  `controller.sources.MetricsSource` at once, so `controller.loop.ControlLoop` runs
  against it unchanged. `advance_to(t)` runs events up to virtual time t.
- `simulator.config.SimConfig`: start-up, window, and the simulated hardware (an
  iteration-cost law per model and accelerator, noise, KV capacity, queue bound).
- `simulator.hardware`: the `EngineConfig` of each replica (law, seeded noise, limits).
- `queue_models.fused.FusedEngine`: the engine running decode-only iterations up to the
  next outside event in one call (same times as one event per iteration).
- `simulator.replica.SimReplica`: one replica (start-up, ready, draining) and its engine.
- `simulator.records`: requests submitted and per-request records for evaluation.
- `simulator.routing`: how a server's requests are spread over its replicas and variants
  (`least_loaded` relative to max batch, or `weighted` by the plan; `SimConfig.routing`).
- `simulator.window`: per-variant logs and figures over the last window (a
  `VariantSnapshot`), router arrivals.
- `simulator.timing`, `simulator.validation`: timing-table laws, queue-model validation.

Layer: beside `serving` (neither imports the other); may import collector, actuator,
optimizer, tuner, queue_models, workloads and specs. No clock reads: time is virtual.

To extend: a new routing policy is a function registered in `simulator.routing`; a new
figure is one more field filled in `simulator.window`; a new hardware property is one
more `SimConfig` field applied in `simulator.hardware`.
"""
