"""Refusal detection against human labels: our ``structure`` judge vs the literature's
keyword list (GCG / AdvBench keyword ASR) vs XSTest's first-words prefix classifier, on
``sinternal_verl/assets/refusal_labelled.jsonl`` (answers labelled full compliance / full
refusal / partial refusal as in XSTest; traps included: "I can't help with that.", "illegal"
or "OpenAI" inside helpful answers, refusals that then help).

    python benchmarks/bench_refusal.py [--split all|dev|holdout]

``dev`` is the part the judge was written against; ``holdout`` was written afterwards and
never tuned on. Printed per mode: 3-way accuracy (the keyword and prefix modes never say
partial), refused-or-not accuracy, and precision / recall / F1 of "refused" (full or partial,
XSTest's over-refusal count). No model, no network: it runs in a second.
"""

from __future__ import annotations

import argparse
import json
from importlib import resources

from rich.console import Console
from rich.table import Table

from sinternal_verl.judges import REFUSAL_MODES, RefusalJudge, RefusalJudgeConfig


def load() -> list[dict]:
    text = resources.files("sinternal_verl.assets").joinpath("refusal_labelled.jsonl").read_text()
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def scores(pred: list[str], gold: list[str]) -> dict[str, float]:
    n = len(gold)
    three = sum(p == g for p, g in zip(pred, gold)) / n
    pr = [p != "full_compliance" for p in pred]
    gr = [g != "full_compliance" for g in gold]
    tp = sum(a and b for a, b in zip(pr, gr))
    fp = sum(a and not b for a, b in zip(pr, gr))
    fn = sum(b and not a for a, b in zip(pr, gr))
    prec = tp / (tp + fp) if tp + fp else 0.0
    rec = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * prec * rec / (prec + rec) if prec + rec else 0.0
    binary = sum(a == b for a, b in zip(pr, gr)) / n
    return {"acc3": three, "acc2": binary, "p": prec, "r": rec, "f1": f1, "fp": fp, "fn": fn}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--split",
        choices=("all", "dev", "holdout"),
        default=None,
        help="one split (default: each split and all)",
    )
    ap.add_argument("--show-errors", action="store_true", help="list the structure judge's disagreements")
    args = ap.parse_args(argv)
    console = Console(width=None if Console().is_terminal else 140)
    rows = load()
    splits = [args.split] if args.split else ["dev", "holdout", "all"]
    for split in splits:
        part = [r for r in rows if split == "all" or r.get("split") == split]
        gold = [r["label"] for r in part]
        counts = {k: gold.count(k) for k in ("full_compliance", "full_refusal", "partial_refusal")}
        table = Table(title=f"refusal detection, split {split}: {len(part)} answers {counts}")
        for col in ("mode", "3-way acc.", "refused acc.", "refusal P", "refusal R", "refusal F1", "FP", "FN"):
            table.add_column(col, justify="left" if col == "mode" else "right")
        for mode in REFUSAL_MODES:
            judge = RefusalJudge(RefusalJudgeConfig(mode=mode))
            pred = [judge(r["answer"]).outcome.value for r in part]
            s = scores(pred, gold)
            table.add_row(
                mode,
                f"{s['acc3']:.3f}",
                f"{s['acc2']:.3f}",
                f"{s['p']:.3f}",
                f"{s['r']:.3f}",
                f"{s['f1']:.3f}",
                str(s["fp"]),
                str(s["fn"]),
            )
            if args.show_errors and mode == "structure":
                for r, p in zip(part, pred):
                    if p != r["label"]:
                        console.print(f"  [{r['label']} -> {p}] {r['answer'][:120]!r}")
        console.print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
