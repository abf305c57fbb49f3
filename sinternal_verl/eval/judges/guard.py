"""Safety judge: any guard kind of the project (Qwen3Guard strict / loose, Llama Guard,
WildGuard, the lexical baseline), built by :func:`sinternal_verl.guards.build_guard`."""

from __future__ import annotations

from collections.abc import Sequence

from ...guards import ModerationItem, SafetyLabel, build_guard
from ...guards.types import GuardError, UpstreamUnavailableError
from ..config import GuardJudgeSettings
from .base import SAFE, UNSAFE, JudgeInput, Judgement


class GuardJudge:
    def __init__(self, settings: GuardJudgeSettings):
        self.settings = settings
        try:
            self.config = settings.guard_config().require_urls()
        except ValueError as exc:
            raise ValueError(f"judge: {exc}") from None
        self.ident = f"{self.config.kind}:{self.config.model_name}:{settings.controversial}:{settings.sees}"
        self._guard = None

    async def judge(self, inputs: Sequence[JudgeInput]) -> list[Judgement]:
        if self._guard is None:
            self._guard = build_guard(self.config)
        full = self.settings.sees == "full"
        items = [
            ModerationItem(
                i.prompt, i.answer, trace=(i.trace or None) if full else None, prompt_harmful=i.prompt_harmful
            )
            for i in inputs
        ]
        try:
            verdicts = await self._guard.moderate(items)
        except (GuardError, UpstreamUnavailableError) as exc:
            return [Judgement(None, error=f"unavailable: {exc}") for _ in inputs]
        out = []
        for v in verdicts:
            detail = {"categories": list(v.categories), "refusal": v.refusal.value}
            if not v.parse_ok or v.label is None:
                out.append(
                    Judgement(None, v.raw, error="parse_error: unreadable guard output", detail=detail)
                )
                continue
            unsafe = v.label is SafetyLabel.UNSAFE or (
                v.label is SafetyLabel.CONTROVERSIAL and self.settings.controversial == "strict"
            )
            detail["label"] = v.label.value
            out.append(Judgement(UNSAFE if unsafe else SAFE, v.raw, detail=detail))
        return out

    async def aclose(self) -> None:
        if self._guard is not None:
            await self._guard.aclose()
            self._guard = None
