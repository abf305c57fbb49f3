"""Build the RL training set: safety prompts mixed with DAPO-Math problems, in verl's RL format.

Why a mix: the paper's GRPO stage rewards safety (guard verdicts) and keeps reasoning alive
with about 3k DAPO-Math-17k problems scored by strict boxed matching. verl's ``RLHFDataset``
reads a parquet file with one row per prompt::

    data_source   "safety_<source>" or "math_dapo"   (our router resolves both)
    prompt        [{"role": "user", "content": ...}]  (chat messages; the rollout applies the template)
    ability       "safety" | "math"
    reward_model  {"style": "guard" | "rule", "ground_truth": <prompt type> | <answer>}
    extra_info    {"task", "prompt_type", "prompt", "index", "source"}

``extra_info.task`` routes the reward explicitly (never a guess from the source name),
``extra_info.prompt`` is the raw user request the guard judges, ``extra_info.prompt_type``
(``harmful`` / ``benign``; null for math) picks the safety reward rule.

Math prompt: we ask for ``\\boxed{}``, not DAPO's ``Answer:`` line, because our math reward
(and the paper's "strict boxed matching") reads the last ``\\boxed{}`` of the final answer,
and the R1-distilled models box their answers by habit. A DAPO-format row's original wrapper
is stripped before our instruction is applied, so the model never sees two conflicting
answer formats. Both templates are settings (:class:`RLMixConfig`).

Inputs are local files (JSONL / JSON / parquet / CSV). Hugging Face loaders exist for
convenience (:func:`load_hf_rows`) but are optional and never needed offline.

CLI (the ``prepare-data`` subcommand; ``sinternal-verl run`` calls :func:`build_rl_mix` as its
``rl_data`` stage)::

    sinternal-verl prepare-data --safety prompts.jsonl --math dapo_math.parquet --out DIR
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import random
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from sinternal_verl.trajectory import last_user_turn

PROMPT_TYPES = ("harmful", "benign")
_PROMPT_TYPE_ALIASES = {
    "harmful": "harmful",
    "unsafe": "harmful",
    "benign": "benign",
    "safe": "benign",
    "harmless": "benign",
    # WildJailbreak's data_type column
    "vanilla_harmful": "harmful",
    "adversarial_harmful": "harmful",
    "vanilla_benign": "benign",
    "adversarial_benign": "benign",
}

#: DAPO-Math-17k's own wrapper around each problem (verl's ``math_dapo`` format)
DAPO_PREFIX = (
    "Solve the following math problem step by step. The last line of your response should be of the form "
    "Answer: $Answer (without quotes) where $Answer is the answer to the problem.\n\n"
)
DAPO_SUFFIX = '\n\nRemember to put your answer on its own line after "Answer:".'

DEFAULT_MATH_TEMPLATE = (
    "{problem}\n\nPlease reason step by step, and put your final answer within \\boxed{{}}."
)
DEFAULT_SAFETY_TEMPLATE = "{prompt}"


class RLMixError(ValueError):
    """Bad input to the RL mix: names the file, the row and what is wrong."""


@dataclass
class RLMixConfig:
    """Every knob of the mix; defaults follow the paper (about 3k math problems)."""

    #: safety prompt files (JSONL / JSON / parquet / CSV); rows need a prompt and a prompt type
    safety_files: list[str] = field(default_factory=list)
    #: math files: verl/DAPO format (``prompt`` messages + ``reward_model.ground_truth``) or
    #: flat rows (``prompt``/``problem``/``question`` + ``solution``/``answer``)
    math_files: list[str] = field(default_factory=list)
    #: math problems to draw (paper: ~3k); None = all of them
    math_count: int | None = 3000
    #: safety prompts to draw; None = all
    safety_count: int | None = None
    #: fraction of each task held out for validation
    val_fraction: float = 0.02
    #: seed of the draw, the split and the final shuffle
    seed: int = 42
    #: ``{problem}`` is replaced by the problem text
    math_template: str = DEFAULT_MATH_TEMPLATE
    #: ``{prompt}`` is replaced by the user request (the guard always sees the raw request)
    safety_template: str = DEFAULT_SAFETY_TEMPLATE
    #: optional system turn for every row (the R1-distilled models are used without one)
    system_prompt: str | None = None
    #: math rows' data_source (must route to math in :func:`sinternal_verl.rewards.resolve_task`)
    math_data_source: str = "math_dapo"
    #: safety rows' data_source prefix; the file's ``source`` column (or file stem) is appended
    safety_data_source_prefix: str = "safety"
    #: what to do with a safety row that has no prompt type: "error" or a type to assume
    missing_prompt_type: str = "error"
    #: drop exact duplicate prompts (same text) within each task
    dedupe: bool = True

    def __post_init__(self) -> None:
        if not 0.0 <= self.val_fraction < 1.0:
            raise RLMixError(f"val_fraction must be in [0, 1), got {self.val_fraction}")
        for name in ("math_count", "safety_count"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise RLMixError(f"{name} must be >= 0 or None (all), got {value}")
        if "{problem}" not in self.math_template:
            raise RLMixError("math_template must contain '{problem}'")
        if "{prompt}" not in self.safety_template:
            raise RLMixError("safety_template must contain '{prompt}'")
        if self.missing_prompt_type not in ("error", *PROMPT_TYPES):
            raise RLMixError(
                f"missing_prompt_type must be 'error', 'harmful' or 'benign', got {self.missing_prompt_type!r}"
            )
        if not self.safety_data_source_prefix.lower().startswith("safety"):
            raise RLMixError(
                "safety_data_source_prefix must start with 'safety' (the reward router's safety prefix)"
            )


@dataclass
class RLMixResult:
    train_path: Path
    val_path: Path | None
    counts: dict[str, int]


# ---- reading ---------------------------------------------------------------------------------
def read_rows(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Rows of a local JSONL / JSON / parquet / CSV file, as plain dicts."""
    p = Path(path)
    if not p.exists():
        raise RLMixError(f"{p}: no such file")
    suffix = p.suffix.lower()
    if suffix == ".jsonl":
        rows = []
        with p.open(encoding="utf-8") as f:
            for lineno, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise RLMixError(f"{p}:{lineno}: not valid JSON ({exc.msg})") from None
        return rows
    if suffix == ".json":
        data = json.loads(p.read_text(encoding="utf-8"))
        if not isinstance(data, list):
            raise RLMixError(f"{p}: a .json input must hold a list of rows")
        return data
    if suffix == ".parquet":
        return pd.read_parquet(p).to_dict(orient="records")
    if suffix == ".csv":
        return pd.read_csv(p, keep_default_na=False).to_dict(orient="records")
    raise RLMixError(f"{p}: unsupported file type {suffix!r} (use .jsonl, .json, .parquet or .csv)")


