"""The evaluation: does fleetplan save money at equal SLOs on real traces?

`fleetplan evaluate` runs five policies (static peak, reactive threshold autoscaler,
inferno-style greedy loop, fleetplan's loop, the clairvoyant bound) on the same arrivals
and the same simulated hardware (`simulator.SimCluster`, virtual time) and writes
`summary.json`, `report.md` and PNG plots.

- `scenario`: the scenario document, the standard scenarios, the arrivals;
- `sizing`: loads from arrivals, one-shot sizings the baselines use;
- `policies`: the five policies (a registry);
- `run`: one policy over a scenario, sampling cost and capacity;
- `metrics`: a run's figures (cost, SLO attainment, percentiles, churn) and the goals;
- `plots`, `report`: the outputs.

It lives in `controller` because two policies are the real `ControlLoop`.
To extend: a new policy is a class in `policies` plus a registry entry.
"""
