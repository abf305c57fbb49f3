"""How a reward scores an item the guard *rejected* (HTTP 4xx for that item).

vLLM answers 400 when prompt + answer exceed the guard's ``max_model_len``. That is not an
unreadable answer and not an outage: it says something about *this* item (usually a very
long answer). With ``on_guard_error: raise`` one such item used to stop a GRPO run with
``unparsable guard output from URL: ''``. Now the verdict says ``rejected=True`` with the
status and the guard's message, and the reward chooses, per configuration:

* ``raise`` -- :class:`~.types.GuardRejectedError` naming status and message (default:
  nothing is scored silently);
* ``score`` -- ``guard_rejected_score``, flagged ``guard_rejected=1`` in the reward's extra info;
* ``truncated`` -- the score the reward gives a truncated answer (an answer too long to judge
  is treated like one too long to finish), also flagged.
"""

from __future__ import annotations

from typing import Literal, Protocol

from .types import GuardRejectedError, GuardVerdict


class RejectionSettings(Protocol):
    """What a reward configures about rejections (the safety reward's settings carry both)."""

    on_guard_rejected: Literal["raise", "score", "truncated"]
    guard_rejected_score: float


def score_rejected(
    verdict: GuardVerdict, settings: RejectionSettings, truncated_score: float
) -> tuple[float, dict]:
    """``(score, extra info)`` for a rejected verdict, or raise :class:`GuardRejectedError`.

    ``truncated_score`` is what the caller gives a truncated answer. The extra info always
    carries ``guard_rejected=1`` and the status, so rejected items are visible in metrics."""
    if not verdict.rejected:
        raise ValueError("score_rejected needs a rejected verdict")
    if settings.on_guard_rejected == "raise":
        raise GuardRejectedError(verdict.source, verdict.status, verdict.message)
    score = settings.guard_rejected_score if settings.on_guard_rejected == "score" else truncated_score
    info = {"guard_rejected": 1, "guard_rejected_status": verdict.status if verdict.status is not None else 0}
    return float(score), info