def load_hf_rows(
    repo: str, split: str = "train", config: str | None = None, **kwargs: Any
) -> list[dict[str, Any]]:
    """Optional: rows of a Hugging Face dataset (needs the ``datasets`` package and the hub).

    Offline runs and tests use local files; this exists so a user with hub access can write
    ``--safety hf://Paul/XSTest:train``. Gated sets (WildJailbreak) need ``huggingface-cli login``.
    """
    try:
        from datasets import load_dataset
    except ImportError as exc:  # pragma: no cover - datasets ships with verl
        raise RLMixError("hf:// inputs need the 'datasets' package") from exc
    return [dict(r) for r in load_dataset(repo, config, split=split, **kwargs)]


def _rows_from_spec(spec: str) -> tuple[list[dict[str, Any]], str]:
    """``path`` or ``hf://owner/name[:split]``; returns rows and a short source name."""
    if spec.startswith("hf://"):
        name, _, split = spec[len("hf://") :].partition(":")
        return load_hf_rows(name, split or "train"), name.split("/")[-1].lower()
    return read_rows(spec), Path(spec).stem.lower()


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, float) and value != value:  # NaN from pandas
        return None
    text = str(value)
    return text if text.strip() else None


def normalize_prompt_type(value: Any) -> str | None:
    text = _text(value)
    if text is None:
        return None
    return _PROMPT_TYPE_ALIASES.get(text.strip().lower())


