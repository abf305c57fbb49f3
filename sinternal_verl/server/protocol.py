"""Wire types of the reward server, in one place (like vLLM's ``entrypoints/openai/protocol.py``).

Two request dialects share one scoring path:

* ``POST /v1/score`` -- our own: explicit items (prompt, response, task, ground truth,
  prompt type), one result per item with every reward field plus ``error``.
* ``POST /get_reward`` -- OpenRLHF's remote reward client as it ships
  (``{"query", "prompts", "labels"}`` in, ``{"rewards", "scores", "extra_logs"}`` out).

Limits (batch size, text length) are *runtime* settings (:class:`ServerSettings`), so they
are checked by the app after pydantic has validated the shape; both produce a 4xx with a
message. Text that is not valid Unicode (a lone surrogate such as ``"\ud800"``, valid JSON
but not encodable) is rejected here, with the field named, instead of failing deep inside
the guard client.
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

Task = Literal["safety", "math"]
PromptType = Literal["harmful", "benign"]

_SURROGATE = re.compile("[\ud800-\udfff]")


def valid_text(value: str) -> str:
    if _SURROGATE.search(value):
        raise ValueError("contains a lone UTF-16 surrogate (not valid Unicode text)")
    return value


#: a string that is valid Unicode (encodable as UTF-8)
Text = Annotated[str, AfterValidator(valid_text)]


class ScoreItem(BaseModel):
    """One trajectory to score.

    ``task`` picks the reward; when it is missing the reward core infers it from
    ``data_source`` (the same rule verl's reward manager uses). ``ground_truth`` is the math
    answer; safety items use ``prompt_type`` instead.
    """

    model_config = ConfigDict(extra="forbid")

    id: Text | int | None = Field(
        default=None, description="echoed back in the result, to match answers to inputs"
    )
    prompt: Text = Field(description="the user prompt (plain text, no chat-template markup)")
    response: Text = Field(description="the model's full output, reasoning trace included")
    task: Task | None = None
    data_source: Text | None = None
    ground_truth: Text | None = None
    prompt_type: PromptType | None = None
    trace_opened_in_prompt: bool = Field(
        default=False,
        description="the chat template ended the prompt with <think> (R1-distill, Qwen3 thinking): the response "
        "starts inside the trace, and one without </think> was cut off (scored as truncated)",
    )
    extra_info: dict[str, Any] | None = Field(
        default=None, description="passed through to the reward function"
    )

    @model_validator(mode="after")
    def _needs_task(self) -> ScoreItem:
        if self.task is None and not self.data_source:
            raise ValueError("each item needs `task` ('safety' or 'math') or a `data_source`")
        if self.task == "math" and self.ground_truth is None:
            raise ValueError("a math item needs `ground_truth`")
        return self


class ScoreRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    items: list[ScoreItem] = Field(min_length=1)


class ScoreResult(BaseModel):
    """The reward fields of one item (``sinternal_verl.rewards.RESULT_KEYS``) plus ``error``.

    On a per-item error every reward field is ``null`` and ``error`` says why: a failure is
    never dressed up as a 0 reward.
    """

    model_config = ConfigDict(extra="allow")

    id: str | int | None = None
    score: float | None = None
    error: str | None = None


class ScoreResponse(BaseModel):
    results: list[ScoreResult]
    #: items that failed on their own (their ``error`` is set)
    num_errors: int = 0


class OpenRLHFRequest(BaseModel):
    """What OpenRLHF's remote reward client posts (``remote_rm_fn``).

    ``query`` is the decoded prompt + response with chat markup and special tokens;
    ``prompts`` the decoded prompts (used to split each query and to see whether the
    template opened a reasoning trace); ``labels`` the dataset's
    ``--data.label_key`` column: a JSON object string with the item fields (``task``,
    ``prompt_type``, ``ground_truth``, optional ``data_source``) or a plain string, taken as
    a math ground truth.
    """

    model_config = ConfigDict(extra="allow")

    #: may be empty: OpenRLHF 0.10 splits a batch over every ``remote_rm_url`` and can send
    #: a server an empty share, which is answered with empty lists
    query: list[Text]
    prompts: list[Text] | None = None
    labels: list[Text | dict | None] | None = None

    @model_validator(mode="after")
    def _same_lengths(self) -> OpenRLHFRequest:
        n = len(self.query)
        if self.prompts is not None and len(self.prompts) != n:
            raise ValueError(f"`prompts` has {len(self.prompts)} entries, `query` has {n}")
        if self.labels is not None and len(self.labels) != n:
            raise ValueError(f"`labels` has {len(self.labels)} entries, `query` has {n}")
        return self


class OpenRLHFResponse(BaseModel):
    #: the training signal, one per query
    rewards: list[float]
    #: OpenRLHF logs these and uses them for dynamic filtering; same values as ``rewards``
    scores: list[float]
    #: per-query numeric side metrics (acc, safe, refused, ..., reward_error)
    extra_logs: dict[str, list[float]]


class ErrorBody(BaseModel):
    """Every non-2xx answer: ``{"error": {"message", "type", "code"}}``, OpenAI-style."""

    class Inner(BaseModel):
        message: str
        type: str
        code: int

    error: Inner


def parse_label(label: str | dict | None) -> dict[str, Any]:
    """Turn one OpenRLHF label into item fields.

    A JSON object (string or already decoded) gives the fields; any other non-empty string
    is a math ground truth. ``None`` / empty is an error: without a label the server cannot
    tell a math problem from a safety prompt.
    """
    if label is None or (isinstance(label, str) and not label.strip()):
        raise ValueError(
            "missing label: set OpenRLHF's --data.label_key to a column holding a JSON object "
            '(e.g. {"task": "safety", "prompt_type": "harmful"}) or a math answer string'
        )
    if isinstance(label, dict):
        fields = dict(label)
    else:
        text = label.strip()
        fields = None
        if text.startswith("{"):
            try:
                decoded = json.loads(text)
            except json.JSONDecodeError as exc:
                raise ValueError(f"label looks like JSON but does not parse: {exc}") from None
            if isinstance(decoded, dict):
                fields = decoded
        if fields is None:
            return {"task": "math", "ground_truth": label}
    allowed = {
        "task",
        "prompt_type",
        "ground_truth",
        "data_source",
        "extra_info",
        "id",
        "trace_opened_in_prompt",
    }
    unknown = set(fields) - allowed
    if unknown:
        raise ValueError(f"unknown label field(s) {sorted(unknown)}; allowed: {sorted(allowed)}")
    if fields.get("ground_truth") is not None and not isinstance(fields["ground_truth"], str):
        fields["ground_truth"] = str(fields["ground_truth"])
    return fields
