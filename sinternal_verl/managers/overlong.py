"""DAPO's soft overlong penalty on top of the ``sinternal`` reward manager.

Why here: in verl the overlong penalty lives inside the ``dapo`` reward manager, which calls
verl's default scorer, not our guard + math router. Rather than fork either, this module
subclasses our manager and adds the penalty after scoring, with the same setting names as
verl's ``dapo`` manager so a DAPO user finds them where they expect::

    reward.reward_manager.source=importlib
    reward.reward_manager.name=SInternalOverlongRewardManager
    reward.reward_manager.module.path=pkg://sinternal_verl.managers.overlong
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

from typing import ClassVar

from pydantic import model_validator
from verl import DataProto
from verl.experimental.reward_loop.reward_manager import register

from sinternal_verl.managers.sinternal import SInternalRewardManager
from sinternal_verl.settings import Settings, setting


class OverlongBuffer(Settings):
    """verl's ``overlong_buffer_cfg`` (the ``dapo`` manager's names)."""

    enable: bool = setting(False, "apply DAPO's soft overlong penalty")
    len: int = setting(0, "the soft buffer before the hard limit, in tokens (DAPO's L_cache)", ge=0)
    penalty_factor: float = setting(1.0, "penalty at the hard limit", ge=0)
    log: bool = setting(False, "accepted for verl compatibility; the penalty is always in the extra info")


class OverlongSettings(Settings):
    """The overlong section of ``reward.reward_kwargs``."""

    overlong_buffer_cfg: OverlongBuffer = setting(OverlongBuffer(), "DAPO's soft overlong buffer")
    max_resp_len: int | None = setting(
        None, "the rollout's response limit (DAPO's L_max); recipes interpolate data.max_response_length"
    )

    @model_validator(mode="after")
    def _check(self) -> OverlongSettings:
        buf = self.overlong_buffer_cfg
        if not buf.enable:
            return self
        if self.max_resp_len is None:
            raise ValueError("overlong penalty enabled but reward_kwargs.max_resp_len is not set")
        if buf.len <= 0:
            raise ValueError(
                f"overlong_buffer_cfg.len must be positive when the overlong penalty is enabled, got {buf.len}; "
                "set overlong_buffer_cfg.enable=false to turn it off"
            )
        if self.max_resp_len < buf.len:
            raise ValueError(
                f"max_resp_len ({self.max_resp_len}) must be >= overlong_buffer_cfg.len ({buf.len})"
            )
        return self


def OverlongConfig(
    *,
    enable: bool = False,
    len: int = 0,
    penalty_factor: float = 1.0,  # noqa: N802, A002
    max_resp_len: int | None = None,
) -> OverlongSettings:
    """Flat constructor of :class:`OverlongSettings` (tests and scripts)."""
    return OverlongSettings(
        overlong_buffer_cfg=OverlongBuffer(enable=enable, len=len, penalty_factor=penalty_factor),
        max_resp_len=max_resp_len,
    )


def overlong_penalty(response_length: int, cfg: OverlongSettings) -> float:
    """The (non-positive) reward added to a response of ``response_length`` tokens."""
    buf = cfg.overlong_buffer_cfg
    if not buf.enable:
        return 0.0
    expected = cfg.max_resp_len - buf.len
    exceed = response_length - expected
    return float(min(-exceed / buf.len * buf.penalty_factor, 0.0))


@register("sinternal_overlong")
class SInternalOverlongRewardManager(SInternalRewardManager):
    """``sinternal`` rewards plus DAPO's soft overlong penalty."""

    # own class state: a process may also hold a plain ``sinternal`` manager (tests, evals)
    _class_initialized: ClassVar[bool] = False
    extra_sections: ClassVar[dict] = {"overlong": ("", OverlongSettings)}
    overlong: ClassVar[OverlongSettings] = OverlongSettings()

    @classmethod
    def init_class(cls, config, tokenizer) -> None:
        if cls._class_initialized:
            return
        super().init_class(config, tokenizer)
        cls.overlong = cls.router.settings.extra["overlong"]

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


__all__ = ["OverlongConfig", "OverlongSettings", "SInternalOverlongRewardManager", "overlong_penalty"]
