"""Rewards: safety (guard verdicts on the final answer), strict boxed math, and the router.

``compute_score`` / ``compute_score_async`` have verl's reward-function signature
``(data_source, solution_str, ground_truth, extra_info=None, **kwargs) -> dict``.
"""

from sinternal_verl.rewards.router import (
    RESULT_KEYS,
    RewardRouter,
    UnknownTaskError,
    compute_score,
    compute_score_async,
    get_guard,
    resolve_task,
)
from sinternal_verl.rewards.safety import GUARD_ERRORS, SafetyRewardConfig, safety_score
from sinternal_verl.rewards.settings import RewardSettings

__all__ = [
    "GUARD_ERRORS",
    "RESULT_KEYS",
    "RewardRouter",
    "RewardSettings",
    "SafetyRewardConfig",
    "UnknownTaskError",
    "compute_score",
    "compute_score_async",
    "get_guard",
    "resolve_task",
    "safety_score",
]
