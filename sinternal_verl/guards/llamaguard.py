"""Llama Guard 3 / 4: request building and output parsing.

Served as a chat model; the model's chat template wraps the conversation in its policy
prompt, so we send plain ``[user]`` (prompt moderation) or ``[user, assistant]`` (response
moderation) turns. Content goes as *parts* (``[{"type": "text", "text": ...}]``): Llama
Guard 4's template iterates over parts, and a plain string renders an empty conversation
wherever the server does not auto-detect the format (SGLang, vLLM with
``--chat-template-content-format string``); servers that want strings join text parts. Output: ``safe``, or ``unsafe`` then a line of codes ``S1,S9``. Llama
Guard has no refusal head (refusal is always ``unknown``) and no controversial label.
"""

from __future__ import annotations

import re
from typing import Any

from .categories import map_llamaguard
from .control_tokens import neutralize
from .parsing import unparsed
from .registry import GuardKind, register_kind
from .types import GuardVerdict, ModerationItem, SafetyLabel

KIND = "llamaguard"
ENDPOINT = "/v1/chat/completions"
_LABEL_LINE = re.compile(r"(?im)^[\s*_`#>]*(unsafe|safe)\b[\s*_`.:,]*")
_CODE = re.compile(r"(?i)\bS(\d{1,2})\b")


def _parts(text: str) -> list[dict[str, str]]:
    return [{"type": "text", "text": neutralize(text)}]


def build_messages(item: ModerationItem) -> list[dict[str, Any]]:
    if item.response is None:
        return [{"role": "user", "content": _parts(item.prompt)}]
    return [
        {"role": "user", "content": _parts(item.prompt)},
        {"role": "assistant", "content": _parts(item.response)},
    ]


def build_payload(
    item: ModerationItem, model: str, max_tokens: int, soft_score: bool = False, top_logprobs: int = 5
) -> dict[str, Any]:
    return {"model": model, "messages": build_messages(item), "temperature": 0.0, "max_tokens": max_tokens}


def parse(text: str, item: ModerationItem, source: str = "") -> GuardVerdict:
    """The first line that starts with ``safe``/``unsafe`` decides; codes are read from
    what follows it (same line or later lines). Unknown codes map to ``other``."""
    m = _LABEL_LINE.search(text)
    if m is None:
        return unparsed(text, "no 'safe'/'unsafe' line", source)
    if m.group(1).lower() == "safe":
        return GuardVerdict(label=SafetyLabel.SAFE, raw=text, source=source)
    codes = [f"S{int(c)}" for c in _CODE.findall(text[m.end() :])]
    extra: dict[str, Any] = {"raw_categories": codes} if codes else {}
    return GuardVerdict(
        label=SafetyLabel.UNSAFE, categories=map_llamaguard(codes), raw=text, source=source, extra=extra
    )


SPEC = register_kind(
    GuardKind(
        name=KIND,
        default_model="meta-llama/Llama-Guard-4-12B",
        supports_refusal=False,
        endpoint=ENDPOINT,
        build_payload=build_payload,
        parse=parse,
    )
)
