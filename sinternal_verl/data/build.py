"""Stage 5, build: verl SFT parquet files with a ``messages`` column.

Each row is one verification conversation:

* user: the verification prompt (specification + request + the model's own answer), the same
  text the expert saw;
* assistant: the critique inside the model's reasoning tags, then the verdict line:
  ``<think>\\ncritique\\n</think>\\n\\nVerdict: unsafe``. Verdict-only examples (the
  ``expert_fraction`` ablation) have an empty think block.

verl's ``MultiTurnSFTDataset`` puts the loss on assistant turns only, so the model learns to
write the critique and the verdict, never the prompt. The train / val split is by *prompt*
(both answers of a contrastive pair land on the same side, so validation never sees a
prompt it trained on) and seeded.
"""

from __future__ import annotations

import math
import os
import random
import uuid
from pathlib import Path

from .config import PipelineConfig
from .critique import _shown_answer, render_verification_prompt


def assistant_turn(cfg: PipelineConfig, critique: str, verdict: str) -> str:
    b = cfg.build
    return (
        f"{b.think_open}\n{critique.strip()}\n{b.think_close}\n\n{b.verdict_format.format(verdict=verdict)}"
    )


def build_rows(
    cfg: PipelineConfig, examples: list[dict], critiques: dict[str, dict], spec: str, template: str
) -> list[dict]:
    rows = []
    for e in examples:
        c = critiques.get(e["key"])
        if c is None:
            raise RuntimeError(f"example {e['key']} has no critique record; rerun the critique stage")
        if c["status"] != "kept":
            continue
        user = render_verification_prompt(template, spec, e["prompt"], _shown_answer(cfg, e))
        rows.append(
            {
                "messages": [
                    {"role": "user", "content": user},
                    {"role": "assistant", "content": assistant_turn(cfg, c["critique"], c["verdict"])},
                ],
                "example_id": e["key"],
                "prompt_id": e["prompt_id"],
                "kind": e["kind"],
                "role": e["role"],
                "guard_label": e["label"],
                "verdict": c["verdict"],
                "mode": c["mode"],
            }
        )
    return rows


def split_rows(rows: list[dict], val_fraction: float, seed: int) -> tuple[list[dict], list[dict]]:
    groups = sorted({r["prompt_id"] for r in rows})
    random.Random(seed).shuffle(groups)
    n_val = math.ceil(len(groups) * val_fraction) if val_fraction > 0 else 0
    if n_val >= len(groups) and len(groups) > 1:
        n_val = len(groups) - 1  # never leave training empty
    val_ids = set(groups[:n_val])
    train = [r for r in rows if r["prompt_id"] not in val_ids]
    val = [r for r in rows if r["prompt_id"] in val_ids]
    return train, val


def write_parquet(rows: list[dict], path: Path) -> None:
    import pandas as pd

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    df = pd.DataFrame(
        rows,
        columns=["messages", "example_id", "prompt_id", "kind", "role", "guard_label", "verdict", "mode"],
    )
    df.to_parquet(tmp, index=False)
    os.replace(tmp, path)