def safety_record(row: Mapping[str, Any], where: str, missing_prompt_type: str = "error") -> dict[str, str]:
    """``{prompt, prompt_type, source?}`` from one row of any supported safety layout.

    Layouts: ``prompt`` + ``prompt_type`` (ours; ``kind`` or ``label`` also accepted, values
    harmful/benign or unsafe/safe as XSTest writes them); WildJailbreak (``vanilla`` /
    ``adversarial`` text, ``data_type`` such as ``adversarial_harmful``).
    """
    prompt = _text(row.get("adversarial")) or _text(row.get("prompt")) or _text(row.get("vanilla"))
    if prompt is None:
        prompt = _text(last_user_turn(row.get("messages")))
    if prompt is None:
        raise RLMixError(
            f"{where}: no prompt text (expected a 'prompt', 'adversarial'/'vanilla' or 'messages' field)"
        )
    raw_type = None
    for key in ("prompt_type", "kind", "data_type", "label"):
        if _text(row.get(key)) is not None:
            raw_type = row.get(key)
            break
    prompt_type = normalize_prompt_type(raw_type)
    if prompt_type is None:
        if raw_type is not None:
            raise RLMixError(
                f"{where}: unknown prompt type {raw_type!r}; expected one of {sorted(_PROMPT_TYPE_ALIASES)}"
            )
        if missing_prompt_type == "error":
            raise RLMixError(
                f"{where}: no prompt type (a 'prompt_type', 'kind', 'data_type' or 'label' field); "
                "pass missing_prompt_type=harmful|benign to assume one"
            )
        prompt_type = missing_prompt_type
    out = {"prompt": prompt, "prompt_type": prompt_type}
    source = _text(row.get("source"))
    if source:
        out["source"] = source
    return out


def strip_dapo_wrapper(content: str) -> str:
    """The bare problem of a DAPO-Math-17k prompt (its ``Answer:`` instructions removed)."""
    text = content
    if text.startswith(DAPO_PREFIX):
        text = text[len(DAPO_PREFIX) :]
    if text.endswith(DAPO_SUFFIX):
        text = text[: -len(DAPO_SUFFIX)]
    return text.strip()


def math_record(row: Mapping[str, Any], where: str) -> dict[str, str]:
    """``{problem, answer}`` from a verl/DAPO row or a flat ``problem``/``solution`` row."""
    problem: str | None = None
    prompt = row.get("prompt")
    if isinstance(prompt, str):
        problem = _text(prompt)
    elif prompt is not None:
        problem = _text(last_user_turn(prompt))
    problem = problem or _text(row.get("problem")) or _text(row.get("question"))
    if problem is None:
        raise RLMixError(
            f"{where}: no problem text (expected 'prompt' (text or messages), 'problem' or 'question')"
        )
    answer = None
    reward_model = row.get("reward_model")
    if isinstance(reward_model, Mapping):
        answer = _text(reward_model.get("ground_truth"))
    answer = (
        answer or _text(row.get("solution")) or _text(row.get("answer")) or _text(row.get("ground_truth"))
    )
    if answer is None:
        raise RLMixError(f"{where}: no answer (expected reward_model.ground_truth, 'solution' or 'answer')")
    return {"problem": strip_dapo_wrapper(problem), "answer": answer.strip()}


def load_safety(specs: Sequence[str], missing_prompt_type: str = "error") -> list[dict[str, str]]:
    out: list[dict[str, str]] = []
    for spec in specs:
        rows, stem = _rows_from_spec(spec)
        for i, row in enumerate(rows):
            rec = safety_record(row, f"{spec} row {i}", missing_prompt_type)
            rec.setdefault("source", stem)
            out.append(rec)
    return out


def load_math(specs: Sequence[str]) -> list[dict[str, str]]:
    out: list[dict[str, str]] = []
    for spec in specs:
        rows, stem = _rows_from_spec(spec)
        for i, row in enumerate(rows):
            rec = math_record(row, f"{spec} row {i}")
            rec["source"] = stem
            out.append(rec)
    return out


