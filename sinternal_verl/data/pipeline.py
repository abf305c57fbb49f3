"""The verification-data pipeline: sample -> label -> select -> critique -> build.

Run directory layout (``out_dir``)::

    config.json            the resolved config of the latest run
    sample/part-*.jsonl    one record per prompt (N responses split into trace / answer)
    label/part-*.jsonl     one record per prompt (a guard label per response)
    select/examples.jsonl  the chosen examples (atomic, recomputed)
    critique/part-*.jsonl  one record per example (kept or dropped, with the reason)
    cache/expert/          expert replies by request hash
    sft/train.parquet, sft/val.parquet
    summary.json           counts per stage and per drop reason, timings

Each stage ends with ``<stage>/_DONE.json`` (its summary). A rerun skips finished stages and
resumes unfinished ones from what is on disk. A stage is redone from scratch only when asked
(``--redo``), which also invalidates everything downstream of it.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass, field

from ..specs import load_spec, load_template
from .build import build_rows, split_rows, write_parquet
from .config import PipelineConfig
from .critique import run_critique
from .label import run_label
from .prompts import load_prompts
from .sample import run_sample
from .select import select_examples
from .store import StageStore, atomic_write_json, iter_jsonl

STAGES = ("sample", "label", "select", "critique", "build")


@dataclass
class PipelineResult:
    summary: dict
    train_path: str
    val_path: str
    stages_run: list[str] = field(default_factory=list)


def run_pipeline(cfg: PipelineConfig, *, until: str = "build", redo: str | None = None) -> PipelineResult:
    """Run (or resume) every stage up to ``until``; ``redo`` clears that stage and later ones."""
    if until not in STAGES:
        raise ValueError(f"until must be one of {STAGES}")
    root = cfg.run_dir
    root.mkdir(parents=True, exist_ok=True)
    spec, template = load_spec(cfg.spec), load_template(cfg.template)
    if redo is not None:
        _clear_from(root, redo)
    atomic_write_json(root / "config.json", {k: v for k, v in cfg.to_dict().items()})
    summary_path = root / "summary.json"
    summary: dict = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    summary.setdefault("stages", {})
    summary.setdefault("timings_s", {})
    ran: list[str] = []

    def finish(name: str, store: StageStore, stage_summary: dict, t0: float) -> None:
        elapsed = round(time.perf_counter() - t0, 3)
        stage_summary = {**stage_summary, "seconds_last_run": elapsed}
        store.mark_done(stage_summary)
        summary["stages"][name] = stage_summary
        summary["timings_s"][name] = elapsed
        atomic_write_json(summary_path, summary)
        ran.append(name)

    rows = load_prompts(cfg.prompts)
    stores = {name: StageStore(root, name) for name in STAGES}

    # 1. sample
    if not stores["sample"].is_done():
        t0 = time.perf_counter()
        finish("sample", stores["sample"], run_sample(cfg, rows, stores["sample"]), t0)
    wanted = {r.id for r in rows}
    samples = [r for r in stores["sample"].records() if r["key"] in wanted]
    if until == "sample":
        return _result(root, summary, ran)

    # 2. label
    if not stores["label"].is_done():
        t0 = time.perf_counter()
        finish("label", stores["label"], run_label(cfg, samples, stores["label"]), t0)
    labels = stores["label"].read().records
    if until == "label":
        return _result(root, summary, ran)

    # 3. select (cheap, deterministic: recomputed when not done, written atomically)
    examples_path = stores["select"].dir / "examples.jsonl"
    if not stores["select"].is_done():
        t0 = time.perf_counter()
        examples, sel_summary = select_examples(samples, labels, cfg.select)
        from .store import atomic_write_text

        atomic_write_text(
            examples_path, "".join(json.dumps(e, ensure_ascii=False, sort_keys=True) + "\n" for e in examples)
        )
        finish("select", stores["select"], sel_summary, t0)
    examples = list(iter_jsonl(examples_path))
    if until == "select":
        return _result(root, summary, ran)

    # 4. critique
    if not stores["critique"].is_done():
        t0 = time.perf_counter()
        finish(
            "critique",
            stores["critique"],
            run_critique(cfg, examples, spec, template, stores["critique"]),
            t0,
        )
    critiques = stores["critique"].read().records
    if until == "critique":
        return _result(root, summary, ran)

    # 5. build
    if not stores["build"].is_done():
        t0 = time.perf_counter()
        out_rows = build_rows(cfg, examples, critiques, spec, template)
        if not out_rows:
            raise RuntimeError(
                f"no example survived to the build stage; see the drop counts in {summary_path}"
            )
        train, val = split_rows(out_rows, cfg.build.val_fraction, cfg.build.seed)
        sft = root / "sft"
        write_parquet(train, sft / "train.parquet")
        write_parquet(val, sft / "val.parquet")
        b_summary = {
            "rows": len(out_rows),
            "train_rows": len(train),
            "val_rows": len(val),
            "train_prompts": len({r["prompt_id"] for r in train}),
            "val_prompts": len({r["prompt_id"] for r in val}),
            "by_verdict": _count(out_rows, "verdict"),
            "by_mode": _count(out_rows, "mode"),
            "by_role": _count(out_rows, "role"),
        }
        finish("build", stores["build"], b_summary, t0)
    return _result(root, summary, ran)


def _count(rows: list[dict], key: str) -> dict:
    out: dict = {}
    for r in rows:
        out[r[key]] = out.get(r[key], 0) + 1
    return dict(sorted(out.items()))


def _result(root, summary: dict, ran: list[str]) -> PipelineResult:
    return PipelineResult(
        summary, str(root / "sft" / "train.parquet"), str(root / "sft" / "val.parquet"), ran
    )


def _clear_from(root, stage: str) -> None:
    if stage not in STAGES:
        raise ValueError(f"redo must be one of {STAGES}")
    for name in STAGES[STAGES.index(stage) :]:
        shutil.rmtree(root / name, ignore_errors=True)
    if STAGES.index(stage) <= STAGES.index("build"):
        shutil.rmtree(root / "sft", ignore_errors=True)
