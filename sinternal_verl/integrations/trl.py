"""TRL ``reward_funcs`` adapter: the sinternal safety + math reward, from the reward server.

TRL's GRPO / RLOO trainers call each reward function as
``f(prompts=..., completions=..., completion_ids=..., **dataset_columns)`` and accept
``async def`` functions, which they run concurrently with the other reward functions.
``prompts`` / ``completions`` are strings (standard format) or lists of chat messages
(conversational format); both are handled. Dataset columns supply the item fields:
``task``, ``prompt_type``, ``ground_truth`` (also read from ``solution`` / ``answer``),
``data_source``.

Usage::

    from sinternal_verl.integrations.trl import make_reward_func
    trainer = GRPOTrainer(..., reward_funcs=[make_reward_func("http://127.0.0.1:8900")])

A per-item failure raises by default (a made-up 0 would train the policy on noise); pass
``on_item_error="none"`` to return ``None`` for such items, which TRL treats as "no reward
from this function" (NaN, ignored in the weighted sum).
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

from sinternal_verl.client import ItemScoreError, RewardClient

GROUND_TRUTH_COLUMNS = ("ground_truth", "solution", "answer")


def _text(x: Any, last_role: str | None = None) -> str:
    """A string, or the content of a chat-message list (the last ``last_role`` turn)."""
    if isinstance(x, str):
        return x
    if isinstance(x, dict):
        return str(x.get("content", ""))
    if isinstance(x, (list, tuple)):
        msgs = [m for m in x if isinstance(m, dict)]
        if last_role:
            picked = [m for m in msgs if m.get("role") == last_role]
            msgs = picked[-1:] if picked else msgs[-1:]
        return "".join(str(m.get("content", "")) for m in msgs)
    raise TypeError(f"unsupported prompt/completion type {type(x).__name__}")


def _column(kwargs: dict[str, Any], names: Sequence[str], i: int) -> Any:
    for name in names:
        col = kwargs.get(name)
        if col is not None:
            return col[i]
    return None


def build_items(prompts: Sequence[Any], completions: Sequence[Any], **kwargs: Any) -> list[dict[str, Any]]:
    if len(prompts) != len(completions):
        raise ValueError(f"{len(prompts)} prompts but {len(completions)} completions")
    items = []
    for i, (p, c) in enumerate(zip(prompts, completions)):
        item: dict[str, Any] = {"id": i, "prompt": _text(p, "user"), "response": _text(c, "assistant")}
        for key, names in (("task", ("task",)), ("prompt_type", ("prompt_type",)), ("data_source", ("data_source",)),
                           ("ground_truth", GROUND_TRUTH_COLUMNS)):
            value = _column(kwargs, names, i)
            if value is not None:
                item[key] = str(value)
        items.append(item)
    return items


def make_reward_func(
    url: str | RewardClient, *, on_item_error: str = "raise", name: str = "sinternal_reward", **client_kw: Any
) -> Callable[..., Any]:
    """An ``async def`` reward function for TRL bound to one reward server."""
    if on_item_error not in ("raise", "none"):
        raise ValueError("on_item_error must be 'raise' or 'none'")
    client = url if isinstance(url, RewardClient) else RewardClient(url, **client_kw)

    async def reward_func(prompts: Sequence[Any], completions: Sequence[Any], **kwargs: Any) -> list[float | None]:
        items = build_items(prompts, completions, **kwargs)
        results = await client.ascore(items)
        errors = [(i, r["error"]) for i, r in enumerate(results) if r.get("error")]
        if errors and on_item_error == "raise":
            raise ItemScoreError(errors)
        return [None if r.get("error") else float(r["score"]) for r in results]

    reward_func.__name__ = reward_func.__qualname__ = name  # TRL logs rewards under the function's name
    reward_func.client = client  # type: ignore[attr-defined]
    return reward_func
