"""``name: file``: a plain JSONL / parquet / CSV with ``prompt`` and ``kind`` per row
(or ``kind:`` in the benchmark spec), optional ``id``, ``category``, ``answer`` (math),
``response`` and ``label`` (verification pairs)."""

from __future__ import annotations

import math

from ...data.prompts import content_id
from ..config import BenchmarkSpec
from ..items import EvalItem
from .base import BenchmarkLoader, norm_kind
from .tables import BenchmarkFormatError, text


def _opt(row: dict, key: str) -> str | None:
    v = row.get(key)
    if v is None or (isinstance(v, float) and math.isnan(v)) or str(v).strip() == "":
        return None
    return str(v)


class LocalFile(BenchmarkLoader):
    name = "file"
    columns = ("prompt",)
    published = "rows with prompt, kind and optional id, category, answer, response, label"

    def hf_rows(self, spec: BenchmarkSpec):
        if spec.hf_id:
            return super().hf_rows(spec)
        raise BenchmarkFormatError("benchmark 'file' needs path: (a JSONL / parquet / CSV file)")

    def rows_to_items(self, rows: list[dict], spec: BenchmarkSpec, where: str) -> list[EvalItem]:
        items = []
        for n, row in enumerate(rows, 1):
            prompt = text(row, "prompt", where, n)
            raw_kind = row.get("kind") if _opt(row, "kind") is not None else spec.kind
            if raw_kind is None:
                raise BenchmarkFormatError(
                    f"{where}: row {n} has no 'kind' and the benchmark spec sets no kind:"
                )
            kind = norm_kind(raw_kind, where, n)
            answer, response, label = _opt(row, "answer"), _opt(row, "response"), _opt(row, "label")
            if kind == "math" and answer is None:
                raise BenchmarkFormatError(f"{where}: row {n} is a math item without 'answer'")
            if kind == "verification":
                if response is None:
                    raise BenchmarkFormatError(f"{where}: row {n} is a verification item without 'response'")
                if label is not None:
                    label = {"safe": "safe", "unsafe": "unsafe", "0": "safe", "1": "unsafe"}.get(
                        label.strip().lower()
                    )
                    if label is None:
                        raise BenchmarkFormatError(
                            f"{where}: row {n} has label {row.get('label')!r}; expected safe or unsafe"
                        )
            rid = _opt(row, "id") or content_id(prompt, kind, response or "")
            items.append(EvalItem(rid, prompt, kind, _opt(row, "category"), answer, response, label))
        return items
