"""verl reward manager ``sinternal``: guard-judged safety reward + strict math reward.

Select it with::

    reward.reward_manager.source=register reward.reward_manager.name=sinternal
    +reward.reward_kwargs.guard_urls='http://guard-0:8000,http://guard-1:8000'

verl's ``RewardLoopWorker`` actors call :meth:`run_single` once per finished trajectory,
concurrently. The guard client shared by the class (bounded concurrency per URL, in-flight
de-duplication, LRU cache, retries) turns that burst into bounded guard traffic.

Settings come from ``reward.reward_kwargs`` (config) and ``SINTERNAL_GUARD_*`` env vars;
config wins. With ``reward.custom_reward_function.path`` set, the user's function is
called instead of our router, as with verl's own managers.
"""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import inspect
import logging
import weakref
from typing import Any, ClassVar

from omegaconf import DictConfig, OmegaConf
from verl import DataProto
from verl.experimental.reward_loop.reward_manager import register
from verl.experimental.reward_loop.reward_manager.base import RewardManagerBase

from sinternal_verl.rewards.router import RESULT_KEYS, RewardRouter
from sinternal_verl.rewards.settings import RewardSettings
from sinternal_verl.trajectory import trace_opened, user_prompt

logger = logging.getLogger(__name__)

#: prompt tokens decoded to see whether the chat template opened a reasoning trace
PROMPT_TAIL_TOKENS = 8


def user_prompt_from(non_tensor: dict[str, Any], extra_info: dict[str, Any]) -> str | None:
    """The user's request: ``extra_info['prompt']`` if the data has it, else the last user turn
    of verl's ``raw_prompt`` (the chat messages the rollout was prompted with)."""
    prompt = extra_info.get("prompt")
    if isinstance(prompt, str) and prompt.strip():
        return prompt
    return user_prompt(non_tensor.get("raw_prompt"))


def _plain(obj: Any) -> Any:
    return OmegaConf.to_container(obj, resolve=True) if isinstance(obj, DictConfig) else obj


def with_job_clients(settings: RewardSettings, num_workers: int | None) -> RewardSettings:
    """``settings`` with ``guard_limit_counts_clients`` = verl's ``reward.num_workers`` where it
    was left at 0. verl starts that many reward workers, each with its own guard client, and
    every one of them shares each guard URL: told how many they are, they keep the job's
    ``guard_limit_counts_share`` of the guard's batch waiting together, and read its
    ``/metrics`` at the job's ``guard_limit_counts_every_s`` together, instead of each (eight
    workers would queue eight times as much, and cost the guard eight times the readings)."""
    if settings.guard.limit_counts_clients or not num_workers:
        return settings
    guard = settings.guard.model_copy(update={"limit_counts_clients": int(num_workers)})
    return dataclasses.replace(settings, guard=guard)


