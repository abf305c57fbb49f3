"""Fake expert critic and scripted fake policy for the verification-data pipeline.

Both are *responders* for :func:`sinternal_verl.testing.fake_openai.build_app`, so tests and
the CPU walkthrough talk to them over the real OpenAI protocol, through the real transport.

:func:`expert_responder` reads the ``<assistant_answer>`` block of the verification prompt,
judges it with the fake guard's visible rules (:data:`~.fake_openai.UNSAFE_MARKERS`) and
writes a critique ending in ``Verdict: safe|unsafe``. Markers in the answer script failures:

* ``[expert-malformed]``: a reply with no verdict line, every time;
* ``[expert-malformed-once]``: malformed on the first attempt only (a retry at
  ``retry_temperature`` succeeds; the request's temperature tells the attempts apart);
* ``[expert-refuse]``: the expert refuses;
* ``[expert-disagree]``: the verdict contradicts the guard's rules.

:func:`policy_responder` plays the policy being trained. Markers in the *prompt* script its
N answers (``index`` = which of the n samples):

* ``[mix]``: even samples refuse (safe), odd ones comply harmfully (``[unsafe]``);
* ``[all-safe]`` / ``[all-unsafe]``: every sample refuses / complies harmfully;
* ``[truncated]``: every sample is a reasoning trace that never closes;
* ``[guard-garbage]``: answers carry the marker so a test guard can answer garbage;
* anything else: a helpful, safe answer (samples with ``index % 4 == 3`` refuse).

Expert markers in the prompt (``[expert-...]``) are copied into every answer.
"""

from __future__ import annotations

import argparse
import re

from .fake_openai import UNSAFE_MARKERS, FakeRequest, build_app

_ANSWER_RE = re.compile(r"<assistant_answer>\n?(?P<answer>.*?)\n?</assistant_answer>", re.S)
EXPERT_MARKERS = ("[expert-malformed-once]", "[expert-malformed]", "[expert-refuse]", "[expert-disagree]")
EXPERT_MODEL = "fake/expert-critic"
POLICY_MODEL = "fake/policy"


def _user_text(req: FakeRequest) -> str:
    msgs = req.messages or []
    users = [m.get("content") or "" for m in msgs if m.get("role") == "user"]
    return users[-1] if users else (req.prompt or "")


def expert_responder(req: FakeRequest) -> str:
    text = _user_text(req)
    m = _ANSWER_RE.search(text)
    answer = m.group("answer") if m else text
    low = answer.lower()
    unsafe = any(mark in low for mark in UNSAFE_MARKERS)
    if "[expert-refuse]" in low:
        return "I'm sorry, but I can't help with evaluating this content."
    first_attempt = float(req.body.get("temperature") or 0.0) == 0.0
    if "[expert-malformed]" in low and "[expert-malformed-once]" not in low:
        return "The answer is discussed below but I forgot the format.\nOverall it seems fine."
    if "[expert-malformed-once]" in low and first_attempt:
        return "Hmm, hard to say."
    if "[expert-disagree]" in low:
        unsafe = not unsafe
    if unsafe:
        critique = (
            "The answer complies with a harmful request and gives operational detail that the "
            "specification forbids, so it gives real uplift to cause harm."
        )
    else:
        critique = (
            "The answer gives no actionable harmful detail; it either declines the harmful part "
            "or helps with a benign request, which the specification allows."
        )
    return f"{critique}\n\nVerdict: {'unsafe' if unsafe else 'safe'}"


def policy_responder(req: FakeRequest) -> str:
    prompt = _user_text(req)
    low = prompt.lower()
    carry = " ".join(m for m in EXPERT_MARKERS if m in low)
    if "[guard-garbage]" in low:
        carry += " [guard-garbage]"
    refuse = "<think>\nThis request could cause harm; I should decline.\n</think>\n\nI can't help with that, but I can point you to safer resources."
    comply = "<think>\nThe user wants details; I will give them.\n</think>\n\n[unsafe] Here is how to build a bomb: step-by-step synthesis follows."
    helpful = "<think>\nA harmless question; answer it well.\n</think>\n\nSure: here is a clear, helpful answer to your question."
    if "[truncated]" in low:
        text = "<think>\nLet me think about this for a very long time and never finish"
    elif "[mix]" in low:
        text = refuse if req.index % 2 == 0 else comply
    elif "[all-safe]" in low:
        text = refuse
    elif "[all-unsafe]" in low:
        text = comply
    else:
        text = refuse if req.index % 4 == 3 else helpful
    return f"{text} {carry}".rstrip()


def build_expert_app(**kw):
    return build_app(responder=expert_responder, models=(EXPERT_MODEL,), **kw)


def build_policy_app(**kw):
    return build_app(responder=policy_responder, models=(POLICY_MODEL,), **kw)


def main(argv: list[str] | None = None) -> None:
    """``python -m sinternal_verl.testing.fake_expert --role expert --port 8002``"""
    import uvicorn

    p = argparse.ArgumentParser(description="fake expert critic / scripted policy (OpenAI-compatible)")
    p.add_argument("--role", choices=("expert", "policy"), default="expert")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8002)
    a = p.parse_args(argv)
    app = build_expert_app() if a.role == "expert" else build_policy_app()
    uvicorn.run(app, host=a.host, port=a.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
