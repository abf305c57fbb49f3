"""Strict boxed math reward: the last ``\\boxed{}`` of the final answer (after
``</think>``), normalized, compared exactly for numbers and symbolically (time-limited,
in a worker process) for expressions.

Public API::

    compute_math_score(solution_str, ground_truth, **cfg) -> dict
    await compute_math_score_async(solution_str, ground_truth, **cfg)
    compute_score(data_source, solution_str, ground_truth, extra_info=None, **cfg)  # verl signature

The dict always has the same keys, all numeric except ``pred``: ``score``, ``acc``,
``pred`` (the box content, "" when none), ``math_no_answer``, ``math_truncated``,
``math_timeout``, ``math_symbolic``, ``math_error``.
"""

from __future__ import annotations

import asyncio
from functools import lru_cache
from typing import Any, Sequence

from .config import DEFAULT_UNITS, MathRewardConfig
from .extract import Extraction, clean_ground_truth, extract_answer, last_boxed
from .normalize import normalize, parse_number, parse_structure
from .symbolic import SymbolicWorkerError, get_pool, shutdown_pools
from .verify import Verdict, verify

__all__ = [
    "DEFAULT_UNITS", "Extraction", "MathRewardConfig", "SymbolicWorkerError", "Verdict", "clean_ground_truth",
    "compute_math_score", "compute_math_score_async", "compute_score", "extract_answer", "get_pool",
    "last_boxed", "normalize", "parse_number", "parse_structure", "score_math", "shutdown_pools", "verify",
]


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
    ext = extract_answer(solution_str or "", config.think_open, config.think_close)
    out: dict[str, Any] = {
        "score": config.incorrect_score, "acc": 0.0, "pred": ext.answer or "",
        "math_no_answer": float(ext.answer is None), "math_truncated": float(ext.reason == "truncated"),
        "math_timeout": 0.0, "math_symbolic": 0.0, "math_error": 0.0,
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


def compute_score(data_source: str, solution_str: str, ground_truth: Any, extra_info: Any = None,
                  **cfg: Any) -> dict[str, Any]:
    """verl ``custom_reward_function`` signature (``pkg://sinternal_verl.rewards.math``)."""
    return compute_math_score(solution_str, ground_truth, **cfg)
