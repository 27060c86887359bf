"""`RecordTable`: a finished run's records as compact columns read back unchanged."""

from __future__ import annotations

from simulator.records import RecordTable, RequestRecord


def test_records_read_back_unchanged():
    records = [
        RequestRecord("r0", "chat", "premium", 0.5, 1000, 20, "chat-H100", "chat-H100-1",
                      0.5, 0.9, 2.0),
        RequestRecord("r1", "chat", None, 0.7, 4000, 1),
        RequestRecord("r2", "bulk", "batch", 1.0, 10, 5, "bulk-L4", "bulk-L4-2", 1.0,
                      rejected=True),
    ]
    table = RecordTable(records)
    assert len(table) == 3
    assert list(table) == records
    assert table[2].rejected and table[1].finish_s is None


def test_an_empty_table():
    assert list(RecordTable([])) == []
