"""Reward settings: verl's flat ``reward.reward_kwargs``, split into one section per concern.

verl hands every reward worker one flat mapping (``+reward.reward_kwargs.*``). Each key
belongs to exactly one section, by prefix: ``guard_<field>`` to :class:`GuardConfig`,
``math_<field>`` to :class:`MathRewardConfig`, unprefixed keys to the safety reward or the
manager. A key that no section knows fails when the reward worker starts, with the nearest
known key suggested: ``controversal=loose`` must not train with ``strict``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sinternal_verl.guards.config import PREFIX as GUARD_PREFIX
from sinternal_verl.guards.config import GuardConfig
from sinternal_verl.rewards.math.config import MathRewardConfig
from sinternal_verl.rewards.safety import SafetyRewardConfig
from sinternal_verl.settings import Settings, load_flat, setting, settings_table

MATH_PREFIX = "math_"


class ManagerSettings(Settings):
    """Throughput settings of the ``sinternal`` reward manager inside verl's reward workers."""

    max_trajectories_in_flight: int = setting(
        256,
        "trajectories one reward worker scores at once; keeps a whole batch from decoding and building "
        "requests before the first reaches the guard",
        ge=1,
    )
    gc_threshold: int = setting(
        10_000,
        "raises Python's gen-0 GC threshold in reward workers (0 = leave it): with verl's per-trajectory "
        "slices alive, the default cost ~40% of the manager's CPU",
        ge=0,
    )


#: section name -> (key prefix in reward_kwargs, settings class)
SECTIONS: dict[str, tuple[str, type[Settings]]] = {
    "guard": (GUARD_PREFIX, GuardConfig),
    "safety": ("", SafetyRewardConfig),
    "math": (MATH_PREFIX, MathRewardConfig),
    "manager": ("", ManagerSettings),
}


@dataclass(frozen=True)
class RewardSettings:
    """Every reward setting, parsed and checked once per worker."""

    guard: GuardConfig
    safety: SafetyRewardConfig
    math: MathRewardConfig
    manager: ManagerSettings
    #: sections added by a subclassing manager (e.g. the overlong penalty)
    extra: Mapping[str, Settings]

    @classmethod
    def from_kwargs(
        cls,
        kwargs: Mapping[str, Any] | None,
        *,
        env: Mapping[str, str] | None = None,
        extra_sections: Mapping[str, tuple[str, type[Settings]]] | None = None,
        where: str = "reward.reward_kwargs",
    ) -> RewardSettings:
        """Parse and check the flat mapping; ``env`` (default ``os.environ``) fills guard fields."""
        sections = {**SECTIONS, **(extra_sections or {})}
        kwargs = {k: v for k, v in dict(kwargs or {}).items() if v is not None}
        parsed = load_flat(sections, kwargs, env=os.environ if env is None else env, where=where)
        return cls(
            guard=parsed["guard"],
            safety=parsed["safety"],
            math=parsed["math"],
            manager=parsed["manager"],
            extra={k: parsed[k] for k in (extra_sections or {})},
        )


def settings_rows() -> list[tuple[str, str, str]]:
    """``(reward_kwargs key, default, doc)`` for every reward setting: the README table."""
    rows = []
    for prefix, cls in SECTIONS.values():
        rows.extend(settings_table(cls, prefix))
    return rows


__all__ = ["ManagerSettings", "RewardSettings", "SECTIONS", "settings_rows"]
