"""MATH-500 (Lightman et al. 2023's subset of MATH): ``problem,solution,answer,subject,level,
unique_id`` (``test.jsonl``, HF ``HuggingFaceH4/MATH-500`` split ``test``). The prompt asks for
a boxed answer, as DeepSeek-R1's evaluation does; scoring is the project's strict boxed reward."""

from __future__ import annotations

from ..config import BenchmarkSpec
from ..items import EvalItem
from .base import BenchmarkLoader
from .tables import text

BOXED_INSTRUCTION = "{prompt}\nPlease reason step by step, and put your final answer within \\boxed{}."


class Math500(BenchmarkLoader):
    name = "math500"
    hf_id = "HuggingFaceH4/MATH-500"
    split = "test"
    columns = ("problem", "answer")
    published = "MATH-500 JSONL problem,solution,answer,subject,level,unique_id"
    prompt_template = BOXED_INSTRUCTION

    def rows_to_items(self, rows: list[dict], spec: BenchmarkSpec, where: str) -> list[EvalItem]:
        return [
            EvalItem(
                str(row.get("unique_id") or n),
                text(row, "problem", where, n),
                "math",
                str(row.get("subject") or "") or None,
                answer=text(row, "answer", where, n),
            )
            for n, row in enumerate(rows, 1)
        ]
