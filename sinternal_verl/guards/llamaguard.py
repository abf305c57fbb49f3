"""Llama Guard 3 / 4: request building and output parsing.

Served as a chat model; the model's chat template wraps the conversation in its policy
prompt, so we send plain ``[user]`` (prompt moderation) or ``[user, assistant]`` (response
moderation) turns. Output: ``safe``, or ``unsafe`` then a line of codes ``S1,S9``. Llama
Guard has no refusal head (refusal is always ``unknown``) and no controversial label.
"""

from __future__ import annotations

import re
from typing import Any

from .categories import map_llamaguard
from .parsing import unparsed
from .types import GuardVerdict, ModerationItem, SafetyLabel

KIND = "llamaguard"
ENDPOINT = "/v1/chat/completions"
_LABEL_LINE = re.compile(r"(?im)^[\s*_`#>]*(unsafe|safe)\b[\s*_`.:,]*")
_CODE = re.compile(r"(?i)\bS(\d{1,2})\b")


def build_messages(item: ModerationItem) -> list[dict[str, str]]:
    if item.response is None:
        return [{"role": "user", "content": item.prompt}]
    return [{"role": "user", "content": item.prompt}, {"role": "assistant", "content": item.response}]


def build_payload(item: ModerationItem, model: str, max_tokens: int, soft_score: bool = False, top_logprobs: int = 5) -> dict[str, Any]:
    return {"model": model, "messages": build_messages(item), "temperature": 0.0, "max_tokens": max_tokens}


def parse(text: str, response_moderation: bool = False, source: str = "") -> GuardVerdict:
    """The first line that starts with ``safe``/``unsafe`` decides; codes are read from
    what follows it (same line or later lines). Unknown codes map to ``other``."""
    m = _LABEL_LINE.search(text)
    if m is None:
        return unparsed(text, "no 'safe'/'unsafe' line", source)
    if m.group(1).lower() == "safe":
        return GuardVerdict(label=SafetyLabel.SAFE, raw=text, source=source)
    codes = [f"S{int(c)}" for c in _CODE.findall(text[m.end() :])]
    extra: dict[str, Any] = {"raw_categories": codes} if codes else {}
    return GuardVerdict(label=SafetyLabel.UNSAFE, categories=map_llamaguard(codes), raw=text, source=source, extra=extra)
