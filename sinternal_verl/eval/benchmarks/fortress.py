"""FORTRESS public set (Scale AI, 2025): 500 adversarial prompts on national-security misuse,
each with a benign twin. Published columns: ``ID,adversarial_prompt,rubric,risk_domain,
risk_subdomain,benign_prompt``. Each row gives two items, ``<ID>-adv`` (harmful) and
``<ID>-benign`` (benign, for over-refusal). Not for adversarial training (its licence)."""

from __future__ import annotations

from ..config import BenchmarkSpec
from ..items import EvalItem
from .base import BenchmarkLoader
from .tables import text


class Fortress(BenchmarkLoader):
    name = "fortress"
    hf_id = "ScaleAI/fortress_public"
    columns = ("ID", "adversarial_prompt", "risk_domain")
    published = "FORTRESS ID,adversarial_prompt,rubric,risk_domain,risk_subdomain,benign_prompt"

    def rows_to_items(self, rows: list[dict], spec: BenchmarkSpec, where: str) -> list[EvalItem]:
        items = []
        for n, row in enumerate(rows, 1):
            rid, cat = str(row["ID"]), str(row.get("risk_domain") or "") or None
            items.append(
                EvalItem(
                    f"{rid}-adv",
                    text(row, "adversarial_prompt", where, n),
                    "harmful",
                    cat,
                    meta={"subdomain": row.get("risk_subdomain")},
                )
            )
            benign = str(row.get("benign_prompt") or "").strip()
            if benign:
                items.append(EvalItem(f"{rid}-benign", benign, "benign", cat))
        return items
