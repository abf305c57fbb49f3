"""Score items with the reward core (``sinternal_verl.rewards.RewardRouter``).

This is the only place the server touches rewards; it adds what HTTP needs on top:
per-item errors (an unreadable verdict, an unknown task) versus request-wide failures (the
guard is unreachable: the whole request must fail with 503, because any number returned
for the other items would be made up).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sinternal_verl.guards.types import (
    Guard,
    GuardConfigError,
    GuardError,
    GuardUnavailableError,
    UpstreamRequestError,
    UpstreamUnavailableError,
)
from sinternal_verl.rewards import RewardRouter

from .errors import redact
from .protocol import ScoreItem

__all__ = ["GuardBackendError", "ItemOutcome", "Scorer", "guard_from_settings"]


class GuardBackendError(RuntimeError):
    """The guard rejected our request (HTTP 4xx other than 429): a configuration problem
    (wrong model name, bad key). Answered 502; ``status`` is the upstream's code."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


@dataclass
class ItemOutcome:
    values: dict[str, float] | None
    error: str | None
    latency_s: float

    @property
    def outcome(self) -> str:
        """``ok``, ``fallback`` (the guard failed and ``on_guard_error=fallback`` scored it)
        or ``error``: metrics must not count a made-up fallback score as a judged one."""
        if self.error:
            return "error"
        return "fallback" if (self.values or {}).get("guard_error") else "ok"


def guard_from_settings(reward_kwargs: Mapping[str, Any]) -> Guard:
    """The guard the reward settings describe, built by the reward router (the one place
    that turns ``guard_backend`` / ``guard_urls`` / ``guard_pool_name`` ... into a guard)."""
    return RewardRouter(reward_kwargs).guard


def _extra_info(item: ScoreItem) -> dict[str, Any]:
    info = dict(item.extra_info or {})
    if item.task is not None:
        info["task"] = item.task
    if item.prompt_type is not None:
        info["prompt_type"] = item.prompt_type
    info["prompt"] = item.prompt
    return info


class _NoGuardYet:
    """Placeholder for validating settings without attaching to a guard (a Ray pool attach
    is a blocking network call that belongs to start-up, not to building the app)."""


class Scorer:
    """Holds the router (reward settings parsed once); ``score`` is safe to call concurrently."""

    def __init__(self, reward_kwargs: Mapping[str, Any] | None = None, guard: Guard | None = None):
        self.reward_kwargs = dict(reward_kwargs or {})
        self.guard = guard
        self.router = RewardRouter(self.reward_kwargs, guard=guard)

    @staticmethod
    def validate(reward_kwargs: Mapping[str, Any]) -> None:
        """Fail now (start-up) on reward settings the router rejects."""
        RewardRouter(dict(reward_kwargs), guard=_NoGuardYet())  # type: ignore[arg-type]

    def _model(self) -> str:
        model = getattr(self.guard, "model", None)
        return f" for model {model!r}" if isinstance(model, str) else ""

    async def _one(self, item: ScoreItem) -> ItemOutcome:
        t0 = time.perf_counter()
        try:
            values = await self.router.score(
                item.data_source or (f"sinternal_server/{item.task}" if item.task else None),
                item.response,
                item.ground_truth,
                _extra_info(item),
                trace_opened_in_prompt=item.trace_opened_in_prompt,
            )
        except (UpstreamRequestError, GuardConfigError) as exc:
            # the upstream's body stays in the log: a proxy may echo our Authorization header
            status = getattr(exc, "status", None) or getattr(exc.__cause__, "status", None)
            shown = f" with HTTP {status}" if status else ""
            raise GuardBackendError(f"the guard rejected the request{shown}{self._model()}", status) from exc
        except (UpstreamUnavailableError, GuardUnavailableError):
            raise
        except (GuardError, ValueError) as exc:
            return ItemOutcome(None, redact(f"{type(exc).__name__}: {exc}"), time.perf_counter() - t0)
        return ItemOutcome({k: float(v) for k, v in values.items()}, None, time.perf_counter() - t0)

    async def score(self, items: list[ScoreItem]) -> list[ItemOutcome]:
        """One outcome per item, in order. Raises ``GuardUnavailableError`` (→ 503) if any
        item could not reach the guard; other items' work is cancelled, not wasted on answers
        that will be thrown away."""
        tasks = [asyncio.ensure_future(self._one(item)) for item in items]
        try:
            return list(await asyncio.gather(*tasks))
        except BaseException:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
