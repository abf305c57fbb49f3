"""Settings of the strict boxed math reward.

Every knob of the reward lives here so a recipe can override it (``**cfg`` of
:func:`compute_math_score`, or ``+reward.reward_kwargs.*`` in verl) instead of it being a
constant buried in the code.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Mapping

#: unit words dropped after a number (``10 cm``, ``\\text{ cm}`` is handled generically).
DEFAULT_UNITS: tuple[str, ...] = (
    "cm", "mm", "km", "m", "meters", "meter", "metres", "inches", "inch", "in", "feet", "foot", "ft",
    "yards", "yard", "miles", "mile", "mph", "kg", "g", "grams", "gram", "pounds", "pound", "lbs", "lb",
    "seconds", "second", "sec", "s", "minutes", "minute", "min", "hours", "hour", "hrs", "hr", "days", "day",
    "weeks", "years", "degrees", "degree", "deg", "units", "unit", "square units", "sq units", "cents",
    "cent", "dollars", "dollar", "liters", "litres", "liter", "l", "ml", "points", "ways", "students",
)


@dataclass(frozen=True)
class MathRewardConfig:
    """How a boxed answer is scored.

    The symbolic fallback runs in a separate worker process so that a pathological answer
    (``9^{9^{9^9}}``) can be *killed* when its time is up; a thread cannot be stopped.
    """

    #: reward for a correct / an incorrect (or missing) answer
    correct_score: float = 1.0
    incorrect_score: float = 0.0
    #: use sympy when normalized strings and exact numbers disagree
    symbolic: bool = True
    #: wall-clock limit of one symbolic comparison (seconds); past it the worker is killed
    symbolic_timeout_s: float = 5.0
    #: total symbolic budget of one score call (a tuple of 10 items makes up to 10 comparisons)
    symbolic_budget_s: float = 10.0
    #: worker processes per host process (concurrent scorers share them); with 2, a timed-out
    #: worker restarts in the background while the other keeps answering
    symbolic_workers: int = 2
    #: how long a fresh worker may take to import sympy and say it is ready
    symbolic_startup_timeout_s: float = 60.0
    #: run a few comparisons in a fresh worker before it takes answers: sympy loads lazily and
    #: its first simplify costs ~1 s, which must not eat an answer's time limit
    symbolic_warmup: bool = True
    #: address-space cap of a worker (MiB), 0 for none: a runaway power dies with MemoryError
    symbolic_max_memory_mb: int = 4096
    #: answers longer than this (characters, after extraction) never reach sympy
    symbolic_max_chars: int = 400
    #: remembered symbolic verdicts per process (identical rollouts are common in GRPO)
    symbolic_cache_size: int = 4096
    #: numbers written with a larger decimal exponent skip the exact path (10^{10^9} is not built)
    numeric_max_exponent: int = 1000
    #: an answer containing an integer power with more decimal digits than this anywhere in it
    #: (``9^{9^{9^9}}+1``) never reaches sympy, which would try to build it and burn the whole
    #: time limit; it counts as not equal. 0 turns the check off (the time limit still holds).
    symbolic_max_power_digits: int = 100_000
    #: relative tolerance of the exact numeric path (0 = exact; 0.333 != 1/3)
    numeric_rel_tol: float = 0.0
    #: an answer after ``</think>`` is required when the response opened a trace
    think_open: str = "<think>"
    think_close: str = "</think>"
    #: unit words dropped after a number
    units: tuple[str, ...] = DEFAULT_UNITS

    @classmethod
    def from_kwargs(cls, cfg: Mapping[str, Any] | None = None, **kwargs: Any) -> "MathRewardConfig":
        """Build from a mapping/kwargs, rejecting unknown keys (a typo must not be ignored)."""
        merged = dict(cfg or {})
        merged.update(kwargs)
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(merged) - known)
        if unknown:
            raise TypeError(f"unknown math reward option(s) {unknown}; known: {sorted(known)}")
        if "units" in merged and not isinstance(merged["units"], tuple):
            merged["units"] = tuple(merged["units"])
        out = cls(**merged)
        if out.symbolic_timeout_s <= 0 or out.symbolic_budget_s <= 0:
            raise ValueError("symbolic_timeout_s and symbolic_budget_s must be > 0")
        if out.symbolic_workers < 1:
            raise ValueError("symbolic_workers must be >= 1")
        return out
