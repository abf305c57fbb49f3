"""Settings of the strict boxed math reward.

Every knob of the reward lives here so a recipe can override it (``**cfg`` of
:func:`compute_math_score`, or ``+reward.reward_kwargs.math_<field>`` in verl) instead of it
being a constant buried in the code. One mechanism for all settings: :mod:`sinternal_verl.settings`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import field_validator

from sinternal_verl.settings import Settings, load, setting

#: unit words dropped after a number (``10 cm``, ``\\text{ cm}`` is handled generically).
DEFAULT_UNITS: tuple[str, ...] = (
    "cm",
    "mm",
    "km",
    "m",
    "meters",
    "meter",
    "metres",
    "inches",
    "inch",
    "in",
    "feet",
    "foot",
    "ft",
    "yards",
    "yard",
    "miles",
    "mile",
    "mph",
    "kg",
    "g",
    "grams",
    "gram",
    "pounds",
    "pound",
    "lbs",
    "lb",
    "seconds",
    "second",
    "sec",
    "s",
    "minutes",
    "minute",
    "min",
    "hours",
    "hour",
    "hrs",
    "hr",
    "days",
    "day",
    "weeks",
    "years",
    "degrees",
    "degree",
    "deg",
    "units",
    "unit",
    "square units",
    "sq units",
    "cents",
    "cent",
    "dollars",
    "dollar",
    "liters",
    "litres",
    "liter",
    "l",
    "ml",
    "points",
    "ways",
    "students",
)

#: words that mean "percent" after a number (``28 percent`` is ``28\\%``)
DEFAULT_PERCENT_WORDS: tuple[str, ...] = ("percentage", "percent", "pct")


class MathRewardConfig(Settings):
    """How a boxed answer is scored.

    The symbolic fallback runs in a separate worker process so that a pathological answer
    (``9^{9^{9^9}}``) can be *killed* when its time is up; a thread cannot be stopped.
    """

    correct_score: float = setting(1.0, "reward of a correct answer")
    incorrect_score: float = setting(0.0, "reward of an incorrect or missing answer")
    symbolic: bool = setting(True, "use sympy when normalized strings and exact numbers disagree")
    symbolic_timeout_s: float = setting(
        5.0, "wall-clock limit of one symbolic comparison (s); past it the worker is killed", gt=0
    )
    symbolic_budget_s: float = setting(
        10.0, "total symbolic time of one score call (a 10-tuple makes up to 10 comparisons)", gt=0
    )
    symbolic_workers: int = setting(
        2, "worker processes per host process; with 2 a timed-out one restarts while the other answers", ge=1
    )
    symbolic_startup_timeout_s: float = setting(
        60.0, "how long a fresh worker may take to import sympy and say it is ready", gt=0
    )
    symbolic_warmup: bool = setting(
        True, "run a few comparisons in a fresh worker before it takes answers (sympy loads lazily)"
    )
    symbolic_prestart: bool = setting(
        True, "start the workers when the settings are first used, not at the first symbolic answer"
    )
    symbolic_max_memory_mb: int = setting(4096, "address-space cap of a worker (MiB), 0 for none", ge=0)
    symbolic_max_chars: int = setting(400, "answers longer than this (characters) never reach sympy", ge=0)
    symbolic_cache_size: int = setting(4096, "remembered symbolic verdicts per process", ge=0)
    numeric_fast_path: bool = setting(
        True, "decide expressions in the subset it reads by 30-digit evaluation in-process (no worker)"
    )
    symbolic_probes: int = setting(
        4, "random points at which an identity in symbols is checked (all must vanish)", ge=1
    )
    symbolic_zero_tol: float = setting(
        1e-20, "|difference| below this at 30 digits counts as zero for a constant expression", gt=0
    )
    numeric_max_exponent: int = setting(
        1000, "numbers written with a larger decimal exponent skip the exact path", ge=1
    )
    symbolic_max_power_digits: int = setting(
        100_000, "an integer power with more decimal digits than this never reaches sympy (0: no check)", ge=0
    )
    numeric_rel_tol: float = setting(0.0, "relative tolerance of the exact numeric path (0 = exact)", ge=0)
    numeric_round_digits: int = setting(
        0,
        "a decimal with at least this many significant digits equals an exact value that rounds to it "
        "(0 = off: 0.333 is not 1/3)",
        ge=0,
    )
    thousands_separators: bool = setting(
        True, "read 1,000 / 1\\,000 / 1 000 as one number when the groups are real thousands groups"
    )
    think_open: str = setting("<think>", "opening tag of a reasoning trace")
    think_close: str = setting("</think>", "closing tag: the answer must follow it when a trace was opened")
    units: tuple[str, ...] = setting(DEFAULT_UNITS, "unit words dropped after a number")
    percent_words: tuple[str, ...] = setting(DEFAULT_PERCENT_WORDS, "words read as a percent sign")

    @field_validator("units", "percent_words", mode="before")
    @classmethod
    def _words(cls, v: Any) -> Any:
        if isinstance(v, str):
            return tuple(w.strip() for w in v.split("|") if w.strip())
        return tuple(v) if isinstance(v, (list, tuple)) else v

    @classmethod
    def from_kwargs(cls, cfg: Mapping[str, Any] | None = None, **kwargs: Any) -> MathRewardConfig:
        """Build from a mapping/kwargs; an unknown key raises ``ConfigError`` naming the nearest
        known key (a typo must not be ignored)."""
        merged = dict(cfg or {})
        merged.update(kwargs)
        return load(cls, merged, env={}, where="math reward settings")
