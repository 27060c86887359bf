"""Check that optimizer changes leave plans byte-for-byte the same (a tool, not a test).

Writes, or compares against, `optimize(spec, timer=None).model_dump_json()` for:
the benchmark fleets of `optimize_end_to_end` (`optimizer_scale.fleet` with pressured
capacity) at 100 and 1,000 servers, heterogeneous off and on, with mixed (1.0) and
scarce (0.7) capacity; and every `specs/examples/*.json` with its own options and with
`heterogeneous` flipped.

Also compares a digest of each problem's candidates (`repr` of the `Problem` built with
predicted latencies: every sizing, replica count, cost and latency, floats in full), so
that a plan difference can be told apart from a candidate difference.

Run on the code before a change with `--write DIR`, after it with `--check DIR`: exit 1
and the names of the plans that differ when any does. A plan whose MILP stopped at its
time limit (before and after) is not compared: what it holds depends on how fast the
machine was at the time.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from optimize_end_to_end import bench_spec  # noqa: E402

from optimizer.api import make_generator, optimize  # noqa: E402
from specs.documents import FleetSpec  # noqa: E402
from specs.loading import load_fleet  # noqa: E402


def cases(sizes: list[int]) -> Iterator[tuple[str, FleetSpec]]:
    """(name, spec) of every case, in a fixed order."""
    for path in sorted((ROOT / "specs" / "examples").glob("*.json")):
        spec = load_fleet(str(path)).spec
        yield path.stem, spec
        flipped = not spec.optimizer.heterogeneous
        other = spec.optimizer.model_copy(update={"heterogeneous": flipped})
        yield f"{path.stem}-{'het' if flipped else 'single'}", spec.model_copy(
            update={"optimizer": other}
        )
    for size in sizes:
        for scale in (1.0, 0.7):
            for het in (False, True):
                name = f"fleet-{size}-scale{scale}-{'het' if het else 'single'}"
                yield name, bench_spec(size, 1, scale, het)


def _problem_digest(spec: FleetSpec) -> str:
    """SHA-256 of the problem's repr: every candidate with its sizing, replicas, cost
    and predicted latencies (floats in full), what the optimizer's speed-ups touch."""
    problem = make_generator(spec).problem(spec, predict=True)
    return hashlib.sha256(repr(problem).encode()).hexdigest()


def _time_limited(plan: str) -> bool:
    """Whether a plan's solver stopped at its time limit (a wall-clock answer)."""
    report = json.loads(plan).get("solver") or {}
    return "time limit" in report.get("detail", "")


def main() -> None:
    """Command line: `--write DIR` or `--check DIR`, `--sizes 100,1000`."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--write", type=Path)
    group.add_argument("--check", type=Path)
    parser.add_argument("--sizes", default="100,1000")
    args = parser.parse_args()
    differ = []
    for name, spec in cases([int(s) for s in args.sizes.split(",")]):
        text = optimize(spec, timer=None).model_dump_json()
        digest = hashlib.sha256(text.encode()).hexdigest()[:16]
        problem = _problem_digest(spec)
        if args.write:
            args.write.mkdir(parents=True, exist_ok=True)
            (args.write / f"{name}.json").write_text(text)
            (args.write / f"{name}.problem").write_text(problem)
            print(f"{name}: {digest} written (candidates {problem[:16]})")
            continue
        before = (args.check / f"{name}.json").read_text()
        same_problem = (args.check / f"{name}.problem").read_text() == problem
        print(f"{name}: candidates {problem[:16]} {'same' if same_problem else 'DIFFERENT'}")
        if not same_problem:
            differ.append(f"{name} (candidates)")
        same = before == text
        if not same and _time_limited(before) and _time_limited(text):
            print(f"{name}: {digest} differs, but both runs stopped at the time limit "
                  "(the MILP's answer then depends on the machine's speed): not compared")
            continue
        print(f"{name}: {digest} {'same' if same else 'DIFFERENT'}")
        if not same:
            differ.append(name)
            (args.check / f"{name}.new.json").write_text(text)
    if differ:
        print(f"{len(differ)} plans differ: {', '.join(differ)}")
        sys.exit(1)


if __name__ == "__main__":
    main()
