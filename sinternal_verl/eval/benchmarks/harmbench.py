"""HarmBench text behaviours (Mazeika et al. 2024).

Published CSV (``harmbench_behaviors_text_*.csv``): ``Behavior,FunctionalCategory,
SemanticCategory,Tags,ContextString,BehaviorID``. Contextual behaviours are sent as
``context\\n\\n---\\n\\nbehavior`` as HarmBench does. Copyright behaviours need HarmBench's
separate hashing detector, not a guard, so they are left out (the count is recorded). The HF
copy ``walledai/HarmBench`` (``prompt``, ``category``[, ``context``]) is read too. HarmBench's
protocol is greedy decoding with 512 new tokens: set ``temperature: 0, max_tokens: 512``.
"""

from __future__ import annotations

from ..config import BenchmarkSpec
from ..items import EvalItem
from .base import BenchmarkLoader
from .tables import BenchmarkFormatError, text


class HarmBench(BenchmarkLoader):
    name = "harmbench"
    hf_id = "walledai/HarmBench"
    hf_config = "standard"
    columns = ()
    published = "HarmBench CSV Behavior,FunctionalCategory,SemanticCategory,Tags,ContextString,BehaviorID"

    def rows_to_items(self, rows: list[dict], spec: BenchmarkSpec, where: str) -> list[EvalItem]:
        official = "Behavior" in rows[0]
        if not official and "prompt" not in rows[0]:
            raise BenchmarkFormatError(
                f"{where} has neither 'Behavior' nor 'prompt' columns ({self.published})"
            )
        items = []
        for n, row in enumerate(rows, 1):
            if official:
                if str(row.get("FunctionalCategory", "")).strip().lower() == "copyright":
                    continue
                behavior = text(row, "Behavior", where, n)
                context = str(row.get("ContextString") or "").strip()
                rid, cat = str(row.get("BehaviorID") or n), row.get("SemanticCategory")
            else:
                behavior = text(row, "prompt", where, n)
                context = str(row.get("context") or "").strip()
                rid, cat = str(n), row.get("category")
            prompt = f"{context}\n\n---\n\n{behavior}" if context else behavior
            items.append(EvalItem(rid, prompt, "harmful", str(cat or "") or None))
        return items
