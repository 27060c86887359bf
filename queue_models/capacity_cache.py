"""Where capacity tables are kept: in memory, and optionally in a folder on disk.

`CapacityCache(folder)` hands out one `CapacityTable` per `TableKey` (loading it from
`folder/<key>.npz` the first time, when present) and `save(table)` writes a table back
atomically (a temporary file renamed over the old one), so a table measured once is a
lookup in every later run. With `folder=None` tables live in memory only. A file that
cannot be read (truncated, another version's layout) is ignored and measured again: the
cache only ever saves work, never changes an answer.

Each file holds the rates probed and, per rate, the per-request TTFT and mean ITL
(float32 seconds) and whether the replay was abandoned as overloaded.

To extend: a field added to `Probe` is one more array per rate here (old files without
it are measured again: bump `FORMAT`).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

from queue_models.capacity_table import CapacityTable, Probe, TableKey

FORMAT = 2
"""Bumped whenever replays or files change meaning (older files are measured again)."""


class CapacityCache:
    """Tables by key, in memory and (with a folder) on disk."""

    def __init__(self, folder: str | Path | None = None) -> None:
        self.folder = Path(folder) if folder is not None else None
        self._tables: dict[TableKey, CapacityTable] = {}

    def table(self, key: TableKey) -> CapacityTable:
        """The table of `key` (empty when never measured)."""
        found = self._tables.get(key)
        if found is None:
            found = self._tables[key] = self._load(key) or CapacityTable(key)
        return found

    def save(self, table: CapacityTable) -> None:
        """Write `table` to the folder (no-op without one)."""
        if self.folder is None:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        arrays: dict[str, np.ndarray] = {"format": np.array([FORMAT])}
        rates = table.rates()
        arrays["rates"] = np.array(rates, dtype=np.float64)
        for i, rate in enumerate(rates):
            probe = table.probes[rate]
            arrays[f"ttft_{i}"] = probe.ttft_s.astype(np.float32)
            arrays[f"itl_{i}"] = probe.itl_s.astype(np.float32)
            arrays[f"overloaded_{i}"] = np.array([probe.overloaded])
        path = self._path(table.key)
        fd, tmp = tempfile.mkstemp(dir=self.folder, suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as handle:
                np.savez(handle, **arrays)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def _path(self, key: TableKey) -> Path:
        assert self.folder is not None
        return self.folder / f"{key.file_stem()}.npz"

    def _load(self, key: TableKey) -> CapacityTable | None:
        if self.folder is None:
            return None
        path = self._path(key)
        if not path.is_file():
            return None
        try:
            with np.load(path) as data:
                if int(data["format"][0]) != FORMAT:
                    return None
                table = CapacityTable(key)
                for i, rate in enumerate(data["rates"].tolist()):
                    table.add(Probe(float(rate), data[f"ttft_{i}"], data[f"itl_{i}"],
                                    bool(data[f"overloaded_{i}"][0])))
                return table
        except (OSError, KeyError, ValueError):
            return None
