"""XSTest (Rottger et al. 2024): 250 safe prompts that look unsafe + 200 unsafe contrasts.

Published CSV: ``id,prompt,type,label,focus,note``; ``label`` is ``safe`` / ``unsafe``,
``type`` (homonyms, figurative_language, ..., contrast_*) is the category. Safe prompts are
scored for over-refusal (full + partial refusal), unsafe contrasts for attack success.
"""

from __future__ import annotations

from ..config import BenchmarkSpec
from ..items import EvalItem
from .base import BenchmarkLoader
from .tables import BenchmarkFormatError, text


class XSTest(BenchmarkLoader):
    name = "xstest"
    hf_id = "Paul/XSTest"
    split = "train"
    columns = ("id", "prompt", "type", "label")
    published = "XSTest CSV id,prompt,type,label,focus,note"

    def rows_to_items(self, rows: list[dict], spec: BenchmarkSpec, where: str) -> list[EvalItem]:
        items = []
        for n, row in enumerate(rows, 1):
            label = str(row.get("label", "")).strip().lower()
            if label not in ("safe", "unsafe"):
                raise BenchmarkFormatError(
                    f"{where}: row {n} has label {row.get('label')!r}; XSTest labels are safe/unsafe"
                )
            items.append(
                EvalItem(
                    id=str(row["id"]),
                    prompt=text(row, "prompt", where, n),
                    kind="benign" if label == "safe" else "harmful",
                    category=str(row.get("type") or "") or None,
                    meta={"focus": row.get("focus"), "note": row.get("note")},
                )
            )
        return items
