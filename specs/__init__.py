"""fleetplan's vocabulary: pydantic documents, JSON I/O, errors, clock and registries.

The lowest layer: every other package may import it; it imports none of them.
See `documents.py` (the native fleet document), `plan.py` (the optimizer's output),
`inferno.py` (inferno's documents as they are), `loading.py` (read any of them).
"""

from specs.clock import Clock, FakeClock, MonotonicClock, SystemClock
from specs.documents import (
    Accelerator,
    CurrentAllocation,
    FleetSpec,
    Load,
    ModelTarget,
    OptimizerOptions,
    Profile,
    Server,
    ServiceClass,
)
from specs.errors import EXIT_BAD_INPUT, SpecError
from specs.loading import LoadedFleet, load_fleet, write_json_atomic
from specs.plan import Plan, ServerAllocation, SolverReport, Unserved, VariantAllocation
from specs.registry import Registry, UnknownNameError

__all__ = [
    "EXIT_BAD_INPUT", "Accelerator", "Clock", "CurrentAllocation", "FakeClock", "FleetSpec",
    "Load", "LoadedFleet", "ModelTarget", "MonotonicClock", "OptimizerOptions", "Plan",
    "Profile", "Registry", "ServerAllocation", "Server", "ServiceClass", "SolverReport",
    "SpecError", "SystemClock", "UnknownNameError", "Unserved", "VariantAllocation",
    "load_fleet", "write_json_atomic",
]