# ---- mixing ----------------------------------------------------------------------------------
def _dedupe(records: list[dict[str, str]], key: str) -> list[dict[str, str]]:
    seen: set[str] = set()
    out = []
    for rec in records:
        if rec[key] not in seen:
            seen.add(rec[key])
            out.append(rec)
    return out


def _draw(
    records: list[dict[str, str]], count: int | None, rng: random.Random, what: str
) -> list[dict[str, str]]:
    records = list(records)
    rng.shuffle(records)
    if count is None:
        return records
    if count > len(records):
        raise RLMixError(
            f"asked for {count} {what} rows but the inputs hold only {len(records)} (after de-duplication)"
        )
    return records[:count]


def _split(records: list[dict[str, Any]], fraction: float) -> tuple[list, list]:
    n_val = int(round(len(records) * fraction))
    if fraction > 0 and n_val == 0 and len(records) > 1:
        n_val = 1  # a val split that silently lacks a whole task would hide regressions on it
    return records[n_val:], records[:n_val]


def _messages(user: str, system: str | None) -> list[dict[str, str]]:
    turns = [{"role": "system", "content": system}] if system else []
    return turns + [{"role": "user", "content": user}]


def safety_row(rec: Mapping[str, str], cfg: RLMixConfig) -> dict[str, Any]:
    source = (
        "".join(c if c.isalnum() else "_" for c in rec.get("source", "prompts").lower()).strip("_")
        or "prompts"
    )
    return {
        "data_source": f"{cfg.safety_data_source_prefix}_{source}",
        "prompt": _messages(cfg.safety_template.format(prompt=rec["prompt"]), cfg.system_prompt),
        "ability": "safety",
        "reward_model": {"style": "guard", "ground_truth": rec["prompt_type"]},
        "extra_info": {
            "task": "safety",
            "prompt_type": rec["prompt_type"],
            "prompt": rec["prompt"],
            "source": source,
        },
    }


def math_row(rec: Mapping[str, str], cfg: RLMixConfig) -> dict[str, Any]:
    user = cfg.math_template.format(problem=rec["problem"])
    return {
        "data_source": cfg.math_data_source,
        "prompt": _messages(user, cfg.system_prompt),
        "ability": "math",
        "reward_model": {"style": "rule", "ground_truth": rec["answer"]},
        "extra_info": {
            "task": "math",
            "prompt_type": None,
            "prompt": user,
            "source": rec.get("source", "math"),
        },
    }


def build_rows(cfg: RLMixConfig) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, int]]:
    """Train and val rows (verl RL format) and the counts of what went where."""
    if not cfg.safety_files and not cfg.math_files:
        raise RLMixError("nothing to mix: give at least one safety or math file")
    rng = random.Random(cfg.seed)
    safety = load_safety(cfg.safety_files, cfg.missing_prompt_type)
    math = load_math(cfg.math_files)
    counts = {"safety_read": len(safety), "math_read": len(math)}
    if cfg.dedupe:
        safety = _dedupe(safety, "prompt")
        math = _dedupe(math, "problem")
    safety = _draw(safety, cfg.safety_count, rng, "safety")
    math = _draw(math, cfg.math_count, rng, "math") if cfg.math_files else []
    s_train, s_val = _split([safety_row(r, cfg) for r in safety], cfg.val_fraction)
    m_train, m_val = _split([math_row(r, cfg) for r in math], cfg.val_fraction)
    train, val = s_train + m_train, s_val + m_val
    rng.shuffle(train)
    rng.shuffle(val)
    for i, row in enumerate(train):
        row["extra_info"]["index"] = i
    for i, row in enumerate(val):
        row["extra_info"]["index"] = i
    counts.update(
        safety_used=len(safety),
        math_used=len(math),
        train=len(train),
        val=len(val),
        train_safety=len(s_train),
        train_math=len(m_train),
        train_harmful=sum(r["extra_info"]["prompt_type"] == "harmful" for r in s_train),
        train_benign=sum(r["extra_info"]["prompt_type"] == "benign" for r in s_train),
        val_safety=len(s_val),
        val_math=len(m_val),
    )
    return train, val, counts


