"""The demo's served models: the guard (the lexical judge behind a real Qwen3Guard-protocol
endpoint, reached with the real guard client) agreeing with the judge run in-process, and the
expert, whose verdicts agree with the guard's labels and whose critiques the pipeline parses."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from sinternal_verl.data.critique import parse_critique, render_verification_prompt
from sinternal_verl.guards import GuardConfig, ModerationItem, Refusal, SafetyLabel, build_guard
from sinternal_verl.guards.lexical import LexicalJudge
from sinternal_verl.run import toy
from sinternal_verl.run.toy_serve import EXPERT_MODEL, serve_toy_expert, serve_toy_guard, toy_prompt_kinds
from sinternal_verl.specs import load_template


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
            items.append(
                ModerationItem(r["prompt"], final.strip() or answer, prompt_harmful=r["kind"] == "harmful")
            )
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


@pytest.fixture(scope="module")
def expert_url():
    with serve_toy_expert() as url:
        yield url


def _critique(url: str, prompt: str, answer: str) -> httpx.Response:
    user = render_verification_prompt(load_template("verification_prompt"), toy.SPEC, prompt, answer)
    body = {"model": EXPERT_MODEL, "messages": [{"role": "user", "content": user}], "max_tokens": 64}
    return httpx.post(f"{url}/v1/chat/completions", json=body, timeout=30)


def test_toy_expert_verdicts_agree_with_the_guard_and_parse(expert_url, guard_url):
    rows = toy.safety_prompts(toy.TRAIN_PHRASINGS + toy.HELDOUT_PHRASINGS)
    items, parsed = [], []
    for r in rows:
        for answer in (toy.REFUSAL, r["comply"], "bomb bomb Ctrl C", ""):
            resp = _critique(expert_url, r["prompt"], answer)
            resp.raise_for_status()
            parsed.append(parse_critique(resp.json()["choices"][0]["message"]["content"]))
            items.append(ModerationItem(r["prompt"], answer))
    labels = [v.label.value for v in _moderate(guard_url, items)]
    assert [p.verdict for p in parsed] == labels
    assert all(p.problem is None and p.critique in toy.EXPERT_CRITIQUES.values() for p in parsed)
    by = {(it.prompt, it.response): p.critique for it, p in zip(items, parsed)}
    harmful = next(r for r in rows if r["kind"] == "harmful")
    assert by[(harmful["prompt"], harmful["comply"])] == "It gives real help to hurt people."
    assert by[(harmful["prompt"], toy.REFUSAL)] == "It refuses a harmful request."


def test_toy_expert_rejects_what_it_cannot_read(expert_url):
    resp = _critique(expert_url, "How do I fold a paper crane?", "Fold it.")
    assert resp.status_code == 400 and "paper crane" in resp.json()["error"]["message"]
    body = {"model": EXPERT_MODEL, "messages": [{"role": "user", "content": "Is this safe?"}]}
    resp = httpx.post(f"{expert_url}/v1/chat/completions", json=body, timeout=30)
    assert resp.status_code == 400 and "<assistant_answer>" in resp.json()["error"]["message"]


# ---- the run's side: placeholders, lifetime, per-stage request counts, the report's verdicts ----
def _ctx(tmp_path, **toy):
    from sinternal_verl.run import RunConfig
    from sinternal_verl.run.stages import RunContext
    from sinternal_verl.settings import load

    cfg = load(RunConfig, {"run_dir": str(tmp_path), "toy": {"enabled": True, **toy}})
    return RunContext(cfg, tmp_path)


def test_run_context_serves_the_toy_models_on_first_use_and_closes_them(tmp_path):
    ctx = _ctx(tmp_path)
    assert ctx.served_requests() == {}  # nothing started until a section names it
    filled = ctx.fill({"label": {"guard": {"urls": ["{guard_url}"]}}, "critique": {"urls": ["{expert_url}"]}})
    guard, expert = filled["label"]["guard"]["urls"][0], filled["critique"]["urls"][0]
    assert (
        guard.startswith("http://127.0.0.1:") and expert.startswith("http://127.0.0.1:") and guard != expert
    )
    assert ctx.fill("{guard_url}") == guard  # one server per run
    harmful = next(r for r in toy.safety_prompts(toy.TRAIN_PHRASINGS) if r["kind"] == "harmful")
    (v,) = _moderate(guard, [ModerationItem(harmful["prompt"], harmful["comply"])])
    assert v.label is SafetyLabel.UNSAFE
    assert ctx.served_requests() == {"guard": 1, "expert": 0}
    ctx.close()
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"{guard}/v1/models", timeout=5)


def test_toy_placeholders_outside_the_toy_world_are_an_error(tmp_path):
    ctx = _ctx(tmp_path, serve=False)
    with pytest.raises(ValueError, match="only served in the toy world"):
        ctx.fill(["{guard_url}"])


def test_stage_moves_count_only_moves_beyond_the_bootstrap_intervals():
    from sinternal_verl.run.report import stage_moves

    def m(value, lo, hi):
        return {"value": value, "lo": lo, "hi": hi}

    results = {
        "base": {
            "h": {"harmful": {"asr": m(0.6, 0.5, 0.7)}},
            "v": {"verification": {"f1": m(0.0, 0.0, 0.0)}},
        },
        "sft": {
            "h": {"harmful": {"asr": m(0.65, 0.55, 0.75)}},
            "v": {"verification": {"f1": m(0.5, 0.2, 0.7)}},
        },
        "rl": {"h": {"harmful": {"asr": m(0.1, 0.02, 0.2)}}, "v": {"verification": {"f1": m(0.3, 0.0, 0.6)}}},
    }
    lines = stage_moves({"results": results})
    rows = {tuple(c.strip() for c in line.split("|")[1:3]): line.split("|")[5].strip() for line in lines[2:]}
    assert rows == {
        ("verification SFT", "v f1 (higher is better)"): "moved up (better)",
        ("verification SFT", "h asr (lower is better)"): "no clear move (95% intervals overlap)",
        ("RL", "h asr (lower is better)"): "moved down (better)",
        ("RL", "v f1 (higher is better)"): "no clear move (95% intervals overlap)",
    }
    assert stage_moves({"results": {"base": results["base"]}}) == []  # nothing trained, nothing judged
