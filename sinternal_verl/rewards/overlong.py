"""DAPO's soft overlong penalty on top of the ``sinternal`` reward manager.

Why here: in verl the overlong penalty lives inside the ``dapo`` reward manager, which calls
verl's default scorer, not our guard + math router. Rather than fork either, this module
subclasses our manager and adds the penalty after scoring, with the same setting names as
verl's ``dapo`` manager so a DAPO user finds them where they expect::

    reward.reward_manager.source=importlib
    reward.reward_manager.name=SInternalOverlongRewardManager
    reward.reward_manager.module.path=pkg://sinternal_verl.rewards.overlong
    +reward.reward_kwargs.overlong_buffer_cfg.enable=true
    +reward.reward_kwargs.overlong_buffer_cfg.len=2048
    +reward.reward_kwargs.overlong_buffer_cfg.penalty_factor=1.0
    +reward.reward_kwargs.max_resp_len=8192

``source=importlib`` with a ``pkg://`` path imports the module by package name in every
reward worker, so no plugin line is needed. The class is also registered as
``sinternal_overlong`` for when the plugin imports this module.

Penalty (DAPO, eq. 13): with ``L`` the response length in tokens, ``L_max = max_resp_len``
and ``L_cache = len``, a response longer than ``L_max - L_cache`` loses
``(L - (L_max - L_cache)) / L_cache * penalty_factor`` (capped at ``penalty_factor`` by the
rollout's own length limit). ``score``/``acc`` in the extra info stay the task's own values
(dynamic sampling should look at task success, not length); the penalty is reported as
``overlong_reward`` and ``overlong`` (0/1), present on every sample, also when disabled.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Mapping

from verl import DataProto
from verl.experimental.reward_loop.reward_manager import register

from sinternal_verl.reward_manager import SInternalRewardManager, _plain

OVERLONG_KEYS = ("overlong_reward", "overlong")


@dataclass(frozen=True)
class OverlongConfig:
    enable: bool = False
    #: the soft buffer before the hard limit, in tokens (DAPO's L_cache)
    len: int = 0
    #: penalty at the hard limit
    penalty_factor: float = 1.0
    #: the rollout's response limit (DAPO's L_max); the recipes interpolate data.max_response_length
    max_resp_len: int | None = None

    def __post_init__(self) -> None:
        if not self.enable:
            return
        if self.max_resp_len is None:
            raise ValueError("overlong penalty enabled but reward_kwargs.max_resp_len is not set")
        if self.len <= 0:
            raise ValueError(
                f"overlong_buffer_cfg.len must be positive when the overlong penalty is enabled, got {self.len}; "
                "set overlong_buffer_cfg.enable=false to turn it off"
            )
        if self.max_resp_len < self.len:
            raise ValueError(f"max_resp_len ({self.max_resp_len}) must be >= overlong_buffer_cfg.len ({self.len})")
        if self.penalty_factor < 0:
            raise ValueError(f"overlong_buffer_cfg.penalty_factor must be >= 0, got {self.penalty_factor}")

    @classmethod
    def from_mapping(cls, settings: Mapping[str, Any] | None) -> "OverlongConfig":
        """From ``reward.reward_kwargs`` (verl's ``dapo`` manager names)."""
        settings = dict(settings or {})
        buffer = dict(settings.get("overlong_buffer_cfg") or {})
        unknown = set(buffer) - {"enable", "len", "penalty_factor", "log"}
        if unknown:
            raise ValueError(f"unknown overlong_buffer_cfg keys {sorted(unknown)}; known: enable, len, penalty_factor, log")
        max_len = settings.get("max_resp_len")
        return cls(
            enable=bool(buffer.get("enable", False)),
            len=int(buffer.get("len", 0) or 0),
            penalty_factor=float(buffer.get("penalty_factor", 1.0)),
            max_resp_len=None if max_len is None else int(max_len),
        )


def overlong_penalty(response_length: int, cfg: OverlongConfig) -> float:
    """The (non-positive) reward added to a response of ``response_length`` tokens."""
    if not cfg.enable:
        return 0.0
    expected = cfg.max_resp_len - cfg.len
    exceed = response_length - expected
    return float(min(-exceed / cfg.len * cfg.penalty_factor, 0.0))


@register("sinternal_overlong")
class SInternalOverlongRewardManager(SInternalRewardManager):
    """``sinternal`` rewards plus DAPO's soft overlong penalty."""

    # own class state: a process may also hold a plain ``sinternal`` manager (tests, evals)
    _class_initialized: ClassVar[bool] = False
    settings: ClassVar[dict[str, Any]] = {}
    overlong: ClassVar[OverlongConfig] = OverlongConfig()

    @classmethod
    def init_class(cls, config, tokenizer) -> None:
        if cls._class_initialized:
            return
        # validate before the parent marks the class initialised: a bad setting fails at start-up
        cls.overlong = OverlongConfig.from_mapping(_plain(config.reward.get("reward_kwargs")))
        super().init_class(config, tokenizer)

    async def run_single(self, data: DataProto) -> dict:
        out = await super().run_single(data)
        item = data[-1:][0]
        response_ids = item.batch["responses"]
        length = int(item.batch["attention_mask"][-response_ids.shape[-1] :].sum())
        penalty = overlong_penalty(length, self.overlong)
        out["reward_score"] = float(out["reward_score"]) + penalty
        out["reward_extra_info"]["overlong_reward"] = penalty
        out["reward_extra_info"]["overlong"] = float(penalty < 0)
        return out


__all__ = ["OVERLONG_KEYS", "OverlongConfig", "SInternalOverlongRewardManager", "overlong_penalty"]
