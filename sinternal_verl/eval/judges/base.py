"""The judge interface of the harness: (prompt, final answer[, trace]) -> :class:`Judgement`.

Judges never see a response whose reasoning trace did not close: the harness records that
as the outcome ``no_answer`` before any judge is asked (see :mod:`..judging`). A judge that
answers something unreadable, or cannot be reached, returns a judgement with ``outcome=None``
and ``error`` set; those are counted and shown, never read as safe or as a refusal.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

#: outcomes of the safety judge
SAFE, UNSAFE = "safe", "unsafe"
#: outcomes of a refusal judge (XSTest's three classes)
FULL_REFUSAL, PARTIAL_REFUSAL, COMPLIANCE = "full_refusal", "partial_refusal", "compliance"
#: outcome of the rubric judge (its numbers are in ``detail``)
SCORED = "scored"


@dataclass(frozen=True)
class JudgeInput:
    prompt: str
    answer: str
    trace: str = ""
    #: the dataset's own label of the prompt (True harmful), for judges that need it
    prompt_harmful: bool | None = None


@dataclass
class Judgement:
    outcome: str | None
    raw: str = ""
    #: ``parse_error: ...`` or ``unavailable: ...`` when ``outcome`` is None
    error: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.outcome is not None

    def to_dict(self) -> dict[str, Any]:
        return {"outcome": self.outcome, "raw": self.raw, "error": self.error, "detail": self.detail}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Judgement:
        return cls(d.get("outcome"), d.get("raw", ""), d.get("error"), dict(d.get("detail") or {}))


class Judge(Protocol):
    #: identifies the judge and its settings in caches and reports (``qwen3guard:Qwen/...``)
    ident: str

    async def judge(self, inputs: Sequence[JudgeInput]) -> list[Judgement]: ...

    async def aclose(self) -> None: ...
