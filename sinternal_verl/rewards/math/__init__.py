"""Strict boxed math reward: the last ``\\boxed{}`` of the final answer (after
``</think>``), normalized, compared exactly for numbers and structures and symbolically
(time-limited, in a worker process) for expressions.

Public API::

    compute_math_score(solution_str, ground_truth, **cfg) -> dict
    await compute_math_score_async(solution_str, ground_truth, **cfg)
    compute_score(data_source, solution_str, ground_truth, extra_info=None, **cfg)  # verl signature

The dict always has the same keys, all numeric except ``pred``: ``score``, ``acc``,
``pred`` (the box content, "" when none), ``math_no_answer``, ``math_truncated``,
``math_timeout``, ``math_symbolic``, ``math_error``. The modules: :mod:`.extract` (where
the answer is), :mod:`.normalize` (canonical strings, exact numbers, structures),
:mod:`.relations` (equations, inequalities, ratios), :mod:`.verify` (the decision),
:mod:`.symbolic` (the worker pool), :mod:`.score` (the reward).
"""

from .config import MathRewardConfig
from .extract import clean_ground_truth, extract_answer
from .score import compute_math_score, compute_math_score_async, compute_score, score_math, warm_up
from .symbolic import SymbolicWorkerError, shutdown_pools
from .verify import Verdict, verify

__all__ = [
    "MathRewardConfig",
    "SymbolicWorkerError",
    "Verdict",
    "clean_ground_truth",
    "compute_math_score",
    "compute_math_score_async",
    "compute_score",
    "extract_answer",
    "score_math",
    "shutdown_pools",
    "verify",
    "warm_up",
]
