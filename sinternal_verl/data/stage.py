"""What every streaming stage shares: resume bookkeeping, progress, the crash hook.

A stage reads its input, asks :class:`StageRun` which keys are still to do, and hands
finished records to :meth:`StageRun.write`; that appends them durably, advances the progress
bar and, for tests, raises :class:`InjectedCrash` after ``crash_after`` records.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Awaitable, Callable, Iterable
from typing import TypeVar

from .store import ShardWriter, StageStore


class InjectedCrash(RuntimeError):
    """Raised by the ``crash_after`` test hook; the run stops exactly like a real crash."""


class StageRun:
    def __init__(
        self,
        store: StageStore,
        all_keys: list[str],
        *,
        crash_after: int = -1,
        progress: bool = True,
        desc: str = "",
    ):
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

            self._bar = tqdm(
                total=len(all_keys), initial=self.resumed, desc=desc or store.name, unit="rec", leave=False
            )

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
            raise InjectedCrash(
                f"stage {self.store.name}: injected crash after {self.written} record(s) (crash_after)"
            )

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


T = TypeVar("T")
R = TypeVar("R")


async def stream_results(
    items: Iterable[T], one: Callable[[T], Awaitable[R]], write: Callable[[R], None], limit: int
) -> None:
    """``one(item)`` for every item, at most ``limit`` at a time; each result is handed to
    ``write`` by the task that produced it, the moment it exists.

    After the first failure (of ``one`` or of ``write``, e.g. an injected crash) no new
    request starts; requests already in flight are awaited, not abandoned half-sent (so what
    reached the server is settled when this returns), and their results are dropped, as a
    crashed process would drop them. Then the first failure is raised. So a crash after
    ``k`` writes costs at most ``limit - 1`` requests beyond the ``k`` written."""
    sem = asyncio.Semaphore(limit)
    failed: list[BaseException] = []

    async def task(item: T) -> None:
        async with sem:
            if failed:
                return
            try:
                result = await one(item)
                if not failed:
                    write(result)
            except Exception as exc:  # noqa: BLE001 - re-raised below, once every task settled
                if not failed:
                    failed.append(exc)

    await asyncio.gather(*(task(i) for i in items))
    if failed:
        raise failed[0]


def count_by(records: Iterable[dict], field: str) -> dict[str, int]:
    return dict(sorted(collections.Counter(str(r.get(field)) for r in records).items()))
