"""Split a reasoning model's output into its trace and its final answer.

DeepSeek-R1-distilled and Qwen3 models write ``<think> ... </think>`` then the answer.
Their chat templates often put the opening ``<think>`` in the *prompt*, so the decoded
response may start inside the trace with only ``</think>`` present. A response that opens
a trace and never closes it was cut off: it has no answer at all.
"""

from __future__ import annotations

from dataclasses import dataclass

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
    """Return (trace, answer, truncated) for ``text``.

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
