"""`optimizer.fork_map`: the same answer as one process, in order, whatever the children do."""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Sequence

import pytest

from optimizer import fork_map as fm

needs_fork = pytest.mark.skipif(sys.platform != "linux", reason="forks on Linux only")


def _square_with_pid(items: Sequence[int]) -> list[tuple[int, int]]:
    return [(x * x, os.getpid()) for x in items]


@needs_fork
def test_slices_come_back_in_order_and_run_in_children(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fm, "MIN_ITEMS_PER_JOB", 10)
    items = list(range(95))
    out = fm.fork_map(_square_with_pid, items, jobs=3)
    assert [value for value, _ in out] == [x * x for x in items]
    pids = {pid for _, pid in out}
    assert len(pids) == 3 and os.getpid() in pids  # the caller took one slice


@needs_fork
def test_a_failing_child_s_slice_is_computed_by_the_caller(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fm, "MIN_ITEMS_PER_JOB", 10)
    caller = os.getpid()

    def work(items: Sequence[int]) -> list[int]:
        if os.getpid() != caller:
            raise RuntimeError("child broke")
        return [x + 1 for x in items]

    assert fm.fork_map(work, list(range(40)), jobs=2) == list(range(1, 41))


@needs_fork
def test_a_child_that_dies_does_not_lose_its_slice(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fm, "MIN_ITEMS_PER_JOB", 10)
    caller = os.getpid()

    def work(items: Sequence[int]) -> list[int]:
        if os.getpid() != caller:
            os._exit(3)
        return [-x for x in items]

    assert fm.fork_map(work, list(range(30)), jobs=2) == [-x for x in range(30)]


def test_few_items_or_other_threads_mean_one_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fm, "MIN_ITEMS_PER_JOB", 10)
    assert fm.usable_jobs(4, 9) == 1
    assert fm.usable_jobs(1, 1000) == 1
    if sys.platform == "linux":
        assert fm.usable_jobs(4, 25) == 2
        stop = threading.Event()
        thread = threading.Thread(target=stop.wait)
        thread.start()
        try:
            assert fm.usable_jobs(4, 1000) == 1  # forking beside a thread is unsafe
        finally:
            stop.set()
            thread.join()
