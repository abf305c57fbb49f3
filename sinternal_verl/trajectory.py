"""One way to read a trajectory, whatever front end produced it.

Every trainer hands the reward a prompt and a response in its own shape:

* **chat messages** (our data, TRL's conversational format, verl's ``raw_prompt``):
  ``[{"role": "user", "content": "..."}, ...]``, content a string or a list of parts;
* **a templated string** (OpenRLHF's ``query`` = decoded prompt + response, or a prompt
  rendered by a chat template): the template's markers around every turn. Three families
  cover the paper's policies and the guards' own training data: ChatML
  (``<|im_start|>``, Qwen), Llama 3 (``<|start_header_id|>``) and DeepSeek-R1
  (``<｜User｜>`` / ``<｜Assistant｜>``);
* **TRL completions**: a string, or assistant messages whose reasoning may come separately in
  ``reasoning_content`` (vLLM's reasoning parser) and is rejoined here as ``<think>...</think>``.

Three facts are needed from all of them, and this module is the only place that knows how to
get them: **the reasoning trace and the final answer** of a response (:func:`split_reasoning`), **the user's request** (the last user turn, markup removed: a guard judges the
words, and control tokens change its verdict) and **whether the prompt opened a reasoning
trace** (R1-distill and Qwen3-thinking templates end the prompt with ``<think>``, so the
response starts inside the trace and a response cut off there has no answer at all).

It is a leaf: it imports nothing from the package, so every layer may use it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "THINK_CLOSE",
    "THINK_OPEN",
    "ReasonedResponse",
    "Trajectory",
    "completion_text",
    "content_text",
    "last_user_turn",
    "split_reasoning",
    "split_templated",
    "strip_markup",
    "trace_opened",
    "user_prompt",
]

#: the reasoning-trace tags of DeepSeek-R1-distilled and Qwen3 models
THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"


@dataclass(frozen=True)
class ReasonedResponse:
    trace: str
    answer: str
    #: the trace was opened and never closed (generation hit the length limit)
    truncated: bool
    #: a ``</think>`` was found
    has_trace: bool


def split_reasoning(text: str, open_tag: str = THINK_OPEN, close_tag: str = THINK_CLOSE) -> ReasonedResponse:
    """The trace and the final answer of a reasoning model's output.

    Chat templates often put the opening ``<think>`` in the *prompt*, so a response may start
    inside the trace with only ``</think>`` present (callers that know the prompt opened it
    prepend the tag: see :func:`trace_opened`). A response that opens a trace and never
    closes it was cut off: it has no answer at all.

    * ``...</think>answer``: the trace is everything before the *last* close tag (an
      opening tag, if any, removed); the answer is what follows, stripped.
    * ``<think>...`` with no close tag: truncated; the answer is empty.
    * no tags at all: a non-reasoning model; the whole text is the answer.
    """
    close = text.rfind(close_tag)
    if close >= 0:
        trace = text[:close]
        open_at = trace.find(open_tag)
        if open_at >= 0:
            trace = trace[open_at + len(open_tag) :]
        return ReasonedResponse(trace.strip(), text[close + len(close_tag) :].strip(), False, True)
    if open_tag in text:
        trace = text[text.find(open_tag) + len(open_tag) :]
        return ReasonedResponse(trace.strip(), "", True, True)
    return ReasonedResponse("", text.strip(), False, False)


# (user turn, assistant-turn opener) per template family; the user pattern captures the text.
_USER_TURNS = (
    re.compile(r"<\|im_start\|>user\s*\n(.*?)(?:<\|im_end\|>|$)", re.DOTALL),
    re.compile(r"<\|start_header_id\|>user<\|end_header_id\|>\s*(.*?)(?:<\|eot_id\|>|$)", re.DOTALL),
    re.compile(r"<｜User｜>(.*?)(?=<｜Assistant｜>|<｜end▁of▁sentence｜>|$)", re.DOTALL),
)
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


@dataclass(frozen=True)
class Trajectory:
    """A prompt/response pair as the reward needs it."""

    #: the user's request: the last user turn, no markup
    prompt: str
    #: the model's output, markup removed, ``<think>`` tags kept (the reward splits the trace)
    response: str
    #: the prompt ended by opening a reasoning trace: the response starts inside it
    trace_opened: bool = False


def strip_markup(text: str) -> str:
    """``text`` with the templates' special tokens removed, stripped."""
    return _SPECIAL_RE.sub("", text).strip()


def _is_templated(text: str) -> bool:
    return any(p.search(text) for p in _USER_TURNS) or any(p.search(text) for p in _ASSISTANT_OPENERS)


