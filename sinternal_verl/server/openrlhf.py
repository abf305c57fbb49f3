"""OpenRLHF's remote reward dialect (``/get_reward``) translated to and from scoring items.

OpenRLHF posts ``{"query", "prompts", "labels"}``: ``query`` is the decoded prompt +
response with the chat template's markup, ``prompts`` the decoded prompts, ``labels`` the
dataset's ``--data.label_key`` column. The split and the markup are read by
:mod:`sinternal_verl.trajectory` (the same reader as every other front end), which also
tells whether the template opened a reasoning trace (R1-distill / Qwen3 thinking): then a
response cut off inside the trace is scored as truncated, not as an answer.

OpenRLHF needs a number for every query, so an item that fails on its own fails the whole
request (422) unless ``openrlhf_error_reward`` is set.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from pydantic import ValidationError

from sinternal_verl.rewards import RESULT_KEYS
from sinternal_verl.trajectory import split_templated

from .errors import ApiError
from .protocol import OpenRLHFRequest, OpenRLHFResponse, ScoreItem, parse_label
from .scoring import ItemOutcome


def _short(exc: Exception) -> str:
    text = str(exc)
    return text if len(text) <= 500 else text[:500] + "..."


def texts(req: OpenRLHFRequest) -> list[tuple[str, str | None]]:
    """``(where, text)`` pairs for the length limit; dict labels are measured as JSON."""
    out: list[tuple[str, str | None]] = [(f"query[{i}]", q) for i, q in enumerate(req.query)]
    out += [(f"prompts[{i}]", p) for i, p in enumerate(req.prompts or [])]
    for i, label in enumerate(req.labels or []):
        shown = json.dumps(label, ensure_ascii=False, default=str) if isinstance(label, dict) else label
        out.append((f"labels[{i}]", shown))
    return out


def to_items(req: OpenRLHFRequest) -> list[ScoreItem]:
    n = len(req.query)
    prompts = req.prompts or [None] * n
    labels = req.labels or [None] * n
    items: list[ScoreItem] = []
    for i in range(n):
        try:
            traj = split_templated(req.query[i], prompts[i])
            fields = parse_label(labels[i])
            fields.pop("id", None)
            fields["trace_opened_in_prompt"] = bool(fields.get("trace_opened_in_prompt")) or traj.trace_opened
            items.append(ScoreItem(prompt=traj.prompt, response=traj.response, **fields))
        except (ValueError, ValidationError, TypeError) as exc:
            raise ApiError(422, f"item {i}: {_short(exc)}", "BadRequestError") from None
    return items


def to_response(outcomes: Sequence[ItemOutcome], error_reward: float | None) -> OpenRLHFResponse:
    failed = [(i, o.error) for i, o in enumerate(outcomes) if o.error]
    if failed and error_reward is None:
        shown = "; ".join(f"item {i}: {e}" for i, e in failed[:5])
        raise ApiError(
            422,
            f"{len(failed)} of {len(outcomes)} item(s) could not be scored ({shown}); start the server with "
            "--openrlhf-error-reward X to use X for such items instead (flagged in extra_logs.reward_error)",
            "ItemError",
        )
    rewards: list[float] = []
    logs: dict[str, list[float]] = {k: [] for k in RESULT_KEYS if k != "score"}
    logs["reward_error"] = []
    for o in outcomes:
        values = o.values or {}
        rewards.append(float(error_reward) if o.error else float(values["score"]))  # type: ignore[arg-type]
        for k in logs:
            if k != "reward_error":
                logs[k].append(float(values.get(k, 0.0)))
        logs["reward_error"].append(1.0 if o.error else 0.0)
    return OpenRLHFResponse(rewards=rewards, scores=list(rewards), extra_logs=logs)