def _write_parquet(rows: list[dict[str, Any]], path: Path) -> None:
    """Write via a temporary file and rename, so a crash never leaves a half-written parquet
    that verl would later read as a (shorter) data set."""
    tmp = path.with_name(f".{path.name}.tmp")
    pd.DataFrame(rows, columns=["data_source", "prompt", "ability", "reward_model", "extra_info"]).to_parquet(
        tmp, index=False
    )
    os.replace(tmp, path)


def build_rl_mix(cfg: RLMixConfig, out_dir: str | os.PathLike) -> RLMixResult:
    """Write ``train.parquet`` (+ ``val.parquet`` when the split is non-empty) and
    ``rl_mix.json`` (the config and counts, to know later what a run trained on)."""
    train, val, counts = build_rows(cfg)
    if not train:
        raise RLMixError("the mix is empty after the split: add data or lower val_fraction")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    train_path = out / "train.parquet"
    _write_parquet(train, train_path)
    val_path = None
    if val:
        val_path = out / "val.parquet"
        _write_parquet(val, val_path)
    manifest = {"config": dataclasses.asdict(cfg), "counts": counts}
    (out / "rl_mix.json").write_text(
        json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    return RLMixResult(train_path=train_path, val_path=val_path, counts=counts)


# ---- CLI -------------------------------------------------------------------------------------
def _count(value: str) -> int | None:
    return None if value.lower() == "all" else int(value)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    d = RLMixConfig()
    parser.add_argument(
        "--safety",
        action="append",
        default=[],
        metavar="FILE",
        help="safety prompts (.jsonl/.json/.parquet/.csv or hf://owner/name[:split]); repeatable",
    )
    parser.add_argument(
        "--math",
        action="append",
        default=[],
        metavar="FILE",
        help="math problems (verl/DAPO parquet or flat problem/solution rows); repeatable",
    )
    parser.add_argument(
        "--out", required=True, help="output folder for train.parquet, val.parquet, rl_mix.json"
    )
    parser.add_argument(
        "--math-count",
        type=_count,
        default=d.math_count,
        help="math problems to draw, or 'all' (default %(default)s)",
    )
    parser.add_argument(
        "--safety-count",
        type=_count,
        default=d.safety_count,
        help="safety prompts to draw, or 'all' (default all)",
    )
    parser.add_argument(
        "--val-fraction", type=float, default=d.val_fraction, help="held out per task (default %(default)s)"
    )
    parser.add_argument("--seed", type=int, default=d.seed)
    parser.add_argument("--math-template", default=d.math_template, help="must contain {problem}")
    parser.add_argument("--safety-template", default=d.safety_template, help="must contain {prompt}")
    parser.add_argument("--system-prompt", default=None)
    parser.add_argument(
        "--missing-prompt-type", default=d.missing_prompt_type, choices=["error", *PROMPT_TYPES]
    )
    parser.add_argument("--no-dedupe", action="store_true", help="keep exact duplicate prompts")


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    console = Console(stderr=True)
    try:
        cfg = RLMixConfig(
            safety_files=list(args.safety),
            math_files=list(args.math),
            math_count=args.math_count,
            safety_count=args.safety_count,
            val_fraction=args.val_fraction,
            seed=args.seed,
            math_template=args.math_template,
            safety_template=args.safety_template,
            system_prompt=args.system_prompt,
            missing_prompt_type=args.missing_prompt_type,
            dedupe=not args.no_dedupe,
        )
        with console.status("reading and mixing"):
            result = build_rl_mix(cfg, args.out)
    except RLMixError as exc:
        console.print(f"[red]error:[/red] {exc}")
        return 2
    table = Table(title=f"RL mix -> {args.out}")
    table.add_column("what")
    table.add_column("rows", justify="right")
    for key, value in result.counts.items():
        table.add_row(key, str(value))
    console.print(table)
    return 0


def main(argv: Iterable[str] | None = None) -> int:
    """``python -m sinternal_verl.data.rl_mix`` (kept for scripts): the same as ``sinternal-verl prepare-data``."""
    parser = argparse.ArgumentParser(prog="sinternal-verl prepare-data", description=__doc__.splitlines()[0])
    add_arguments(parser)
    return run(parser.parse_args(None if argv is None else list(argv)))


if __name__ == "__main__":
    sys.exit(main())
