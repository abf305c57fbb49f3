"""Settings of the strict boxed math reward.

Every knob of the reward lives here so a recipe can override it (``**cfg`` of
:func:`compute_math_score`, or ``+reward.reward_kwargs.*`` in verl) instead of it being a
constant buried in the code.
"""

from __future__ import annotations

from typing import Any, Mapping

from pydantic import model_validator

from sinternal_verl.settings import Settings, load, setting

#: unit words dropped after a number (``10 cm``, ``\\text{ cm}`` is handled generically).
DEFAULT_UNITS: tuple[str, ...] = (
    "cm", "mm", "km", "m", "meters", "meter", "metres", "inches", "inch", "in", "feet", "foot", "ft",
    "yards", "yard", "miles", "mile", "mph", "kg", "g", "grams", "gram", "pounds", "pound", "lbs", "lb",
    "seconds", "second", "sec", "s", "minutes", "minute", "min", "hours", "hour", "hrs", "hr", "days", "day",
    "weeks", "years", "degrees", "degree", "deg", "units", "unit", "square units", "sq units", "cents",
    "cent", "dollars", "dollar", "liters", "litres", "liter", "l", "ml", "points", "ways", "students",
)


class MathRewardConfig(Settings):
    """How a boxed answer is scored.

    The symbolic fallback runs in a separate worker process so that a pathological answer
    (``9^{9^{9^9}}``) can be *killed* when its time is up; a thread cannot be stopped.
    """

    correct_score: float = setting(1.0, "reward for a correct answer")
    incorrect_score: float = setting(0.0, "reward for an incorrect or missing answer")
    symbolic: bool = setting(True, "use sympy when normalized strings and exact numbers disagree")
    symbolic_timeout_s: float = setting(5.0, "wall-clock limit of one symbolic comparison (seconds); past it the worker is killed")
    symbolic_budget_s: float = setting(10.0, "total symbolic budget of one score call (a tuple of 10 items makes up to 10 comparisons)")
    symbolic_workers: int = setting(2, "worker processes per host process (concurrent scorers share them); with 2, a timed-out worker restarts in the background while the other keeps answering")
    symbolic_startup_timeout_s: float = setting(60.0, "how long a fresh worker may take to import sympy and say it is ready")
    symbolic_warmup: bool = setting(True, "run a few comparisons in a fresh worker before it takes answers: sympy loads lazily and its first simplify costs ~1 s, which must not eat an answer's time limit")
    symbolic_max_memory_mb: int = setting(4096, "address-space cap of a worker (MiB), 0 for none: a runaway power dies with MemoryError")
    symbolic_max_chars: int = setting(400, "answers longer than this (characters, after extraction) never reach sympy")
    symbolic_cache_size: int = setting(4096, "remembered symbolic verdicts per process (identical rollouts are common in GRPO)")
    numeric_max_exponent: int = setting(1000, "numbers written with a larger decimal exponent skip the exact path (10^{10^9} is not built)")
    symbolic_max_power_digits: int = setting(100_000, "an answer containing an integer power with more decimal digits than this anywhere in it (``9^{9^{9^9}}+1``) never reaches sympy, which would try to build it and burn the whole time limit; it counts as not equal. 0 turns the check off (the time limit still holds).")
    numeric_rel_tol: float = setting(0.0, "relative tolerance of the exact numeric path (0 = exact; 0.333 != 1/3)")
    think_open: str = setting("<think>", "opens a reasoning trace; an answer after think_close is then required")
    think_close: str = setting("</think>", "closes the reasoning trace")
    units: tuple[str, ...] = setting(DEFAULT_UNITS, "unit words dropped after a number")

    @model_validator(mode="after")
    def _check(self) -> "MathRewardConfig":
        if self.symbolic_timeout_s <= 0 or self.symbolic_budget_s <= 0:
            raise ValueError("symbolic_timeout_s and symbolic_budget_s must be > 0")
        if self.symbolic_workers < 1:
            raise ValueError("symbolic_workers must be >= 1")
        return self

    @classmethod
    def from_kwargs(cls, cfg: Mapping[str, Any] | None = None, **kwargs: Any) -> "MathRewardConfig":
        """Build from a mapping/kwargs, rejecting unknown keys (a typo must not be ignored)."""
        merged = dict(cfg or {})
        merged.update(kwargs)
        return load(cls, merged, env={}, where="math reward settings", prefix="math_")