def content_text(content: Any) -> str | None:
    """A message's content as text: a string, or the text parts of a multimodal list."""
    if content is None:
        return None
    if isinstance(content, str):
        return content
    if isinstance(content, Mapping):  # one content part
        return str(content.get("text", ""))
    if isinstance(content, Iterable):
        return "".join(str(p.get("text", "")) for p in content if isinstance(p, Mapping))
    return str(content)


def _messages(value: Any) -> list[Mapping[str, Any]] | None:
    if isinstance(value, (str, bytes)) or value is None:
        return None
    if isinstance(value, Mapping):
        return [value]
    try:
        return [m for m in value if isinstance(m, Mapping)]
    except TypeError:
        return None


def last_user_turn(messages: Any) -> str | None:
    """The content of the last ``user`` message of a chat-message list (a list, a tuple, a
    numpy array as parquet gives it); ``None`` if there is none or this is not a list."""
    for message in reversed(_messages(messages) or []):
        if message.get("role") == "user":
            return content_text(message.get("content"))
    return None


def _user_of_templated(text: str) -> str:
    for pattern in _USER_TURNS:
        turns = pattern.findall(text)
        if turns:
            return strip_markup(turns[-1])
    return strip_markup(text)


def user_prompt(prompt: Any) -> str | None:
    """The user's request from any prompt shape: chat messages (last user turn), a single
    message, a chat-templated string (last user turn, markup removed) or plain text (as is).
    ``None`` when there is nothing (no user turn, no text)."""
    if prompt is None:
        return None
    if isinstance(prompt, str):
        return _user_of_templated(prompt) if _is_templated(prompt) else prompt
    return last_user_turn(prompt)


def trace_opened(prompt: Any) -> bool:
    """Whether a rendered prompt ends by opening a reasoning trace (``...<think>`` with
    optional whitespace), as R1-distill and Qwen3-thinking templates do. Chat messages carry
    no template, so they say nothing (``False``): pass the option explicitly there."""
    return isinstance(prompt, str) and prompt.rstrip().endswith(THINK_OPEN)


def _first_opener_end(query: str) -> int:
    """End of the template's generation prompt: the first assistant opener after the first
    user turn. Not the last one: a response may itself contain a (fake) opener, and cutting
    there would hide everything the model wrote before it from the guard."""
    user_at = min((m.start() for p in _USER_TURNS if (m := p.search(query))), default=0)
    ends = [m.end() for p in _ASSISTANT_OPENERS if (m := p.search(query, user_at))]
    return min(ends) if ends else -1


def split_templated(query: str, prompt: str | None = None) -> Trajectory:
    """Split a templated prompt + response (OpenRLHF's ``query``) into a :class:`Trajectory`.

    With ``prompt`` (the templated prompt alone) found in ``query``, the response is what
    follows it. Without it, the response starts after the template's generation prompt:
    the first assistant opener after the first user turn (multi-turn prompts need
    ``prompt``; without it the earlier turns are judged as part of the answer, never the
    other way round). A query with neither raises ``ValueError``: guessing would score the
    prompt as if the model had said it. A ``<think>`` the template put right after the
    opener stays in the response, which the reasoning split reads the same way.
    """
    cut = -1
    if prompt:
        at = query.find(prompt)
        if at >= 0:
            cut = at + len(prompt)
    if cut < 0:
        cut = _first_opener_end(query)
        if cut < 0:
            raise ValueError(
                "cannot split query into prompt and response: the prompt is not a prefix of the query "
                "and no assistant-turn marker (ChatML, Llama-3, DeepSeek-R1) was found"
            )
    head, tail = query[:cut], query[cut:]
    return Trajectory(
        prompt=_user_of_templated(head), response=strip_markup(tail), trace_opened=trace_opened(head)
    )


def completion_text(completion: Any) -> str:
    """A completion as one string: a string as is; assistant messages' content joined, each
    message's separate ``reasoning_content`` (or ``reasoning``) rejoined in front as
    ``<think>...</think>`` so the reward sees the trace the model wrote."""
    if isinstance(completion, str):
        return completion
    messages = _messages(completion)
    if messages is None:
        raise TypeError(f"unsupported completion type {type(completion).__name__}")
    picked = [m for m in messages if m.get("role", "assistant") == "assistant"] or messages[-1:]
    parts = []
    for m in picked:
        reasoning = m.get("reasoning_content") or m.get("reasoning")
        if reasoning:
            parts.append(f"{THINK_OPEN}{reasoning}{THINK_CLOSE}")
        parts.append(content_text(m.get("content")) or "")
    return "".join(parts)
