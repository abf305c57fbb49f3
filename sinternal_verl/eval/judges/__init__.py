"""Judges registry.

* safety: ``judge.kind`` is any guard kind (:data:`SAFETY_JUDGES`), built through
  ``sinternal_verl.guards.build_guard``;
* refusal (benign sets): :data:`REFUSAL_JUDGES`. ``lexical`` is the offline judge of
  :mod:`sinternal_verl.judges.refusal` (full / partial / compliance by default); ``llm`` is
  XSTest's three-way rubric on a served model; ``guard`` reads the safety guard's own refusal
  label (Qwen3Guard, WildGuard);
* StrongREJECT rubric: :class:`RubricJudge`.
"""

from __future__ import annotations

from collections.abc import Callable

from ...guards.registry import kind_names
from ..config import EvalConfig
from .base import (
    COMPLIANCE,
    FULL_REFUSAL,
    PARTIAL_REFUSAL,
    SAFE,
    SCORED,
    UNSAFE,
    Judge,
    JudgeInput,
    Judgement,
)
from .guard import GuardJudge
from .refusal_guard import GuardRefusalJudge
from .refusal_lexical import LexicalRefusalJudge
from .refusal_llm import LLMRefusalJudge
from .rubric import RubricJudge, parse_rubric, strongreject_score

SAFETY_JUDGES: dict[str, Callable[[EvalConfig], Judge]] = {
    kind: (lambda cfg: GuardJudge(cfg.judge)) for kind in kind_names()
}
REFUSAL_JUDGES: dict[str, Callable[[EvalConfig], Judge]] = {
    "lexical": lambda cfg: LexicalRefusalJudge(cfg.refusal_judge),
    "llm": lambda cfg: LLMRefusalJudge(cfg.refusal_judge),
    "guard": lambda cfg: GuardRefusalJudge(cfg),
}


class UnknownJudgeError(ValueError):
    pass


def _pick(registry: dict, name: str, what: str):
    if name not in registry:
        import difflib

        close = difflib.get_close_matches(name, list(registry), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise UnknownJudgeError(f"unknown {what} {name!r}{hint} (known: {', '.join(registry)})")
    return registry[name]


def build_safety_judge(cfg: EvalConfig) -> Judge:
    return _pick(SAFETY_JUDGES, cfg.judge.kind, "judge.kind")(cfg)


def build_refusal_judge(cfg: EvalConfig) -> Judge:
    return _pick(REFUSAL_JUDGES, cfg.refusal_judge.kind, "refusal_judge.kind")(cfg)


def build_rubric_judge(cfg: EvalConfig) -> Judge:
    return RubricJudge(cfg.rubric_judge)


__all__ = [
    "COMPLIANCE",
    "FULL_REFUSAL",
    "PARTIAL_REFUSAL",
    "REFUSAL_JUDGES",
    "SAFE",
    "SAFETY_JUDGES",
    "SCORED",
    "UNSAFE",
    "GuardJudge",
    "GuardRefusalJudge",
    "Judge",
    "JudgeInput",
    "Judgement",
    "LLMRefusalJudge",
    "LexicalRefusalJudge",
    "RubricJudge",
    "UnknownJudgeError",
    "build_refusal_judge",
    "build_rubric_judge",
    "build_safety_judge",
    "parse_rubric",
    "strongreject_score",
]
