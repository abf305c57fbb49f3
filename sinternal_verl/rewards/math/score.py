"""The reward itself: one response and its ground truth(s) in, the score dict out.

Settings are parsed once per distinct keyword set (cached), because verl calls the reward
function once per trajectory with the same ``reward_kwargs``.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from .config import MathRewardConfig
from .extract import clean_ground_truth, extract_answer
from .symbolic import get_pool
from .verify import verify

_STARTED: set[tuple] = set()
_STARTED_LOCK = threading.Lock()


def _pool_key(config: MathRewardConfig) -> tuple:
    return (
        config.symbolic_workers,
        config.symbolic_max_memory_mb,
        config.symbolic_startup_timeout_s,
        config.symbolic_cache_size,
        config.symbolic_warmup,
    )


def warm_up(config: MathRewardConfig | None = None, wait: bool = False) -> None:
    """Start (and warm) the symbolic workers of ``config`` now, in the background unless ``wait``.

    A fresh worker imports sympy and runs its warm-up comparisons (~1 s): paid here, at
    start-up, it never eats the time limit of the first symbolic answer. A comparison that
    arrives while the workers start simply waits for the first one ready."""
    config = config or MathRewardConfig()
    if not config.symbolic:
        return
    pool = get_pool(*_pool_key(config))
    if wait:
        pool.warmup()
        return
    with _STARTED_LOCK:
        key = (id(pool),) + _pool_key(config)
        if key in _STARTED:
            return
        _STARTED.add(key)
    threading.Thread(target=_warm_quietly, args=(pool,), name="math-symbolic-warmup", daemon=True).start()


def _warm_quietly(pool: Any) -> None:
    from .symbolic import SymbolicWorkerError

    try:
        pool.warmup()
    except SymbolicWorkerError:  # the first comparison retries the start and raises it
        pass


@lru_cache(maxsize=64)
def _config_cached(items: tuple) -> MathRewardConfig:
    return MathRewardConfig.from_kwargs(dict(items))


def _config(cfg: dict[str, Any]) -> MathRewardConfig:
    if "config" in cfg:
        if len(cfg) != 1:
            raise TypeError("pass either config= or individual options, not both")
        return cfg["config"]
    try:
        return _config_cached(tuple(sorted(cfg.items())))
    except TypeError:  # an unhashable value (a list of units): build it uncached
        return MathRewardConfig.from_kwargs(cfg)


def _golds(ground_truth: Any) -> list[str]:
    items: Sequence[Any] = ground_truth if isinstance(ground_truth, (list, tuple)) else [ground_truth]
    golds = [clean_ground_truth(str(g)) for g in items if g is not None]
    golds = [g for g in golds if g]
    if not golds:
        raise ValueError(f"math reward: empty ground truth {ground_truth!r}")
    return golds


def score_math(solution_str: str, ground_truth: Any, config: MathRewardConfig) -> dict[str, Any]:
    """Score one response. ``ground_truth`` may be boxed, ``$``-wrapped, or a list of
    acceptable answers. An empty ground truth raises ValueError (a data bug, not a 0)."""
    golds = _golds(ground_truth)
    if config.symbolic_prestart:
        warm_up(config)
    ext = extract_answer(solution_str or "", config.think_open, config.think_close)
    out: dict[str, Any] = {
        "score": config.incorrect_score,
        "acc": 0.0,
        "pred": ext.answer or "",
        "math_no_answer": float(ext.answer is None),
        "math_truncated": float(ext.reason == "truncated"),
        "math_timeout": 0.0,
        "math_symbolic": 0.0,
        "math_error": 0.0,
    }
    if ext.answer is None:
        return out
    for gold in golds:
        v = verify(ext.answer, gold, config)
        out["math_timeout"] = max(out["math_timeout"], float(v.timed_out))
        out["math_symbolic"] = max(out["math_symbolic"], float(v.symbolic_calls > 0))
        out["math_error"] = max(out["math_error"], float(v.error is not None))
        if v.correct:
            out["score"], out["acc"] = config.correct_score, 1.0
            break
    return out


def compute_math_score(solution_str: str, ground_truth: Any, **cfg: Any) -> dict[str, Any]:
    """Score one response; options are :class:`MathRewardConfig` fields (or ``config=``)."""
    return score_math(solution_str, ground_truth, _config(cfg))


async def compute_math_score_async(solution_str: str, ground_truth: Any, **cfg: Any) -> dict[str, Any]:
    """Same, off the event loop (a symbolic comparison may block up to its time limit)."""
    return await asyncio.to_thread(compute_math_score, solution_str, ground_truth, **cfg)


def compute_score(
    data_source: str, solution_str: str, ground_truth: Any, extra_info: Any = None, **cfg: Any
) -> dict[str, Any]:
    """verl ``custom_reward_function`` signature (``pkg://sinternal_verl.rewards.math``)."""
    return compute_math_score(solution_str, ground_truth, **cfg)
