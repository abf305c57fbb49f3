"""AIME 2024: 30 problems with integer answers. HF ``HuggingFaceH4/aime_2024`` has
``id,problem,solution,answer,url,year``; other copies capitalise (``ID,Problem,Answer``), both
are read. The paper reports pass@16: set ``n: 16`` and ``temperature: 0.6``."""

from __future__ import annotations

from ..config import BenchmarkSpec
from ..items import EvalItem
from .base import BenchmarkLoader
from .math500 import BOXED_INSTRUCTION
from .tables import BenchmarkFormatError, text


class AIME2024(BenchmarkLoader):
    name = "aime2024"
    hf_id = "HuggingFaceH4/aime_2024"
    columns = ()
    published = "AIME JSONL id,problem,solution,answer (or ID,Problem,Answer)"
    prompt_template = BOXED_INSTRUCTION

    def rows_to_items(self, rows: list[dict], spec: BenchmarkSpec, where: str) -> list[EvalItem]:
        cols = rows[0]
        low = "problem" in cols and "answer" in cols
        if not low and not ("Problem" in cols and "Answer" in cols):
            raise BenchmarkFormatError(f"{where} lacks problem/answer columns ({self.published})")
        p, a, i = ("problem", "answer", "id") if low else ("Problem", "Answer", "ID")
        return [
            EvalItem(
                str(row.get(i) or n), text(row, p, where, n), "math", None, answer=text(row, a, where, n)
            )
            for n, row in enumerate(rows, 1)
        ]
