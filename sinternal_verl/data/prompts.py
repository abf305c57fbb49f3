"""Reading the prompt set: JSONL or parquet rows with a prompt text and a kind.

Ids must be stable across runs (resume matches work by id), so a row without an ``id``
gets one from the hash of its text and kind rather than from its row number.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from .config import PromptsConfig
from .store import iter_jsonl

KINDS = ("harmful", "benign")
_KIND_ALIASES = {
    "harmful": "harmful",
    "unsafe": "harmful",
    "benign": "benign",
    "safe": "benign",
    "harmless": "benign",
}


@dataclass(frozen=True)
class PromptRow:
    id: str
    prompt: str
    kind: str  # "harmful" or "benign"


def content_id(*parts: str, length: int = 16) -> str:
    h = hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()
    return h[:length]


def load_prompts(cfg: PromptsConfig) -> list[PromptRow]:
    """Rows of ``cfg.path``; a missing field, an unknown kind or a repeated id is an error
    naming the row (a silently skipped prompt would shrink the data set unnoticed)."""
    path = Path(cfg.path).expanduser()
    if not cfg.path or not path.is_file():
        raise FileNotFoundError(f"prompts.path {cfg.path!r} is not a file")
    if path.suffix == ".parquet":
        import pandas as pd

        rows = pd.read_parquet(path).to_dict(orient="records")
    elif path.suffix in (".jsonl", ".json"):
        rows = list(iter_jsonl(path))
    else:
        raise ValueError(f"prompts.path must be .jsonl or .parquet, got {path.name}")
    out: list[PromptRow] = []
    seen: set[str] = set()
    for n, row in enumerate(rows, 1):
        prompt = row.get(cfg.prompt_key)
        if not isinstance(prompt, str) or not prompt.strip():
            raise ValueError(f"{path}: row {n} has no text in {cfg.prompt_key!r}")
        raw_kind = str(row.get(cfg.kind_key, "")).strip().lower()
        kind = _KIND_ALIASES.get(raw_kind)
        if kind is None:
            raise ValueError(f"{path}: row {n} has kind {raw_kind!r}; expected one of {', '.join(KINDS)}")
        rid = row.get(cfg.id_key)
        rid = str(rid) if rid not in (None, "") else content_id(prompt, kind)
        if rid in seen:
            raise ValueError(f"{path}: row {n} repeats id {rid!r} (duplicate prompts would be sampled twice)")
        seen.add(rid)
        out.append(PromptRow(rid, prompt, kind))
        if 0 < cfg.limit <= len(out):
            break
    return out
