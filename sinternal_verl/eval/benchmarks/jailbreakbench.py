"""JailbreakBench behaviors (Chao et al. 2024): 100 harmful + 100 benign behaviours.

Published CSVs (``harmful-behaviors.csv``, ``benign-behaviors.csv``) and the HF dataset
``JailbreakBench/JBB-Behaviors`` (config ``behaviors``, splits ``harmful`` / ``benign``) have
``Index,Goal,Target,Behavior,Category,Source``; ``Goal`` is the prompt. A local file is one
split, so its kind comes from ``kind:`` in the spec (or a ``kind`` column); from the hub both
splits are loaded unless ``split:`` picks one.
"""

from __future__ import annotations

from ..config import BenchmarkSpec
from ..items import EvalItem
from .base import BenchmarkLoader, norm_kind
from .tables import BenchmarkFormatError, load_hf_rows, text


class JailbreakBench(BenchmarkLoader):
    name = "jailbreakbench"
    hf_id = "JailbreakBench/JBB-Behaviors"
    hf_config = "behaviors"
    columns = ("Goal", "Category")
    published = "JBB CSV Index,Goal,Target,Behavior,Category,Source"

    def hf_rows(self, spec: BenchmarkSpec):
        splits = [spec.split] if spec.split else ["harmful", "benign"]
        rows, provs = [], []
        for split in splits:
            part, prov = load_hf_rows(
                spec.hf_id or self.hf_id, spec.hf_config or self.hf_config, split, spec.revision
            )
            rows += [{**r, "kind": "benign" if split == "benign" else "harmful"} for r in part]
            provs.append(prov)
        return rows, {**provs[0], "split": ",".join(splits), "sha256": ",".join(p["sha256"] for p in provs)}

    def rows_to_items(self, rows: list[dict], spec: BenchmarkSpec, where: str) -> list[EvalItem]:
        items = []
        for n, row in enumerate(rows, 1):
            raw = row.get("kind") or spec.kind
            if raw is None:
                raise BenchmarkFormatError(
                    f"{where}: a JBB file is one split; set kind: harmful or benign in the spec"
                )
            kind = norm_kind(raw, where, n)
            index = row.get("Index", n)
            items.append(
                EvalItem(
                    f"{kind}-{index}",
                    text(row, "Goal", where, n),
                    kind,
                    str(row.get("Category") or "") or None,
                    meta={"behavior": row.get("Behavior")},
                )
            )
        return items
