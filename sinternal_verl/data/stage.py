"""What every streaming stage shares: resume bookkeeping, progress, the crash hook.

A stage reads its input, asks :class:`StageRun` which keys are still to do, and hands
finished records to :meth:`StageRun.write`; that appends them durably, advances the progress
bar and, for tests, raises :class:`InjectedCrash` after ``crash_after`` records.
"""

from __future__ import annotations

import collections
from typing import Iterable

from .store import ShardWriter, StageStore


class InjectedCrash(RuntimeError):
    """Raised by the ``crash_after`` test hook; the run stops exactly like a real crash."""


class StageRun:
    def __init__(self, store: StageStore, all_keys: list[str], *, crash_after: int = -1, progress: bool = True, desc: str = ""):
        self.store = store
        existing = store.read()
        self.previous = existing.records
        self.torn_lines = existing.torn_lines
        self.duplicates_on_disk = existing.duplicates
        wanted = set(all_keys)
        self.todo_keys = [k for k in all_keys if k not in self.previous]
        self.resumed = len(wanted) - len(self.todo_keys)
        self.crash_after = crash_after
        self.written = 0
        self._writer: ShardWriter | None = None
        self._bar = None
        if progress and self.todo_keys:
            from tqdm import tqdm

            self._bar = tqdm(total=len(all_keys), initial=self.resumed, desc=desc or store.name, unit="rec", leave=False)

    def write(self, records: Iterable[dict]) -> None:
        records = list(records)
        if not records:
            return
        if self._writer is None:
            self._writer = self.store.writer()
        self._writer.write_many(records)
        self.written += len(records)
        if self._bar is not None:
            self._bar.update(len(records))
        if 0 <= self.crash_after <= self.written:
            self.close()
            raise InjectedCrash(f"stage {self.store.name}: injected crash after {self.written} record(s) (crash_after)")

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def all_records(self) -> list[dict]:
        return self.store.records()

    def bookkeeping(self) -> dict:
        return {
            "resumed_records": self.resumed,
            "written_this_run": self.written,
            "torn_lines_skipped": self.torn_lines,
            "duplicate_lines_skipped": self.duplicates_on_disk,
        }


def count_by(records: Iterable[dict], field: str) -> dict[str, int]:
    return dict(sorted(collections.Counter(str(r.get(field)) for r in records).items()))
