"""Undo chat-template markup in OpenRLHF's decoded ``query`` / ``prompts``.

OpenRLHF sends ``query = decode(prompt_ids + response_ids)`` with the template's special
tokens in place. The guard must see the user's words and the model's answer, not
``<|im_start|>`` or ``<|eot_id|>``: those tokens change a guard's verdict and break the
lexical judge. Three template families cover the paper's models and the guards' own
training data: Qwen / ChatML, Llama-3, and DeepSeek-R1 (full-width bars). ``<think>`` tags
are *kept*: the reward splits the reasoning trace from the answer itself.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# (user-turn pattern, assistant-turn opener) per family; the user pattern captures the text.
_CHATML_USER = re.compile(r"<\|im_start\|>user\s*\n(.*?)(?:<\|im_end\|>|$)", re.S)
_LLAMA3_USER = re.compile(r"<\|start_header_id\|>user<\|end_header_id\|>\s*(.*?)(?:<\|eot_id\|>|$)", re.S)
_R1_USER = re.compile(r"<｜User｜>(.*?)(?=<｜Assistant｜>|<｜end▁of▁sentence｜>|$)", re.S)

_ASSISTANT_OPENERS = (
    re.compile(r"<\|im_start\|>assistant\s*\n?"),
    re.compile(r"<\|start_header_id\|>assistant<\|end_header_id\|>\s*"),
    re.compile(r"<｜Assistant｜>"),
)

#: special tokens removed wherever they appear (end-of-turn, padding, BOS/EOS, roles)
SPECIAL_TOKENS = (
    "<|im_start|>",
    "<|im_end|>",
    "<|endoftext|>",
    "<|begin_of_text|>",
    "<|end_of_text|>",
    "<|eot_id|>",
    "<|eom_id|>",
    "<|start_header_id|>",
    "<|end_header_id|>",
    "<｜begin▁of▁sentence｜>",
    "<｜end▁of▁sentence｜>",
    "<｜User｜>",
    "<｜Assistant｜>",
    "<|fim_pad|>",
    "<pad>",
    "</s>",
    "<s>",
)
_SPECIAL_RE = re.compile("|".join(re.escape(t) for t in SPECIAL_TOKENS))


def strip_special(text: str) -> str:
    """Remove special tokens (and ChatML role headers they leave behind)."""
    return _SPECIAL_RE.sub("", text).strip()


def user_text(prompt: str) -> str:
    """The last user turn of a templated prompt; the whole prompt if no markup is found."""
    for pattern in (_CHATML_USER, _LLAMA3_USER, _R1_USER):
        turns = pattern.findall(prompt)
        if turns:
            return strip_special(turns[-1])
    return strip_special(prompt)


@dataclass(frozen=True)
class SplitQuery:
    prompt: str  # the user's words
    response: str  # the model's output, markup removed, <think> kept


def split_query(query: str, prompt: str | None) -> SplitQuery:
    """Split one OpenRLHF query into (user prompt, response).

    With ``prompt`` given, the response is what follows it in ``query`` (tolerating a BOS
    token the prompt lacks). Without it -- or when the prompt is not found -- the response
    starts after the last assistant-turn opener. A query with neither is an error: guessing
    would score the prompt as if the model had said it.
    """
    cut = -1
    if prompt:
        at = query.find(prompt)
        if at >= 0:
            cut = at + len(prompt)
    if cut < 0:
        for opener in _ASSISTANT_OPENERS:
            matches = list(opener.finditer(query))
            if matches:
                cut = max(cut, matches[-1].end())
        if cut < 0:
            raise ValueError("cannot split query into prompt and response: the prompt is not a prefix of the query "
                             "and no assistant-turn marker (ChatML, Llama-3, DeepSeek-R1) was found")
        prompt = query[:cut]
    head, tail = query[:cut], query[cut:]
    return SplitQuery(prompt=user_text(prompt or head), response=strip_special(tail))
