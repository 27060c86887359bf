"""actuator: enacts a plan on the fleet (Kubernetes Deployments or local worker processes).

- `base`: the contract (`Actuator` protocol: `observe()`, `apply(plan, plan_id, reason)`)
  and its result types;
- `desired`: a plan flattened into `DesiredVariant`s; which servers may be touched;
- `kubernetes`: `KubernetesActuator` (apply, dry-run, metrics modes) over
  `kubernetes_api.DeploymentApi` (the only module importing the `kubernetes` client),
  with Deployments built and patched by `manifests` and pod restarts limited by
  `ratelimit`;
- `metrics_mode`: desired replicas as Prometheus gauges for an HPA or KEDA;
- `local`: `LocalActuator`, variants as local `fleetplan worker` processes
  (`local_process`).

It sits beside `collector` and may import optimizer, tuner, queue_models and specs.
Submodules are imported by name (importing this package loads no client library).
"""
