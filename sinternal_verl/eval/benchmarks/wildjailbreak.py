"""WildJailbreak eval split (Jiang et al. 2024): 2,000 adversarial harmful + 210 adversarial
benign prompts. Published TSV (``eval/eval.tsv``): ``adversarial,label,data_type`` with
``label`` 1 (harmful) / 0 (benign) and ``data_type`` ``adversarial_harmful|adversarial_benign``.
The dataset is gated on the hub: accept its terms and log in before a GPU run."""

from __future__ import annotations

from typing import ClassVar

from ...data.prompts import content_id
from ..config import BenchmarkSpec
from ..items import EvalItem
from .base import BenchmarkLoader, norm_kind
from .tables import text


class WildJailbreak(BenchmarkLoader):
    name = "wildjailbreak"
    hf_id = "allenai/wildjailbreak"
    hf_config = "eval"
    split = "train"
    hf_kwargs: ClassVar[dict] = {"delimiter": "\t", "keep_default_na": False}
    columns = ("adversarial", "label")
    published = "WildJailbreak eval TSV adversarial,label,data_type"

    def rows_to_items(self, rows: list[dict], spec: BenchmarkSpec, where: str) -> list[EvalItem]:
        items = []
        for n, row in enumerate(rows, 1):
            prompt = text(row, "adversarial", where, n)
            kind = norm_kind(row.get("label"), where, n)
            items.append(EvalItem(content_id(prompt, kind), prompt, kind, str(row.get("data_type") or kind)))
        return items
