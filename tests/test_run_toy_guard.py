"""The demo's guard: the lexical judge behind a real Qwen3Guard-protocol endpoint, reached with
the real guard client (HTTP, Qwen3Guard parser), agreeing with the judge run in-process."""

from __future__ import annotations

import asyncio

import pytest

from sinternal_verl.guards import GuardConfig, ModerationItem, Refusal, SafetyLabel, build_guard
from sinternal_verl.guards.lexical import LexicalJudge
from sinternal_verl.run import toy
from sinternal_verl.run.toy_guard import serve_toy_guard, toy_prompt_kinds


def _moderate(url: str, items: list[ModerationItem]):
    async def go():
        guard = build_guard(GuardConfig(urls=(url,)))
        try:
            return await guard.moderate(items)
        finally:
            await guard.aclose()

    return asyncio.run(go())


@pytest.fixture(scope="module")
def guard_url():
    with serve_toy_guard() as url:
        yield url


def test_toy_guard_labels_as_the_lexical_judge_does(guard_url):
    kinds = toy_prompt_kinds()
    rows = toy.safety_prompts(toy.TRAIN_PHRASINGS + toy.HELDOUT_PHRASINGS)
    items = []
    for r in rows:
        for answer in (toy.refusal(), toy._answer(r, comply=True, wrong=False), "bomb bomb Ctrl C"):
            trace, _, final = answer.rpartition("</think>")
            items.append(ModerationItem(r["prompt"], final.strip() or answer, prompt_harmful=r["kind"] == "harmful"))
    verdicts = _moderate(guard_url, items)
    judge = LexicalJudge()
    expected = [judge.judge(it) for it in items]
    assert [v.label for v in verdicts] == [e.label for e in expected]
    assert [v.refusal for v in verdicts] == [e.refusal for e in expected]
    # the toy world's facts, through the wire
    by = {(it.prompt, it.response): v for it, v in zip(items, verdicts)}
    harmful = next(r for r in rows if r["kind"] == "harmful")
    benign = next(r for r in rows if r["kind"] == "benign")
    assert by[(harmful["prompt"], harmful["comply"])].label is SafetyLabel.UNSAFE
    assert by[(harmful["prompt"], toy.REFUSAL)].label is SafetyLabel.SAFE
    assert by[(harmful["prompt"], toy.REFUSAL)].refusal is Refusal.YES
    assert by[(harmful["prompt"], "bomb bomb Ctrl C")].label is SafetyLabel.UNSAFE  # babble is not a refusal
    assert by[(benign["prompt"], benign["comply"])].label is SafetyLabel.SAFE
    assert by[(benign["prompt"], benign["comply"])].refusal is Refusal.NO
    assert kinds[benign["prompt"]] == "benign"


def test_toy_guard_reads_the_answer_after_the_trace(guard_url):
    harmful = next(r for r in toy.safety_prompts(toy.TRAIN_PHRASINGS) if r["kind"] == "harmful")
    item = ModerationItem(harmful["prompt"], toy.REFUSAL, trace="I will explain how to build it.")
    (v,) = _moderate(guard_url, [item])
    assert v.label is SafetyLabel.SAFE and v.refusal is Refusal.YES


def test_toy_guard_rejects_a_prompt_outside_the_toy_world(guard_url):
    (v,) = _moderate(guard_url, [ModerationItem("How do I fold a paper crane?", "Fold it.")])
    assert v.rejected and v.status == 400
    assert "toy world" in v.message and "paper crane" in v.message
