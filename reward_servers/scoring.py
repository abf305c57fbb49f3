"""Score items with the reward core (``sinternal_verl.rewards.RewardRouter``).

This is the only place the server touches rewards; it adds what HTTP needs on top:
per-item errors (an unreadable verdict, an unknown task) versus request-wide failures (the
guard is unreachable: the whole request must fail with 503, because any number returned
for the other items would be made up).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from sinternal_verl.guards.types import (
    Guard,
    GuardConfigError,
    GuardError,
    GuardUnavailableError,
    UpstreamRequestError,
    UpstreamUnavailableError,
)
from sinternal_verl.rewards import RewardRouter

from reward_servers.protocol import ScoreItem


class GuardBackendError(RuntimeError):
    """The guard rejected our request (HTTP 4xx other than 429): a configuration problem
    (wrong model name, bad key). Answered 502 with the upstream's message."""


@dataclass
class ItemOutcome:
    values: dict[str, float] | None
    error: str | None
    latency_s: float


def _extra_info(item: ScoreItem) -> dict[str, Any]:
    info = dict(item.extra_info or {})
    if item.task is not None:
        info["task"] = item.task
    if item.prompt_type is not None:
        info["prompt_type"] = item.prompt_type
    info["prompt"] = item.prompt
    return info


class Scorer:
    """Holds the guard and the reward settings; ``score`` is safe to call concurrently."""

    def __init__(self, guard_getter: Callable[[], Guard | None], reward_kwargs: Mapping[str, Any] | None = None):
        self._guard_getter = guard_getter
        self.reward_kwargs = dict(reward_kwargs or {})
        RewardRouter(self.reward_kwargs)  # a bad setting fails at start-up, not per request
        self._router: RewardRouter | None = None

    def _get_router(self) -> RewardRouter:
        # built on first use: the guard getter may create an HTTP client bound to the
        # server's running event loop
        if self._router is None:
            self._router = RewardRouter(self.reward_kwargs, guard=self._guard_getter())
        return self._router

    async def _one(self, item: ScoreItem) -> ItemOutcome:
        t0 = time.perf_counter()
        try:
            values = await self._get_router().score(
                item.data_source or (f"sinternal_server/{item.task}" if item.task else None),
                item.response,
                item.ground_truth,
                _extra_info(item),
            )
        except (GuardConfigError, UpstreamRequestError) as exc:
            raise GuardBackendError(str(exc)) from exc
        except (UpstreamUnavailableError, GuardUnavailableError):
            raise
        except (GuardError, ValueError) as exc:
            return ItemOutcome(None, f"{type(exc).__name__}: {exc}", time.perf_counter() - t0)
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