@register("sinternal")
class SInternalRewardManager(RewardManagerBase):
    """Safety (guard) + math reward manager for verl's reward loop."""

    router: ClassVar[RewardRouter]
    #: sections a subclass adds to ``reward_kwargs`` (name -> (key prefix, settings class))
    extra_sections: ClassVar[dict] = {}
    _admission: ClassVar[weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore]]
    _max_in_flight: ClassVar[int]

    def __init__(
        self, config, tokenizer, compute_score, reward_router_address=None, reward_model_tokenizer=None
    ):
        super().__init__(config, tokenizer, compute_score)
        custom = (config.reward.get("custom_reward_function") or {}).get("path")
        self.user_fn = compute_score if custom else None
        self.user_fn_is_async = self.user_fn is not None and inspect.iscoroutinefunction(
            getattr(self.user_fn, "func", self.user_fn)
        )

    @classmethod
    def init_class(cls, config, tokenizer) -> None:
        if cls._class_initialized:
            return
        # Settings are parsed once for the worker; a misspelt key or a bad value fails at
        # start-up, not at the first trajectory. The guard itself is built on first use
        # (math-only runs need none).
        settings = RewardSettings.from_kwargs(
            _plain(config.reward.get("reward_kwargs")), extra_sections=cls.extra_sections
        )
        settings = with_job_clients(settings, config.reward.get("num_workers"))
        _raise_gc_threshold(settings.manager.gc_threshold)
        cls.router = RewardRouter(settings)
        cls._max_in_flight = settings.manager.max_trajectories_in_flight
        cls._admission = weakref.WeakKeyDictionary()
        cls._class_initialized = True

    async def run_single(self, data: DataProto) -> dict:
        loop = asyncio.get_running_loop()
        admission = self._admission.get(loop)
        if admission is None:
            admission = self._admission[loop] = asyncio.Semaphore(self._max_in_flight)
        async with admission:
            return await self._score(data)

    async def _score(self, data: DataProto) -> dict:
        # Read the last row's tensors directly: slicing a DataProto builds TensorDicts, which
        # costs more than the rest of the reward path when thousands of trajectories finish
        # at once. (Multi-sequence outputs: the reward is on the last sequence, as in verl.)
        batch, nt = data.batch, data.non_tensor_batch
        response_ids = batch["responses"][-1]
        valid_len = int(batch["attention_mask"][-1][-response_ids.shape[-1] :].sum())
        # Decoded inline, not in an executor: a fast tokenizer decodes a response in ~10 us, less
        # than the thread hop (measured in benchmarks/bench_reward_throughput.py).
        response_str = self.tokenizer.decode(response_ids[:valid_len], skip_special_tokens=True)
        # R1-distill / Qwen3-thinking templates end the prompt with "<think>": the response then
        # starts inside the trace, and a cut-off trace carries no tag at all.
        prompt_tail = self.tokenizer.decode(
            batch["prompts"][-1][-PROMPT_TAIL_TOKENS:], skip_special_tokens=False
        )
        opened = trace_opened(prompt_tail)

        data_source = nt["data_source"][-1] if "data_source" in nt else None
        ground_truth = (nt["reward_model"][-1] or {}).get("ground_truth") if "reward_model" in nt else None
        extra_info = dict(nt["extra_info"][-1] or {}) if "extra_info" in nt else {}
        prompt = user_prompt_from(
            {"raw_prompt": nt["raw_prompt"][-1]} if "raw_prompt" in nt else {}, extra_info
        )
        if prompt is not None:
            extra_info["prompt"] = prompt

        if self.user_fn is not None:
            kwargs = dict(
                data_source=data_source,
                solution_str=response_str,
                ground_truth=ground_truth,
                extra_info=extra_info,
            )
            if self.user_fn_is_async:
                result = await self.user_fn(**kwargs)
            else:
                result = await asyncio.get_running_loop().run_in_executor(
                    None, lambda: self.user_fn(**kwargs)
                )
            return _as_reward(result)

        result = await self.router.score(
            data_source, response_str, ground_truth, extra_info, trace_opened_in_prompt=opened
        )
        return {"reward_score": result["score"], "reward_extra_info": {k: result[k] for k in RESULT_KEYS}}


def _raise_gc_threshold(threshold: int) -> None:
    """Raise (never lower) the gen-0 GC threshold of this process; 0 leaves it alone.

    verl runs the manager in dedicated RewardLoopWorker processes, so the setting only
    affects reward scoring. Cyclic garbage is still collected, just in larger batches."""
    current = gc.get_threshold()
    if threshold > current[0]:
        gc.set_threshold(threshold, *current[1:])


def _as_reward(result: Any) -> dict:
    if isinstance(result, dict):
        extra = {k: v for k, v in result.items() if k != "reward"}
        return {"reward_score": float(result["score"]), "reward_extra_info": extra}
    return {"reward_score": float(result), "reward_extra_info": {"acc": float(result)}}


__all__ = ["SInternalRewardManager", "user_prompt_from"]
