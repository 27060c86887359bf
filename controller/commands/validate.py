"""`fleetplan validate PATH`: check a native or inferno document and summarise it."""

from __future__ import annotations

import argparse
from collections import defaultdict

from specs.documents import FleetSpec
from specs.loading import load_fleet


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `validate` sub-command."""
    parser = subparsers.add_parser(
        "validate", help="check a fleet document and print a summary",
        description="Check a native document, an inferno system-data.json, or a directory of "
        "inferno's files; print a one-screen summary. Exit 2 on bad input.",
    )
    parser.add_argument("path", help="document file or inferno directory")
    parser.set_defaults(func=run)


def summary(spec: FleetSpec) -> list[str]:
    """Lines of a one-screen summary of a fleet."""
    lines = [f"accelerators ({len(spec.accelerators)}):"]
    for a in spec.accelerators:
        lines.append(f"  {a.name:<14} {a.multiplicity} x {a.card_type:<8} {a.cost_per_hour:>9.2f}/h")
    cap = ", ".join(f"{t} {n}" for t, n in sorted(spec.capacity.items())) or "(none)"
    lines.append(f"capacity (cards): {cap}")
    models = sorted({p.model for p in spec.profiles})
    lines.append(f"profiles: {len(spec.profiles)} for {len(models)} models")
    lines.append(f"service classes ({len(spec.service_classes)}):")
    for c in sorted(spec.service_classes, key=lambda c: (c.priority, c.name)):
        lines.append(f"  {c.name:<14} priority {c.priority:<3} targets for {len(c.targets)} models")
    by_class: dict[str, list[float]] = defaultdict(lambda: [0, 0.0, 0.0])
    for s in spec.servers:
        row = by_class[s.service_class]
        row[0] += 1
        row[1] += s.load.arrival_rate_rps
        row[2] += s.load.arrival_rate_rps * s.load.out_tokens
    lines.append(f"servers ({len(spec.servers)}):")
    for name, (count, rps, tps) in sorted(by_class.items()):
        lines.append(f"  {name:<14} {int(count):>4} servers {rps:>10.2f} req/s {tps:>12.0f} out tok/s")
    total_rps = sum(s.load.arrival_rate_rps for s in spec.servers)
    lines.append(f"total load: {total_rps:.2f} req/s ({total_rps * 60:.1f} req/min)")
    o = spec.optimizer
    lines.append(f"optimizer: solver {o.solver}, queue model {o.queue_model}, "
                 f"heterogeneous {str(o.heterogeneous).lower()}")
    return lines


def run(args: argparse.Namespace) -> int:
    """Load, check and summarise."""
    loaded = load_fleet(args.path)
    print(f"{loaded.path}: valid {loaded.format} document")
    print("\n".join(summary(loaded.spec)))
    return 0
