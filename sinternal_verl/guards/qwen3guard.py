"""Qwen3Guard-Gen: request building, output parsing and the soft score.

Served as a chat model (vLLM / SGLang ``/v1/chat/completions``). No system turn: the model's
own chat template writes the instruction. Prompt moderation sends ``[user]``; response
moderation sends ``[user, assistant]``. Output::

    Safety: Safe|Unsafe|Controversial
    Categories: <comma-separated names or None>
    Refusal: Yes|No            (response moderation only)

A reasoning trace, when the caller passes one, goes in the assistant turn in Qwen's eval
format ``<think>trace</think>\\n\\nanswer``.
"""

from __future__ import annotations

import math
import re
from functools import lru_cache
from typing import Any

from .categories import map_qwen3guard
from .control_tokens import neutralize
from .parsing import first_word, read_fields, unparsed
from .registry import GuardKind, register_kind
from .types import GuardVerdict, ModerationItem, Refusal, SafetyLabel

KIND = "qwen3guard"
ENDPOINT = "/v1/chat/completions"
LABELS = ("safety", "categories", "refusal")
_SAFETY = {"safe": SafetyLabel.SAFE, "unsafe": SafetyLabel.UNSAFE, "controversial": SafetyLabel.CONTROVERSIAL}
_REFUSAL = {"yes": Refusal.YES, "no": Refusal.NO}
#: the exact format the model emits: parsed in one regex match (the hot path); anything
#: else goes through the tolerant label-based reader.
_CANONICAL = re.compile(
    r"Safety: (Safe|Unsafe|Controversial)\nCategories: ([^\n:]*)(?:\nRefusal: (Yes|No))?\n?"
)
_CANON_SAFETY = {
    "Safe": SafetyLabel.SAFE,
    "Unsafe": SafetyLabel.UNSAFE,
    "Controversial": SafetyLabel.CONTROVERSIAL,
}
_CANON_REFUSAL = {"Yes": Refusal.YES, "No": Refusal.NO, None: Refusal.UNKNOWN}


def assistant_turn(item: ModerationItem) -> str:
    """The assistant content: the answer, or ``<think>trace</think>\\n\\nanswer`` (control
    tokens in the policy's text neutralised)."""
    response = neutralize(item.response or "")
    if item.trace is not None:
        return f"<think>{neutralize(item.trace)}</think>\n\n{response}"
    return response


def build_messages(item: ModerationItem) -> list[dict[str, str]]:
    prompt = neutralize(item.prompt)
    if item.response is None:
        return [{"role": "user", "content": prompt}]
    return [{"role": "user", "content": prompt}, {"role": "assistant", "content": assistant_turn(item)}]


def build_payload(
    item: ModerationItem, model: str, max_tokens: int, soft_score: bool = False, top_logprobs: int = 5
) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "model": model,
        "messages": build_messages(item),
        "temperature": 0.0,
        "max_tokens": max_tokens,
    }
    if soft_score:
        payload["logprobs"] = True
        payload["top_logprobs"] = top_logprobs
    return payload


def parse(text: str, item: ModerationItem, source: str = "") -> GuardVerdict:
    """Read a Qwen3Guard answer to ``item``. ``Safety`` is required; for response moderation so is
    ``Refusal`` (Qwen3Guard always emits it there, so its absence means a cut-off or garbled
    answer, and the benign-prompt reward depends on it). ``Categories`` defaults to none."""
    response_moderation = not item.is_prompt_moderation
    m = _CANONICAL.fullmatch(text)
    if m is not None and (m.group(3) is not None or not response_moderation):
        raw_cats = _split_categories(m.group(2))
        return GuardVerdict(
            label=_CANON_SAFETY[m.group(1)],
            categories=map_qwen3guard(raw_cats),
            refusal=_CANON_REFUSAL[m.group(3)],
            raw=text,
            source=source,
            extra={"raw_categories": list(raw_cats)} if raw_cats else {},
        )
    fields = read_fields(text, LABELS)
    if "safety" not in fields:
        return unparsed(text, "no 'Safety:' field", source)
    label = _SAFETY.get(first_word(fields["safety"]))
    if label is None:
        return unparsed(text, f"unknown safety label {fields['safety']!r}", source)
    refusal = Refusal.UNKNOWN
    if "refusal" in fields:
        refusal = _REFUSAL.get(first_word(fields["refusal"]), Refusal.UNKNOWN)
        if refusal is Refusal.UNKNOWN and response_moderation:
            return unparsed(text, f"unknown refusal value {fields['refusal']!r}", source)
    elif response_moderation:
        return unparsed(text, "response moderation answer has no 'Refusal:' field", source)
    raw_cats = _split_categories(fields.get("categories", ""))
    extra: dict[str, Any] = {"raw_categories": list(raw_cats)} if raw_cats else {}
    return GuardVerdict(
        label=label,
        categories=map_qwen3guard(raw_cats),
        refusal=refusal,
        parse_ok=True,
        raw=text,
        source=source,
        extra=extra,
    )


