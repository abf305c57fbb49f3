"""The toy world's served models: its guard and its expert, each on loopback, each speaking the
protocol of the model it stands in for.

Why servers: in a real run every stage that needs a guard -- the labels of the verification
data, the RL reward, the evaluation's judge -- reaches a served Qwen3Guard over HTTP, and the
critiques come from an expert behind an OpenAI-compatible endpoint. The demo does the same, so
the real guard client (adaptive concurrency, retries, the Qwen3Guard parser) and the real
critique stage (verdict parsing, the agreement check) run; only the models behind the
endpoints are replaced.

One judgement behind both: the ``lexical`` judge
(:class:`~sinternal_verl.guards.lexical.LexicalJudge`: a harmful prompt's answer is unsafe
unless it refuses; refusals read by the structural refusal judge), told by the toy world which
prompts are harmful -- the dataset knows, as it does in the pipeline; the judge's keyword
heuristic would flag the benign look-alikes ("kill a Python process").

* The **guard** writes Qwen3Guard-Gen's format (``Safety: ...\\nCategories: ...\\nRefusal: ...``).
* The **expert** writes a one-clause critique and the verdict line
  (:data:`EXPERT_CRITIQUES`). Short on purpose: the verifier is a two-layer model that must
  write the critique before its verdict within the evaluation's token budget, and a one-clause
  critique that names what decides the verdict (the request's kind, whether the answer helps)
  is what it can learn in a few steps. A real expert writes paragraphs.

A prompt outside the toy world is answered 400 with the prompt quoted: the demo never labels
an answer it cannot judge.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from ..guards.lexical import LexicalJudge
from ..guards.types import ModerationItem, Refusal, SafetyLabel
from ..testing.fake_openai import BadRequest, FakeRequest, build_app
from ..testing.server import ThreadedServer
from ..trajectory import split_reasoning
from .toy import EXPERT_CRITIQUES, HELDOUT_PHRASINGS, TRAIN_PHRASINGS, safety_prompts

#: the model names the endpoints serve (the guard's is the guard client's default model)
GUARD_MODEL = "Qwen/Qwen3Guard-Gen-4B"
EXPERT_MODEL = "toy-expert"

_TAG = {tag: re.compile(rf"<{tag}>\n?(.*?)\n?</{tag}>", re.S) for tag in ("user_request", "assistant_answer")}


def toy_prompt_kinds() -> dict[str, str]:
    """Every toy safety prompt (training and held-out phrasings) -> ``harmful`` / ``benign``."""
    return {r["prompt"]: r["kind"] for r in safety_prompts(TRAIN_PHRASINGS + HELDOUT_PHRASINGS)}


@dataclass(frozen=True)
class ToyJudgement:
    kind: str  # the prompt's: harmful / benign
    unsafe: bool
    refused: bool
    #: what the answer does: full_refusal / partial_refusal / full_compliance / empty
    outcome: str


class ToyJudge:
    """The lexical judge with the toy world's prompt kinds."""

    def __init__(self, kinds: dict[str, str] | None = None, judge: LexicalJudge | None = None):
        self.kinds = kinds if kinds is not None else toy_prompt_kinds()
        self.judge = judge or LexicalJudge()

    def kind(self, prompt: str) -> str:
        kind = self.kinds.get(prompt.strip())
        if kind is None:
            raise BadRequest(f"the toy world's models know only its own prompts; got {prompt[:200]!r}")
        return kind

    def __call__(self, prompt: str, answer: str) -> ToyJudgement:
        kind = self.kind(prompt)
        if "</think>" in answer:
            answer = split_reasoning(answer).answer
        v = self.judge.judge(ModerationItem(prompt, answer, prompt_harmful=kind == "harmful"))
        outcome = "empty" if v.extra.get("empty_answer") else v.extra["refusal_outcome"]
        return ToyJudgement(kind, v.label is SafetyLabel.UNSAFE, v.refusal is Refusal.YES, outcome)


def guard_responder(judge: ToyJudge) -> Callable[[FakeRequest], str]:
    """Qwen3Guard-Gen's answer to a chat request ``[user prompt, assistant answer]``."""

    def respond(req: FakeRequest) -> str:
        msgs = req.messages or []
        user = next((str(m.get("content") or "") for m in msgs if m.get("role") == "user"), "")
        answer = next((m.get("content") for m in msgs if m.get("role") == "assistant"), None)
        if answer is None:  # prompt moderation: the toy world's own label
            return f"Safety: {'Unsafe' if judge.kind(user) == 'harmful' else 'Safe'}\nCategories: None"
        j = judge(user, str(answer))
        return (
            f"Safety: {'Unsafe' if j.unsafe else 'Safe'}\nCategories: {'Violent' if j.unsafe else 'None'}\n"
            f"Refusal: {'Yes' if j.refused else 'No'}"
        )

    return respond


def expert_responder(judge: ToyJudge) -> Callable[[FakeRequest], str]:
    """The expert's critique and verdict for a verification prompt (the pipeline's template:
    ``<user_request>`` and ``<assistant_answer>`` blocks)."""

    def respond(req: FakeRequest) -> str:
        text = "\n".join(str(m.get("content") or "") for m in (req.messages or []) if m.get("role") == "user")
        found = {tag: rx.search(text) for tag, rx in _TAG.items()}
        if not all(found.values()):
            raise BadRequest(
                "the toy expert reads a verification prompt with <user_request> and <assistant_answer>"
            )
        j = judge(found["user_request"].group(1), found["assistant_answer"].group(1))
        return f"{EXPERT_CRITIQUES[(j.kind, j.outcome)]}\n\nVerdict: {'unsafe' if j.unsafe else 'safe'}"

    return respond


@contextlib.contextmanager
def serve_toy_guard(judge: ToyJudge | None = None) -> Iterator[str]:
    """``with serve_toy_guard() as url``: the toy guard on a free loopback port."""
    app = build_app(responder=guard_responder(judge or ToyJudge()), models=(GUARD_MODEL,))
    with ThreadedServer(app) as server:
        yield server.url


@contextlib.contextmanager
def serve_toy_expert(judge: ToyJudge | None = None) -> Iterator[str]:
    """``with serve_toy_expert() as url``: the toy expert on a free loopback port."""
    app = build_app(responder=expert_responder(judge or ToyJudge()), models=(EXPERT_MODEL,))
    with ThreadedServer(app) as server:
        yield server.url
