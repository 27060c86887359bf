"""Reader and writer for llm-inferno's JSON documents, exactly as inferno writes them.

Input: one `system-data.json` envelope (`{"system": {acceleratorData, capacityData,
modelData, serviceClassData, serverData, optimizerData}}`) or a directory holding the six
files (`accelerator-data.json`, ...; server and optimizer files may be absent). Keys are
matched case-insensitively, as Go's encoding/json does; rates are requests per minute.
The result is a native `FleetSpec`; errors name inferno's own file and JSON path.

Output: `to_inferno_solution(plan)` writes inferno's `{"allocations": {...}}`.

To extend: a new inferno field is read in the matching `_read_*` function and mapped onto
the native field; add the native->inferno name to `_FIELD_NAMES` for error messages.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

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
from specs.errors import SpecError
from specs.jsonnode import D, Node, build_document, read_json
from specs.limits import MAX_RATE_RPS
from specs.plan import Plan

PART_FILES = {
    "acceleratorData": "accelerator-data.json",
    "capacityData": "capacity-data.json",
    "modelData": "model-data.json",
    "serviceClassData": "serviceclass-data.json",
    "serverData": "server-data.json",
    "optimizerData": "optimizer-data.json",
}
OPTIONAL_PARTS = {"serverData", "optimizerData"}

# native field -> inferno key, for errors raised after conversion
_FIELD_NAMES = {
    "card_type": "type", "cost_per_hour": "cost", "accelerator": "acc",
    "units_per_replica": "accCount", "max_batch": "maxBatchSize", "at_tokens": "atTokens",
    "alpha_ms": "perfParms.alpha", "beta_ms": "perfParms.beta", "gamma_ms": "perfParms.gamma",
    "ttft_ms": "slo-ttft", "itl_ms": "slo-itl", "tokens_per_s": "slo-tps",
    "service_class": "class", "min_replicas": "minNumReplicas", "max_queue": "maxQueueSize",
    "keep_accelerator": "keepAccelerator", "load": "currentAlloc.load",
    "arrival_rate_rps": "arrivalRate", "in_tokens": "avgInTokens",
    "out_tokens": "avgOutTokens", "current": "currentAlloc", "replicas": "numReplicas",
    "targets": "modelTargets",
}


def _build(cls: type[D], node: Node, **values: Any) -> D:
    """Construct a native document, reporting validation errors at the inferno node."""
    return build_document(cls, node, _FIELD_NAMES, **values)


def _read_accelerators(part: Node) -> list[tuple[Accelerator, Node]]:
    out = []
    for n in part.items("accelerators"):
        out.append((_build(
            Accelerator, n,
            name=n.field("name", str), card_type=n.field("type", str),
            multiplicity=n.field("multiplicity", int, 1), cost_per_hour=n.field("cost", float),
            memory_gb=n.field("memSize", float, None),
        ), n))
    return out


def _read_capacity(part: Node) -> dict[str, int]:
    capacity: dict[str, int] = {}
    for n in part.items("count"):
        card_type, count = n.field("type", str), n.field("count", int)
        if count < 0:
            raise n.error(f"expected a count >= 0, got {count}", key="count")
        capacity[card_type] = capacity.get(card_type, 0) + count
    return capacity


def _read_profiles(part: Node) -> list[tuple[Profile, Node]]:
    out = []
    for n in part.items("models"):
        perf = n.child("perfParms", required=False)
        if perf is None:
            hint = ("this is the older decodeParms/prefillParms format, which is not supported"
                    if n.child("decodeParms", required=False) is not None else None)
            raise n.error("missing field 'perfParms' (alpha, beta, gamma)", hint=hint,
                          key="perfParms")
        out.append((_build(
            Profile, n,
            model=n.field("name", str), accelerator=n.field("acc", str),
            units_per_replica=n.field("accCount", int, 1),
            max_batch=n.field("maxBatchSize", int),
            at_tokens=n.field("atTokens", int, None) or None,
            token_budget=n.field("maxNumTokens", int, 8192),
            alpha_ms=perf.field("alpha", float), beta_ms=perf.field("beta", float),
            gamma_ms=perf.field("gamma", float),
        ), n))
    return out


def _read_classes(part: Node) -> list[tuple[ServiceClass, Node]]:
    out = []
    for n in part.items("serviceClasses"):
        priority = n.field("priority", int, 0)
        targets = [
            _build(ModelTarget, t, model=t.field("model", str),
                   itl_ms=t.field("slo-itl", float, 0.0), ttft_ms=t.field("slo-ttft", float, 0.0),
                   tokens_per_s=t.field("slo-tps", float, 0.0))
            for t in n.items("modelTargets", required=False)
        ]
        out.append((_build(
            ServiceClass, n, name=n.field("name", str),
            priority=priority if 1 <= priority <= 100 else 100, targets=targets,
        ), n))
    return out


def _read_current(alloc: Node | None) -> CurrentAllocation | None:
    if alloc is None or not alloc.field("accelerator", str, ""):
        return None
    batch = alloc.field("maxBatch", int, 0)
    return _build(
        CurrentAllocation, alloc, accelerator=alloc.field("accelerator", str),
        replicas=alloc.field("numReplicas", int, 0), max_batch=batch or None,
    )


def _read_servers(part: Node) -> list[tuple[Server, Node]]:
    out = []
    for n in part.items("servers", required=False):
        alloc = n.child("currentAlloc", required=False)
        load_node = alloc.child("load", required=False) if alloc is not None else None
        if load_node is None:
            raise n.error("missing field 'currentAlloc.load' (arrivalRate, avgInTokens, avgOutTokens)")
        rate_rpm = load_node.field("arrivalRate", float, 0.0)
        if rate_rpm > 60.0 * MAX_RATE_RPS:
            raise load_node.error(
                f"expected at most {60.0 * MAX_RATE_RPS:.0f} requests per minute, got "
                f"{rate_rpm!r}", hint="an upper bound of fleetplan's documents, see "
                "specs/limits.py", key="arrivalRate")
        load = _build(
            Load, load_node, arrival_rate_rps=rate_rpm / 60.0,
            in_tokens=load_node.field("avgInTokens", float, 0.0),
            out_tokens=load_node.field("avgOutTokens", float, 0.0),
        )
        batch = n.field("maxBatchSize", int, 0)
        queue = n.field("maxQueueSize", int, 0)
        out.append((_build(
            Server, n, name=n.field("name", str), model=n.field("model", str),
            service_class=n.field("class", str), load=load, current=_read_current(alloc),
            min_replicas=n.field("minNumReplicas", int, 0),
            keep_accelerator=n.field("keepAccelerator", bool, False),
            max_batch=batch or None, max_queue=queue or None,
        ), n))
    return out


def _read_options(part: Node | None) -> OptimizerOptions:
    if part is None:
        return OptimizerOptions()
    n = part.child("optimizer", required=False) or part
    if n.field("unlimited", bool, False):
        solver = "unlimited"
    elif n.field("milpSolver", bool, False):
        solver = "milp"
    else:
        solver = "greedy"
    policy = n.field("saturationPolicy", str, "None")
    if policy not in ("PriorityExhaustive", "PriorityRoundRobin", "RoundRobin"):
        policy = "None"  # inferno reads any other value as None
    return _build(
        OptimizerOptions, n, solver=solver, heterogeneous=n.field("heterogeneous", bool, False),
        delayed_best_effort=n.field("delayedBestEffort", bool, False), saturation_policy=policy,
    )


def _assemble(parts: dict[str, Node | None]) -> FleetSpec:
    """Build the native spec from the six part nodes, mapping reference errors back."""
    accelerators = _read_accelerators(parts["acceleratorData"])  # type: ignore[arg-type]
    profiles = _read_profiles(parts["modelData"])  # type: ignore[arg-type]
    classes = _read_classes(parts["serviceClassData"])  # type: ignore[arg-type]
    servers = _read_servers(parts["serverData"]) if parts["serverData"] else []
    origin = {f"$.accelerators[{i}]": n for i, (_, n) in enumerate(accelerators)}
    origin |= {f"$.profiles[{i}]": n for i, (_, n) in enumerate(profiles)}
    origin |= {f"$.service_classes[{i}]": n for i, (_, n) in enumerate(classes)}
    origin |= {f"$.servers[{i}]": n for i, (_, n) in enumerate(servers)}
    try:
        return FleetSpec(
            accelerators=[a for a, _ in accelerators],
            capacity=_read_capacity(parts["capacityData"]),  # type: ignore[arg-type]
            profiles=[p for p, _ in profiles],
            service_classes=[c for c, _ in classes],
            servers=[s for s, _ in servers],
            optimizer=_read_options(parts["optimizerData"]),
        )
    except SpecError as exc:
        raise _translate(exc, origin) from None


def _translate(exc: SpecError, origin: dict[str, Node]) -> SpecError:
    for prefix, node in origin.items():
        if exc.json_path == prefix or exc.json_path.startswith(prefix + "."):
            rest = exc.json_path[len(prefix) + 1:]
            key = ".".join(_FIELD_NAMES.get(p, p) for p in rest.split(".")) if rest else None
            return node.error(exc.message, hint=exc.hint, key=key)
    return exc


def read_inferno_envelope(path: Path) -> FleetSpec:
    """Read a `system-data.json` envelope."""
    root = Node(read_json(path), path)
    system = root.child("system")
    assert system is not None
    parts = {
        name: system.child(name, required=name not in OPTIONAL_PARTS) for name in PART_FILES
    }
    return _assemble(parts)


def read_inferno_directory(path: Path) -> FleetSpec:
    """Read a directory of inferno's part files (names matched case-insensitively)."""
    files = {p.name.lower(): p for p in path.iterdir() if p.is_file()}
    parts: dict[str, Node | None] = {}
    for name, filename in PART_FILES.items():
        file = files.get(filename)
        if file is None:
            if name in OPTIONAL_PARTS:
                parts[name] = None
                continue
            raise SpecError(f"missing inferno file {filename!r}", file=path,
                            hint="expected " + ", ".join(PART_FILES.values()))
        parts[name] = Node(read_json(file), file)
    return _assemble(parts)


def is_inferno_envelope(document: Any) -> bool:
    """True when a parsed JSON document is inferno's `{"system": {...}}` envelope."""
    return isinstance(document, dict) and any(k.lower() == "system" for k in document)


def to_inferno_solution(plan: Plan) -> dict[str, Any]:
    """Inferno's solution document; a split server is written as its largest variant."""
    allocations: dict[str, Any] = {}
    for alloc in plan.allocations:
        if not alloc.variants:
            continue
        main = max(alloc.variants, key=lambda v: (v.arrival_rate_rps, v.replicas, v.accelerator))
        allocations[alloc.server] = {
            "accelerator": main.accelerator,
            "numReplicas": sum(v.replicas for v in alloc.variants if v.accelerator == main.accelerator),
            "maxBatch": main.max_batch,
            "cost": round(alloc.cost_per_hour, 6),
            "itlAverage": round(main.predicted_itl_ms, 6),
            "ttftAverage": round(main.predicted_ttft_ms, 6),
            "load": {
                "arrivalRate": round(alloc.load.arrival_rate_rps * 60.0, 6),
                "avgInTokens": alloc.load.in_tokens,
                "avgOutTokens": alloc.load.out_tokens,
            },
        }
    return {"allocations": dict(sorted(allocations.items()))}
