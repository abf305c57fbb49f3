"""Judges that read a model's answer without a model: a leaf package (it imports nothing
from ``rewards`` or ``guards``; they import it)."""

from .refusal import (
    GCG_REFUSAL_PHRASES,
    REFUSAL_MODES,
    XSTEST_REFUSAL_PREFIXES,
    RefusalJudge,
    RefusalJudgeConfig,
    RefusalJudgement,
    RefusalOutcome,
    judge_refusal,
)

__all__ = [
    "GCG_REFUSAL_PHRASES",
    "REFUSAL_MODES",
    "XSTEST_REFUSAL_PREFIXES",
    "RefusalJudge",
    "RefusalJudgeConfig",
    "RefusalJudgement",
    "RefusalOutcome",
    "judge_refusal",
]
