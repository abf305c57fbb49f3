"""Route one trajectory to the safety or the math reward, verl's ``compute_score`` way.

Routing: ``extra_info["task"]`` (``safety`` / ``math``) first, then ``data_source``: verl's
math names (``math_dapo``, ``math``, ``aime*``, the MATH sets ...) go to math, anything
starting with ``safety`` to safety. Unknown sources fail loudly with what is known.

Every result has the same numeric keys (:data:`RESULT_KEYS`) whatever the task, because
verl takes the extra-info keys from the first sample of a batch and aggregates them as
numbers; there is deliberately no key named ``reward``.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import threading
from collections.abc import Mapping
from typing import Any

from sinternal_verl.guards.config import GuardConfig
from sinternal_verl.guards.types import Guard
from sinternal_verl.rewards.safety import safety_score
from sinternal_verl.rewards.settings import RewardSettings
from sinternal_verl.trajectory import THINK_OPEN, user_prompt

logger = logging.getLogger(__name__)

RESULT_KEYS = (
    "score",
    "acc",
    "safe",
    "refused",
    "truncated",
    "empty_answer",
    "guard_error",
    "guard_rejected",
    "controversial",
    "harmful_prompt",
    "is_math",
    "math_timeout",
    "math_error",
)

TASKS = ("safety", "math")
MATH_SOURCES = frozenset(
    {
        "math",
        "math_dapo",
        "math_dapo_reasoning",
        "lighteval/MATH",
        "DigitalLearningGmbH/MATH-lighteval",
        "HuggingFaceH4/MATH-500",
        "BytedTsinghua-SIA/DAPO-Math-17k",
    }
)
MATH_PREFIXES = ("aime", "amc", "math500", "math_")
SAFETY_PREFIXES = ("safety",)


class UnknownTaskError(ValueError):
    pass


def resolve_task(data_source: str | None, extra_info: Mapping[str, Any] | None = None) -> str:
    task = (extra_info or {}).get("task")
    if task is not None:
        task = str(task).lower()
        if task not in TASKS:
            raise UnknownTaskError(
                f"extra_info['task']={task!r} is not a known task; known tasks: {', '.join(TASKS)}"
            )
        return task
    ds = str(data_source or "")
    if ds in MATH_SOURCES or ds.lower().startswith(MATH_PREFIXES):
        return "math"
    if ds.lower().startswith(SAFETY_PREFIXES):
        return "safety"
    raise UnknownTaskError(
        f"cannot route data_source={data_source!r}: set extra_info['task'] to one of {TASKS}, or use a data_source "
        f"starting with {SAFETY_PREFIXES} (safety) or one of {sorted(MATH_SOURCES)} / prefixes {MATH_PREFIXES} (math)"
    )


def _blank() -> dict[str, float]:
    return dict.fromkeys(RESULT_KEYS, 0.0)


def _math_result(res: Mapping[str, Any]) -> dict[str, float]:
    out = _blank()
    out["score"] = float(res["score"])
    out["acc"] = float(res["acc"])
    out["truncated"] = float(res.get("math_truncated", 0.0))
    out["math_timeout"] = float(res.get("math_timeout", 0.0))
    out["math_error"] = float(res.get("math_error", 0.0))
    out["is_math"] = 1.0
    if out["math_error"]:
        logger.warning(
            "math reward: the symbolic checker failed on %r; scored as incorrect (math_error=1)",
            str(res.get("pred", ""))[:200],
        )
    return out


def _check_ground_truth(ground_truth: Any) -> None:
    if ground_truth is None or (isinstance(ground_truth, str) and not ground_truth.strip()):
        raise ValueError("math item without a ground truth (reward_model.ground_truth)")


def score_math(solution_str: str, ground_truth: Any, **kwargs: Any) -> dict[str, float]:
    """The math reward alone (no guard, no event loop); ``kwargs`` are reward settings."""
    from sinternal_verl.rewards.math import score_math as math_score

    _check_ground_truth(ground_truth)
    return _math_result(math_score(solution_str, ground_truth, _settings(kwargs).math))


#: env vars that fill reward settings start with this
ENV_PREFIX = "SINTERNAL_"

# ---- guards shared per configuration -------------------------------------------------------
_GUARDS: dict[GuardConfig, Guard] = {}
_GUARDS_LOCK = threading.Lock()


def get_guard(config: GuardConfig) -> Guard:
    """One guard per configuration per process: its client keeps pooled connections, its
    cache and its concurrency limits, shared by every caller with the same settings."""
    from sinternal_verl.guards import build_guard

    with _GUARDS_LOCK:
        guard = _GUARDS.get(config)
        if guard is None:
            guard = _GUARDS[config] = build_guard(config)
        return guard


@functools.lru_cache(maxsize=64)
def _settings_cached(items: tuple, env: tuple) -> RewardSettings:
    return RewardSettings.from_kwargs(dict(items), env=dict(env))


def _settings(kwargs: Mapping[str, Any]) -> RewardSettings:
    """Parsed settings, cached for the plain-function entry points (called once per item);
    the env vars that can fill settings are part of the key."""
    env = tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith(ENV_PREFIX)))
    try:
        return _settings_cached(tuple(sorted(kwargs.items())), env)
    except TypeError:  # unhashable values (lists from a config): parse uncached
        return RewardSettings.from_kwargs(kwargs)


def prompt_text(extra_info: Mapping[str, Any] | None) -> str:
    """The user's request of a safety item, read by :func:`sinternal_verl.trajectory.user_prompt`
    from ``extra_info['prompt']`` (or ``question``, or verl's ``raw_prompt`` messages)."""
    info = extra_info or {}
    for key in ("prompt", "question", "raw_prompt"):
        value = user_prompt(info.get(key))
        if value and value.strip():
            return value
    raise ValueError("safety item without the user prompt: put it in extra_info['prompt']")


class RewardRouter:
    """Reward settings parsed once, for callers that score many items (the verl reward
    manager, the reward server): per-item work is then only the scoring itself.

    ``settings`` is the flat mapping of ``compute_score``'s keyword arguments. Invalid
    values fail here, at construction, not at the first item.
    """

    def __init__(
        self, settings: RewardSettings | Mapping[str, Any] | None = None, guard: Guard | None = None
    ):
        if not isinstance(settings, RewardSettings):
            settings = RewardSettings.from_kwargs(settings)
        self.settings = settings
        self.safety = settings.safety
        self.math = settings.math
        self._guard = guard
        if guard is None and settings.guard.backend == "ray_pool":
            # attaching does blocking Ray calls: do it here (sync construction), never from
            # inside the event loop that scores trajectories
            self._guard = get_guard(settings.guard)

    @property
    def guard(self) -> Guard:
        """The guard, built (or attached) on first use: a math-only run needs none."""
        if self._guard is None:
            self._guard = get_guard(self.settings.guard)
        return self._guard

    async def score(
        self,
        data_source: str | None,
        solution_str: str,
        ground_truth: Any = None,
        extra_info: Mapping[str, Any] | None = None,
        *,
        trace_opened_in_prompt: bool = False,
    ) -> dict[str, float]:
        """Score one response. ``trace_opened_in_prompt``: the chat template ended the prompt
        with ``<think>`` (DeepSeek-R1-distill, Qwen3 thinking), so the response starts inside
        the trace and only a ``</think>`` in it separates an answer; without one it was cut off."""
        if trace_opened_in_prompt and THINK_OPEN not in solution_str:
            solution_str = THINK_OPEN + solution_str
        if resolve_task(data_source, extra_info) == "math":
            from sinternal_verl.rewards.math import score_math as math_score

            _check_ground_truth(ground_truth)
            # a symbolic comparison can block up to its time limit: keep it off the event loop
            res = await asyncio.to_thread(math_score, solution_str, ground_truth, self.math)
            return _math_result(res)
        res = await safety_score(prompt_text(extra_info), solution_str, extra_info, self.guard, self.safety)
        out = _blank()
        out.update(res)
        return out


async def compute_score_async(
    data_source: str | None,
    solution_str: str,
    ground_truth: Any = None,
    extra_info: Mapping[str, Any] | None = None,
    *,
    guard: Guard | None = None,
    **kwargs: Any,
) -> dict[str, float]:
    """verl's reward-function signature, async. ``kwargs`` are the reward settings: guard keys
    (``guard_urls``, ``guard_kind``, ...; see :class:`GuardConfig`), safety keys (see
    :class:`SafetyRewardConfig`) and ``math_*`` keys for the math reward. Scoring many items
    with the same settings? Hold a :class:`RewardRouter` instead."""
    return await RewardRouter(_settings(kwargs), guard=guard).score(
        data_source, solution_str, ground_truth, extra_info
    )


# ---- sync entry point ----------------------------------------------------------------------
class _Portal:
    """A private event loop in a daemon thread, so the sync API can share one async guard
    client (and its connection pool) across every calling thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, name="sinternal-reward-loop", daemon=True).start()

    def run(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()


_PORTAL: _Portal | None = None
_PORTAL_LOCK = threading.Lock()


def _portal() -> _Portal:
    global _PORTAL
    with _PORTAL_LOCK:
        if _PORTAL is None:
            _PORTAL = _Portal()
        return _PORTAL


def compute_score(
    data_source: str | None,
    solution_str: str,
    ground_truth: Any = None,
    extra_info: Mapping[str, Any] | None = None,
    **kwargs: Any,
) -> dict[str, float]:
    """Synchronous twin of :func:`compute_score_async` (for ``reward.custom_reward_function``
    with verl's stock managers, and plain scripts). Math never touches an event loop."""
    if resolve_task(data_source, extra_info) == "math":
        return score_math(solution_str, ground_truth, **kwargs)
    return _portal().run(compute_score_async(data_source, solution_str, ground_truth, extra_info, **kwargs))
