"""Crash-safe, resumable storage for pipeline stages.

Why this shape: sampling and critiques cost GPU hours and API money, so a run must be able to
die anywhere (SIGKILL, OOM, pre-emption) and resume without losing or repeating work.

* A stage appends one JSON record per line to its *own* shard file per run
  (``part-<run>.jsonl``), flushing and fsyncing after each batch. A kill can at worst leave a
  torn last line in that shard; readers skip it (and count it), and the next run writes to a
  new shard, so a torn line is never glued to a good one.
* Every record carries a unique ``key``; readers keep the first record per key, and a stage
  skips keys already on disk, so nothing is done twice.
* Whole-file outputs (selection, parquet) are written to a temp file and renamed
  (atomic on POSIX); a stage is finished only when its ``_DONE.json`` marker exists.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


def atomic_write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n")


@dataclass
class ReadResult:
    records: dict[str, dict] = field(default_factory=dict)  # key -> first record seen
    torn_lines: int = 0
    duplicates: int = 0


class StageStore:
    """One stage's folder: append-only JSONL shards, a done-marker, a summary."""

    DONE = "_DONE.json"

    def __init__(self, root: Path, name: str):
        self.name = name
        self.dir = Path(root) / name
        self.dir.mkdir(parents=True, exist_ok=True)

    # -- reading -------------------------------------------------------------------------
    def shards(self) -> list[Path]:
        return sorted(self.dir.glob("part-*.jsonl"))

    def read(self) -> ReadResult:
        out = ReadResult()
        for shard in self.shards():
            with open(shard, "rb") as f:
                data = f.read()
            lines = data.split(b"\n")
            for i, line in enumerate(lines):
                if not line.strip():
                    continue
                try:
                    rec = json.loads(line)
                    key = rec["key"]
                except (json.JSONDecodeError, KeyError, TypeError, UnicodeDecodeError):
                    # only the last line of a shard can be torn by a kill; anything else is
                    # corruption we must not paper over
                    if i == len(lines) - 1:
                        out.torn_lines += 1
                        continue
                    raise ValueError(
                        f"{shard}: line {i + 1} is not a valid record (not the last line, so not a torn write)"
                    ) from None
                if key in out.records:
                    out.duplicates += 1
                    continue
                out.records[key] = rec
        return out

    def records(self) -> list[dict]:
        return list(self.read().records.values())

    # -- writing -------------------------------------------------------------------------
    def writer(self) -> ShardWriter:
        # Names sort in creation order (readers let the earliest record of a key win): a
        # sequence number, then nanoseconds; seconds alone tied for two runs in the same second.
        seq = len(self.shards())
        return ShardWriter(
            self.dir / f"part-{seq:06d}-{time.time_ns()}-{os.getpid()}-{uuid.uuid4().hex[:6]}.jsonl"
        )

    @property
    def done_path(self) -> Path:
        return self.dir / self.DONE

    def is_done(self) -> bool:
        return self.done_path.exists()

    def mark_done(self, summary: dict) -> None:
        atomic_write_json(self.done_path, summary)


class ShardWriter:
    """Appends records to one shard; each ``write_many`` is flushed and fsynced as a unit."""

    def __init__(self, path: Path):
        self.path = path
        self._f = None

    def write_many(self, records: Iterable[dict]) -> int:
        lines = [json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n" for r in records]
        if not lines:
            return 0
        if self._f is None:
            self._f = open(self.path, "a", encoding="utf-8")
        self._f.write("".join(lines))
        self._f.flush()
        os.fsync(self._f.fileno())
        return len(lines)

    def close(self) -> None:
        if self._f is not None:
            self._f.close()
            self._f = None

    def __enter__(self) -> ShardWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def iter_jsonl(path: Path) -> Iterator[dict]:
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if line.strip():
                try:
                    yield json.loads(line)
                except json.JSONDecodeError as exc:
                    raise ValueError(f"{path}:{n}: invalid JSON ({exc.msg})") from exc
