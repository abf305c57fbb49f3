"""On-disk cache of generations and judgements, one record per (model, benchmark, item, sample).

Built on the pipeline's crash-safe store (:class:`sinternal_verl.data.store.StageStore`):
append-only fsynced shards, first record per key wins, a torn last line after a kill is
skipped. A record's key carries a hash of the exact prompt sent, and the folder a hash of the
sampling settings, so changing the prompt template, n or temperature never reuses stale text;
rerunning the same config after a kill regenerates nothing that was written.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from ..data.store import StageStore


def short_hash(obj: Any, length: int = 12) -> str:
    return hashlib.sha256(
        json.dumps(obj, sort_keys=True, ensure_ascii=False, default=str).encode()
    ).hexdigest()[:length]


def sample_key(item_id: str, model_prompt: str, sample: int) -> str:
    return f"{item_id}:{short_hash(model_prompt, 10)}#{sample}"


class RecordCache:
    """``key -> record`` on disk; ``put_many`` is durable when it returns."""

    def __init__(self, root: Path, name: str):
        self.store = StageStore(root, name)
        rr = self.store.read()
        self.records: dict[str, dict] = rr.records
        self.torn_lines = rr.torn_lines
        self._writer = None

    def __contains__(self, key: str) -> bool:
        return key in self.records

    def get(self, key: str) -> dict | None:
        return self.records.get(key)

    def put_many(self, records: list[dict]) -> None:
        new = [r for r in records if r["key"] not in self.records]
        if not new:
            return
        if self._writer is None:
            self._writer = self.store.writer()
        self._writer.write_many(new)
        for r in new:
            self.records[r["key"]] = r

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


def generation_dir(out: Path, model: str, bench: str, settings: dict) -> Path:
    return out / "cache" / model / bench / f"gen-{short_hash(settings)}"
