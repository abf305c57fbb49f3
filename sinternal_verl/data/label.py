"""Stage 2, label: the guard judges every sampled answer.

Truncated samples have no answer and are not sent (they are dropped at selection). A guard
answer that cannot be read is stored as ``label: null`` with ``parse_ok: false`` and counted;
it is never read as safe. A guard that is down after its retries stops the stage with the
guard's error; every prompt labelled so far is on disk and a rerun continues from there.
"""

from __future__ import annotations

import asyncio

from .config import PipelineConfig
from .stage import StageRun
from .store import StageStore


def _guard(cfg: PipelineConfig):
    from ..guards import build_guard
    from ..guards.config import GuardConfig

    return build_guard(GuardConfig.from_mapping(cfg.label.guard))


def run_label(cfg: PipelineConfig, samples: list[dict], store: StageStore) -> dict:
    run = StageRun(
        store,
        [s["key"] for s in samples],
        crash_after=cfg.label.crash_after,
        progress=cfg.progress,
        desc="2/5 label",
    )
    by_key = {s["key"]: s for s in samples}
    todo = [by_key[k] for k in run.todo_keys]
    try:
        if todo:
            asyncio.run(_label_all(cfg, todo, run))
    finally:
        run.close()
    records = run.all_records()
    labels = [r for rec in records for r in rec["labels"]]
    summary = {
        "prompts": len(records),
        "responses": len(labels),
        "not_sent_truncated": sum(1 for x in labels if x["skipped"] == "truncated"),
        "guard_parse_errors": sum(1 for x in labels if x["skipped"] is None and not x["parse_ok"]),
        "labels": {},
        **run.bookkeeping(),
    }
    for x in labels:
        if x["skipped"] is None and x["parse_ok"]:
            summary["labels"][x["label"]] = summary["labels"].get(x["label"], 0) + 1
    return summary


async def _label_all(cfg: PipelineConfig, todo: list[dict], run: StageRun) -> None:
    from ..guards.types import ModerationItem

    guard = _guard(cfg)
    try:
        step = max(1, cfg.label.batch_size)
        for i in range(0, len(todo), step):
            chunk = todo[i : i + step]
            items, where = [], []
            for p, rec in enumerate(chunk):
                for j, resp in enumerate(rec["responses"]):
                    if resp["truncated"]:
                        continue
                    trace = resp["trace"] if cfg.label.target == "full" and resp["trace"] else None
                    items.append(
                        ModerationItem(
                            rec["prompt"],
                            resp["answer"],
                            trace=trace,
                            prompt_harmful=rec["kind"] == "harmful",
                        )
                    )
                    where.append((p, j))
            verdicts = await guard.moderate(items) if items else []
            if len(verdicts) != len(items):
                raise RuntimeError(f"guard returned {len(verdicts)} verdicts for {len(items)} items")
            per_prompt: list[list[dict]] = [
                [
                    {
                        "skipped": "truncated",
                        "label": None,
                        "refusal": None,
                        "parse_ok": False,
                        "categories": [],
                        "raw": "",
                    }
                    for _ in rec["responses"]
                ]
                for rec in chunk
            ]
            for (p, j), v in zip(where, verdicts):
                per_prompt[p][j] = {
                    "skipped": None,
                    "label": v.label.value if v.label is not None else None,
                    "refusal": v.refusal.value,
                    "parse_ok": bool(v.parse_ok and v.label is not None),
                    "categories": list(v.categories),
                    "raw": v.raw,
                }
            run.write({"key": rec["key"], "labels": labs} for rec, labs in zip(chunk, per_prompt))
    finally:
        await guard.aclose()
