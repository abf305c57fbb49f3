"""Start-up checks of the sections a run hands to other tools.

``verification_data.pipeline``, ``rl.reward_kwargs`` and the ``eval`` section are plain
mappings in :class:`~.config.RunConfig` (the run fills in paths before handing them on), so
their own settings classes would only see them when their stage starts: on a GPU cluster a
typo in the reward settings would surface hours in, after SFT. Each is checked here, by the
settings class that will read it, before the first stage runs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..settings import ConfigError, load
from .config import RunConfig


def _problems(where: str, check: Callable[[], Any]) -> list[str]:
    try:
        check()
    except ConfigError as exc:
        lines = str(exc).splitlines()
        body = lines[1:] if lines[0].startswith("invalid ") else lines
        return [f"  {where}: {line.strip()}" for line in body]
    return []


def check_sections(cfg: RunConfig) -> None:
    """Raise :class:`ConfigError` naming every problem in the handed-on sections."""
    from ..data.config import PipelineConfig
    from ..eval.config import (
        BenchmarkSpec,
        EvalConfig,
        GenerationSettings,
        GuardJudgeSettings,
        VerificationSettings,
    )
    from ..rewards.settings import RewardSettings

    ev = cfg.eval
    problems = [
        *_problems(
            "verification_data.pipeline", lambda: PipelineConfig.from_mapping(cfg.verification_data.pipeline)
        ),
        *_problems("rl.reward_kwargs", lambda: RewardSettings.from_kwargs(cfg.rl.reward_kwargs, env={})),
        *_problems("eval.judge", lambda: load(GuardJudgeSettings, ev.judge, env={})),
        *_problems("eval.verification", lambda: load(VerificationSettings, ev.verification, env={})),
        *_problems("eval.generation", lambda: load(GenerationSettings, ev.generation, env={})),
    ]
    for i, bench in enumerate(ev.benchmarks):
        problems += _problems(f"eval.benchmarks.{i}", lambda b=bench: load(BenchmarkSpec, b, env={}))
    unknown = sorted(set(ev.extra) - set(EvalConfig.model_fields))
    problems += [f"  eval.extra: unknown EvalConfig key {k!r}" for k in unknown]
    if problems:
        raise ConfigError("invalid run config (sections handed to other tools):\n" + "\n".join(problems))
