"""Workload descriptions shared by the load generator (`serving`) and the simulator.

- `workloads.arrivals`: arrival processes (Poisson, rate schedules, trace replay) and
  service-class tagging; pure, seeded, no clock.
- `workloads.traces`: readers for the Azure and Mooncake trace formats.

Layer: just above `specs`; imports only `specs` (and numpy). To extend: add a process or
a trace reader as its own module here and keep it free of I/O beyond reading files.
"""