@lru_cache(maxsize=4096)
def _split_categories(value: str) -> tuple[str, ...]:
    """``"Violent, PII"`` -> ``("Violent", "PII")``; ``"None"`` / empty -> ``()``."""
    if not value or first_word(value) == "none":
        return ()
    return tuple(c.strip() for c in value.replace(";", ",").split(",") if c.strip())


def _label_of_token(token: str) -> str | None:
    """Which label a candidate first token starts (``" Un"`` -> unsafe)."""
    t = token.strip().lower()
    if not t:
        return None
    for name in ("unsafe", "controversial", "safe"):
        if name.startswith(t) or t.startswith(name):
            return name
    return None


def soft_score(logprobs_content: list[dict[str, Any]] | None) -> tuple[float, float] | None:
    """``(p_unsafe, p_controversial)`` from the first generated token after ``Safety:``.

    The top-k alternatives of that token are grouped by the label they begin and
    renormalised over the three labels (so a top-5 truncation does not bias the score).
    ``p_unsafe`` counts unsafe **and** controversial mass: the strict reading used by
    :attr:`GuardVerdict.is_safe` and by Qwen's own safety RL. ``None`` when the logprobs do
    not contain the label token.
    """
    if not logprobs_content or not isinstance(logprobs_content, list):
        return None
    text = ""
    armed = False
    for entry in logprobs_content:
        if not isinstance(entry, dict) or not isinstance(entry.get("token", ""), str):
            return None  # malformed logprobs: no soft score, never an exception
        tok = entry.get("token", "")
        if armed and tok.strip():
            mass = {"safe": 0.0, "unsafe": 0.0, "controversial": 0.0}
            alts = entry.get("top_logprobs")
            if not isinstance(alts, list) or not alts:
                alts = [{"token": tok, "logprob": entry.get("logprob", 0.0)}]
            for alt in alts:
                if not isinstance(alt, dict) or not isinstance(alt.get("token", ""), str):
                    continue
                name = _label_of_token(alt.get("token", ""))
                lp = alt.get("logprob")
                if (
                    name is not None
                    and isinstance(lp, (int, float))
                    and not isinstance(lp, bool)
                    and lp > -1e30
                ):
                    mass[name] += math.exp(min(float(lp), 0.0))
            total = sum(mass.values())
            if total <= 0:
                return None
            return (mass["unsafe"] + mass["controversial"]) / total, mass["controversial"] / total
        text += tok
        if not armed:
            low = text.lower()
            at = low.rfind("safety")
            if at >= 0 and ":" in low[at:]:
                armed = True
                rest = text[low.index(":", at) + 1 :]
                if rest.strip():  # the label came in the same token as the colon
                    name = _label_of_token(rest)
                    if name is None:
                        return None
                    p = 1.0 if name != "safe" else 0.0
                    return p, 1.0 if name == "controversial" else 0.0
    return None


SPEC = register_kind(
    GuardKind(
        name=KIND,
        default_model="Qwen/Qwen3Guard-Gen-4B",
        supports_refusal=True,
        endpoint=ENDPOINT,
        build_payload=build_payload,
        parse=parse,
        soft_score=soft_score,
    )
)
