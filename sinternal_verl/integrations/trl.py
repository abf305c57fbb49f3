"""TRL ``reward_funcs`` adapter: the sinternal safety + math reward, from the reward server.

TRL's GRPO / RLOO trainers call each reward function as
``f(prompts=..., completions=..., completion_ids=..., **dataset_columns)`` and run ``async``
ones concurrently with the other reward functions. ``prompts`` / ``completions`` are strings
(standard format) or lists of chat messages (conversational format); both are read by
:mod:`sinternal_verl.trajectory`, which also rejoins an assistant message's separate
``reasoning_content`` as ``<think>...</think>``. Dataset columns supply the item fields:
``task``, ``prompt_type``, ``ground_truth`` (also read from ``solution`` / ``answer``),
``data_source``.

Usage::

    from sinternal_verl.integrations.trl import SInternalReward
    trainer = GRPOTrainer(..., reward_funcs=[SInternalReward("http://127.0.0.1:8900")])

``trace_opened_in_prompt``: R1-distill and Qwen3-thinking chat templates end the prompt with
``<think>``, and TRL's completion then starts inside the trace; a completion cut off there
has no answer and must score as truncated. ``True`` says so for every item, ``None``
(default) reads it from string prompts that end with ``<think>``; conversational prompts
carry no template, so pass ``True`` for such models.

A per-item failure raises by default (a made-up 0 would train the policy on noise); pass
``on_item_error="none"`` to return ``None`` for such items, which TRL treats as "no reward
from this function" (NaN, ignored in the weighted sum).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sinternal_verl.client import ItemScoreError, RewardClient
from sinternal_verl.trajectory import completion_text, trace_opened, user_prompt

__all__ = ["SInternalReward", "build_items", "make_reward_func"]

GROUND_TRUTH_COLUMNS = ("ground_truth", "solution", "answer")
ITEM_ERROR_MODES = ("raise", "none")


def _column(kwargs: dict[str, Any], names: Sequence[str], i: int) -> Any:
    for name in names:
        col = kwargs.get(name)
        if col is not None:
            return col[i]
    return None


def build_items(
    prompts: Sequence[Any],
    completions: Sequence[Any],
    trace_opened_in_prompt: bool | None = None,
    **kwargs: Any,
) -> list[dict[str, Any]]:
    """``/v1/score`` items from TRL's arguments (``None``: the trace opening read from the prompt)."""
    if len(prompts) != len(completions):
        raise ValueError(f"{len(prompts)} prompts but {len(completions)} completions")
    items = []
    for i, (p, c) in enumerate(zip(prompts, completions)):
        opened = trace_opened(p) if trace_opened_in_prompt is None else bool(trace_opened_in_prompt)
        item: dict[str, Any] = {"id": i, "prompt": user_prompt(p) or "", "response": completion_text(c)}
        if opened:
            item["trace_opened_in_prompt"] = True
        for key, names in (
            ("task", ("task",)),
            ("prompt_type", ("prompt_type",)),
            ("data_source", ("data_source",)),
            ("ground_truth", GROUND_TRUTH_COLUMNS),
        ):
            value = _column(kwargs, names, i)
            if value is not None:
                item[key] = str(value)
        items.append(item)
    return items


@dataclass
class _Options:
    """What an :class:`SInternalReward` is; the HTTP client is rebuilt after unpickling (its
    connections belong to one process)."""

    url: str
    on_item_error: str = "raise"
    trace_opened_in_prompt: bool | None = None
    client_kw: dict[str, Any] = field(default_factory=dict)
    client: RewardClient | None = field(default=None, repr=False, compare=False)

    def get_client(self) -> RewardClient:
        if self.client is None:
            self.client = RewardClient(self.url, **self.client_kw)
        return self.client

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "client": None}


async def _reward(
    opts: _Options, prompts: Sequence[Any], completions: Sequence[Any], **kwargs: Any
) -> list[float | None]:
    items = build_items(prompts, completions, opts.trace_opened_in_prompt, **kwargs)
    results = await opts.get_client().ascore(items)
    errors = [(i, r["error"]) for i, r in enumerate(results) if r.get("error")]
    if errors and opts.on_item_error == "raise":
        raise ItemScoreError(errors)
    return [None if r.get("error") else float(r["score"]) for r in results]


def _rebuild(opts: _Options, name: str) -> SInternalReward:
    return SInternalReward._make(opts, name)


class SInternalReward(functools.partial):
    """A TRL reward function bound to one reward server: ``await reward(prompts=..., completions=...)``.

    Picklable (TRL and ``accelerate`` may copy reward functions to other processes; the HTTP
    client is rebuilt there). It is a ``functools.partial`` of an ``async def`` on purpose:
    TRL picks its async, concurrent path with ``inspect.iscoroutinefunction``, which sees
    through a partial but not through an object with an ``async __call__`` (Python 3.11).
    """

    def __new__(
        cls,
        url: str | RewardClient,
        *,
        on_item_error: str = "raise",
        name: str = "sinternal_reward",
        trace_opened_in_prompt: bool | None = None,
        **client_kw: Any,
    ) -> SInternalReward:
        if on_item_error not in ITEM_ERROR_MODES:
            raise ValueError(f"on_item_error must be one of {ITEM_ERROR_MODES}, got {on_item_error!r}")
        if isinstance(url, RewardClient):
            kw = {k: v for k, v in dataclasses.asdict(url.config).items() if k != "url"}
            opts = _Options(url.config.url, on_item_error, trace_opened_in_prompt, kw, client=url)
        else:
            opts = _Options(url, on_item_error, trace_opened_in_prompt, dict(client_kw))
        return cls._make(opts, name)

    @classmethod
    def _make(cls, opts: _Options, name: str) -> SInternalReward:
        self = super().__new__(cls, _reward, opts)
        self.__name__ = self.__qualname__ = name  # TRL logs rewards under the function's name
        return self

    def __reduce__(self):
        return _rebuild, (self.args[0], self.__name__)

    @property
    def client(self) -> RewardClient:
        return self.args[0].get_client()

    @property
    def options(self) -> _Options:
        return self.args[0]


def make_reward_func(url: str | RewardClient, **kwargs: Any) -> SInternalReward:
    """``SInternalReward(url, **kwargs)`` (the older name)."""
    return SInternalReward(url, **kwargs)
