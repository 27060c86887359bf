"""Wall time and peak memory of `fleetplan evaluate --trace` on a long real trace.

    .venv/bin/python bench/evaluate_trace.py [--trace FILE] [--spec PATH]
                                             [--policies a,b] [--data-dir DIR]

Runs the CLI in a child process, as a user would, with all five policies by default:
`fleetplan evaluate --trace <data>/mooncake/conversation_trace.jsonl --spec
bench/specs/small-fleet.json` (one chat server on a small H100/A100/L4 fleet, no
`max_replicas`: the case where the reactive policy used to grow without bound), and
prints the machine, the command, the wall time, the child's peak RSS and the policies'
rows. Skips, naming the path, when the trace is absent. A benchmark, not a test: the
bounded-replica behaviour is tested in tests/controller/evaluation/test_bounded.py.

To extend: another trace or fleet is a pair of `--trace` / `--spec` arguments.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SPEC = ROOT / "bench" / "specs" / "small-fleet.json"


def data_dir(given: Path | None) -> Path:
    """`--data-dir`, else `$FLEETPLAN_DATA_DIR`, else `shared/data` beside the checkout."""
    env = os.environ.get("FLEETPLAN_DATA_DIR")
    return given or (Path(env) if env else ROOT.parent / "shared" / "data")


def machine() -> str:
    """Python, platform and CPU count."""
    return (f"python {platform.python_version()}, {platform.machine()}, "
            f"{os.cpu_count()} CPUs, {platform.system()}")


def run(command: list[str]) -> tuple[int, float, float, str]:
    """(exit code, wall s, peak RSS of the child MiB, stdout)."""
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    if done.returncode:
        sys.stderr.write(done.stderr)
    return done.returncode, wall, peak_kib / 1024.0, done.stdout


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trace", type=Path, help="trace file (default: Mooncake "
                        "conversation trace in the data folder)")
    parser.add_argument("--spec", type=Path, default=DEFAULT_SPEC)
    parser.add_argument("--policies", help="comma-separated subset (default: all five)")
    parser.add_argument("--data-dir", type=Path)
    args = parser.parse_args()
    trace = args.trace or data_dir(args.data_dir) / "mooncake" / "conversation_trace.jsonl"
    if not trace.is_file():
        print(f"skipped: no trace at {trace}")
        return 0
    with tempfile.TemporaryDirectory() as out:
        command = [str(Path(sys.executable).parent / "fleetplan"), "evaluate", "--trace",
                   str(trace), "--spec", str(args.spec), "-o", out]
        if args.policies:
            command += ["--policies", args.policies]
        code, wall, peak, stdout = run(command)
    print(machine())
    print("command: fleetplan evaluate --trace", trace.name, "--spec",
          args.spec.name, *(["--policies", args.policies] if args.policies else []))
    print(f"exit {code}, wall {wall:.1f} s, peak RSS {peak:.0f} MiB")
    print(stdout, end="")
    return code


if __name__ == "__main__":
    raise SystemExit(main())
