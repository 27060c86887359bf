"""`fork_map`: one pure computation over many items, split across forked processes.

Candidate generation sizes thousands of replica configurations, each independent of
the others; on a machine with more than one core, `fork_map(work, items, jobs)` runs
`work` on `jobs` interleaved slices of `items` at once: the calling process takes the
first slice, each other slice runs in a child forked from it (so the child sees every
object the caller has, nothing is imported or sent to it), and the children send back
their pickled results through a pipe. The answer is `work(items)` in the order of
`items`, exactly as one process would give it, as long as `work` is deterministic and
treats each item on its own.

Forking is only safe from a process with one thread (a forked child inherits no other
thread, and locks those threads held stay locked), so `usable_jobs` falls back to 1
when other Python threads run, off Linux, or for few items (a fork costs a few
milliseconds). A child that dies or raises does not lose its slice: the caller computes
it itself.

To extend: keep `work` free of side effects the caller relies on (a child's caches and
counters are lost); results must pickle.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import sys
import threading
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection
from typing import TypeVar

A = TypeVar("A")
R = TypeVar("R")

log = logging.getLogger(__name__)

MIN_ITEMS_PER_JOB = 256
"""Fewer items than this per extra process are computed in the caller alone."""
MAX_JOBS = 8


def default_jobs() -> int:
    """The cores this process may run on (at most `MAX_JOBS`)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores, MAX_JOBS))


def usable_jobs(jobs: int, items: int) -> int:
    """How many processes `fork_map` will use for `items` items when asked for `jobs`."""
    if jobs <= 1 or sys.platform != "linux" or threading.active_count() > 1:
        return 1
    return max(1, min(jobs, items // MIN_ITEMS_PER_JOB))


def fork_map(work: Callable[[Sequence[A]], list[R]], items: Sequence[A], jobs: int) -> list[R]:
    """`work(items)`, computed as `usable_jobs(jobs, len(items))` interleaved slices."""
    n = usable_jobs(jobs, len(items))
    if n == 1:
        return work(items)
    slices = [items[k::n] for k in range(n)]
    context = multiprocessing.get_context("fork")
    children = []
    for k in range(1, n):
        receive, send = context.Pipe(duplex=False)
        child = context.Process(target=_child, args=(work, slices[k], send), daemon=True)
        child.start()
        send.close()
        children.append((child, receive))
    parts: list[list[R]] = [work(slices[0])]
    for k, (child, receive) in enumerate(children, start=1):
        parts.append(_collect(child, receive, work, slices[k]))
    out: list[R] = [None] * len(items)  # type: ignore[list-item]
    for k, part in enumerate(parts):
        out[k::n] = part
    return out


def _child(work: Callable[[Sequence[A]], list[R]], part: Sequence[A], send: Connection) -> None:
    """In the forked child: compute a slice and send it (or the error) back."""
    try:
        send.send(("ok", work(part)))
    except BaseException as exc:  # noqa: BLE001 - reported to the caller, which recomputes
        send.send(("error", f"{type(exc).__name__}: {exc}"))
    finally:
        send.close()


def _collect(child: multiprocessing.process.BaseProcess, receive: Connection,
             work: Callable[[Sequence[A]], list[R]], part: Sequence[A]) -> list[R]:
    """A child's slice; computed here when the child failed."""
    try:
        status, value = receive.recv()
    except (EOFError, OSError) as exc:
        status, value = "error", f"no answer ({exc})"
    finally:
        receive.close()
        child.join()
    if status == "ok" and len(value) == len(part):
        return value
    log.warning("a forked worker failed (%s); computing its %d items here", value, len(part))
    return work(part)
