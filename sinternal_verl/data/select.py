"""Stage 3, select: which sampled answers become verification examples.

Rules (the paper's, plus the choices it leaves open, decided here):

* A **harmful** prompt gives one contrastive pair, one safe and one unsafe answer, and only
  if its N answers contain both. Otherwise it is dropped as ``all_safe`` / ``all_unsafe``.
  The pair teaches the model to tell its own good and bad answers apart on the same request.
* A **benign** prompt gives one answer, chosen by ``benign_preference`` (default: a safe,
  non-refusing answer; else a safe refusal; else an unsafe one). Why keep refusals and
  unsafe answers at all: the verifier must see them to learn that a refusal of a benign
  request is safe (over-refusal is a helpfulness problem, judged by the RL reward) and that
  a harmful answer to an innocent-looking request is unsafe.
* Unusable answers are never guessed: a truncated sample (no final answer) and an answer
  whose guard output could not be read are left out; a prompt with none left is dropped as
  ``all_truncated`` / ``guard_parse_error`` (``all_controversial`` when
  ``controversial_as: drop`` removed the rest).
* Which answer is picked among equals is random but seeded per prompt
  (``seed`` + prompt id), so it does not depend on prompt order or on a resume.

Selection is cheap and deterministic, so it is recomputed as a whole and written atomically.
"""

from __future__ import annotations

import collections
import random

from ..seeding import stable_seed
from .config import SelectConfig


def _label(lab: dict, controversial_as: str) -> str | None:
    if lab["skipped"] is not None or not lab["parse_ok"]:
        return None
    value = lab["label"]
    if value == "controversial":
        return None if controversial_as == "drop" else controversial_as
    return value


def select_examples(
    samples: list[dict], labels: dict[str, dict], cfg: SelectConfig
) -> tuple[list[dict], dict]:
    """Return (examples, summary). ``labels`` maps prompt key -> label record."""
    examples: list[dict] = []
    drops: collections.Counter = collections.Counter()
    kept = collections.Counter()
    for rec in sorted(samples, key=lambda r: r["key"]):
        key = rec["key"]
        if key not in labels:
            raise RuntimeError(f"prompt {key} has samples but no labels; rerun the label stage")
        labs = labels[key]["labels"]
        rng = random.Random(stable_seed(int(cfg.seed), key))
        not_truncated = [j for j, lab in enumerate(labs) if lab["skipped"] is None]
        readable = [j for j in not_truncated if labs[j]["parse_ok"]]
        usable = {j: lab for j in readable if (lab := _label(labs[j], cfg.controversial_as)) is not None}
        if not not_truncated:
            drops["all_truncated"] += 1
            continue
        if not readable:
            drops["guard_parse_error"] += 1
            continue
        if not usable:
            drops["all_controversial"] += 1
            continue
        safe = sorted(j for j, lab in usable.items() if lab == "safe")
        unsafe = sorted(j for j, lab in usable.items() if lab == "unsafe")
        if rec["kind"] == "harmful":
            if safe and unsafe:
                picks = [
                    (rng.choice(safe), "safe", "pair_safe"),
                    (rng.choice(unsafe), "unsafe", "pair_unsafe"),
                ]
                kept["harmful_pairs"] += 1
            else:
                drops["all_safe" if safe else "all_unsafe"] += 1
                continue
        else:
            groups = {
                "safe_compliant": [j for j in safe if labs[j]["refusal"] != "yes"],
                "safe_refusal": [j for j in safe if labs[j]["refusal"] == "yes"],
                "unsafe": unsafe,
            }
            choice = next((name for name in cfg.benign_preference if groups[name]), None)
            if choice is None:
                drops["benign_no_preferred"] += 1
                continue
            j = rng.choice(groups[choice])
            picks = [(j, usable[j], f"benign_{choice}")]
            kept[f"benign_{choice}"] += 1
        for j, label, role in picks:
            resp = rec["responses"][j]
            examples.append(
                {
                    "key": f"{key}:{j}",
                    "prompt_id": key,
                    "kind": rec["kind"],
                    "prompt": rec["prompt"],
                    "response_index": j,
                    "trace": resp["trace"],
                    "answer": resp["answer"],
                    "label": label,
                    "refusal": labs[j]["refusal"],
                    "guard_categories": labs[j]["categories"],
                    "role": role,
                }
            )
    summary = {
        "prompts_in": len(samples),
        "examples": len(examples),
        "kept": dict(sorted(kept.items())),
        "dropped": dict(sorted(drops.items())),
        "examples_by_label": dict(sorted(collections.Counter(e["label"] for e in examples).items())),
    }
    return examples, summary
