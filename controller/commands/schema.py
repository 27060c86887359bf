"""`fleetplan schema`: print the JSON Schema of a native document."""

from __future__ import annotations

import argparse
import json

from pydantic import BaseModel

from specs.documents import FleetSpec
from specs.plan import Plan
from specs.queue_problem import QueueProblem

DOCUMENTS: dict[str, type[BaseModel]] = {
    "fleet": FleetSpec,
    "plan": Plan,
    "queue-problem": QueueProblem,
}


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `schema` sub-command."""
    parser = subparsers.add_parser(
        "schema", help="print the JSON Schema of a native document",
        description="Print the JSON Schema of a native fleetplan document.",
    )
    parser.add_argument(
        "document", nargs="?", default="fleet", choices=sorted(DOCUMENTS),
        help="which document (default: fleet)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Print the schema."""
    print(json.dumps(DOCUMENTS[args.document].model_json_schema(), indent=2))
    return 0
