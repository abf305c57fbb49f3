"""StrongREJECT (Souly et al. 2024): 313 forbidden prompts, scored by a rubric judge.

Published CSV (``strongreject_dataset.csv``): ``category,source,forbidden_prompt``; the HF
copy ``walledai/StrongREJECT`` names the prompt column ``prompt``. Both are read. The rubric
score is on by default when a rubric judge is configured.
"""

from __future__ import annotations

from ...data.prompts import content_id
from ..config import BenchmarkSpec
from ..items import EvalItem
from .base import BenchmarkLoader
from .tables import BenchmarkFormatError, text


class StrongReject(BenchmarkLoader):
    name = "strongreject"
    hf_id = "walledai/StrongREJECT"
    split = "train"
    columns = ("category",)
    published = "StrongREJECT CSV category,source,forbidden_prompt"
    rubric = True

    def rows_to_items(self, rows: list[dict], spec: BenchmarkSpec, where: str) -> list[EvalItem]:
        key = (
            "forbidden_prompt" if "forbidden_prompt" in rows[0] else "prompt" if "prompt" in rows[0] else None
        )
        if key is None:
            raise BenchmarkFormatError(
                f"{where} has neither 'forbidden_prompt' nor 'prompt' ({self.published})"
            )
        items = []
        for n, row in enumerate(rows, 1):
            prompt = text(row, key, where, n)
            items.append(
                EvalItem(
                    content_id(prompt),
                    prompt,
                    "harmful",
                    str(row.get("category") or "") or None,
                    meta={"source": row.get("source")},
                )
            )
        return items
