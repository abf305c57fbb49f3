"""Guard-client findings of the real-systems review, each pinned by a test: malformed answer
bodies, per-item rejections carrying status and message, a verdict cache bounded in bytes with
hashed keys, one flat ``stats()`` shape. Real loopback servers speaking the real protocol,
scripted for the fault at hand."""

from __future__ import annotations

import asyncio
import json

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from sinternal_verl.guards import GuardConfig, ModerationItem, SafetyLabel, build_guard
from sinternal_verl.guards.client import OpenAIGuardClient, item_key
from sinternal_verl.guards.types import GuardConfigError, GuardRejectedError, verdict_error
from sinternal_verl.testing.server import ThreadedServer

FAST = dict(backoff_base_s=0.01, backoff_max_s=0.05, max_retries=1)
OK = {
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "Safety: Safe\nCategories: None"}}]
}


def scripted(bodies: dict[str, tuple[int, object]]) -> Starlette:
    """A chat endpoint answering ``bodies[prompt] = (status, JSON body)``; OK otherwise."""
    calls: dict[str, int] = {}

    async def chat(request: Request) -> Response:
        body = await request.json()
        prompt = body["messages"][0]["content"]
        calls[prompt] = calls.get(prompt, 0) + 1
        status, answer = bodies.get(prompt, (200, OK))
        return Response(json.dumps(answer), status_code=status, media_type="application/json")

    app = Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"])])
    app.state.calls = calls
    return app


def guard(url: str, **kw) -> OpenAIGuardClient:
    g = build_guard(GuardConfig(kind="qwen3guard", urls=(url,), **{**FAST, **kw}))
    assert isinstance(g, OpenAIGuardClient)
    return g


async def run(g, items):
    try:
        return await g.moderate(items)
    finally:
        await g.aclose()


MALFORMED = {
    "choice-is-a-string": {"choices": ["Safety: Safe"]},
    "message-is-a-string": {"choices": [{"message": "Safety: Safe"}]},
    "no-message": {"choices": [{"index": 0}]},
    "content-is-a-number": {"choices": [{"message": {"content": 7}}]},
    "choices-is-a-dict": {"choices": {"0": "x"}},
    "empty-choices": {"choices": []},
    "body-is-a-list": [1, 2, 3],
    "body-is-a-string": "Safety: Safe",
    "logprobs-garbage": {
        "choices": [
            {
                "message": {"content": "Safety: Safe\nCategories: None"},
                "logprobs": {"content": ["x", 3, None]},
            }
        ]
    },
    "top-logprobs-garbage": {
        "choices": [
            {
                "message": {"content": "Safety: Safe\nCategories: None"},
                "logprobs": {
                    "content": [{"token": "Safety:"}, {"token": " Safe", "top_logprobs": ["a", {"token": 5}]}]
                },
            }
        ]
    },
}


def test_every_malformed_answer_is_a_parse_failure_of_that_item_never_an_exception():
    app = scripted({k: (200, v) for k, v in MALFORMED.items()})
    with ThreadedServer(app) as srv:
        g = guard(srv.url, parse_retries=0, soft_score=True, cache_size=0)
        verdicts = asyncio.run(run(g, [ModerationItem(k) for k in MALFORMED] + [ModerationItem("fine")]))
    by_name = dict(zip(list(MALFORMED) + ["fine"], verdicts))
    for name in MALFORMED:
        v = by_name[name]
        if name.startswith(("logprobs", "top-logprobs")):  # the text is fine; only the soft score is missing
            assert v.parse_ok and v.p_unsafe is None and "soft_score_error" in v.extra, name
        else:
            assert not v.parse_ok and v.label is None and not v.rejected, name
            assert v.extra["parse_error"] and v.message == v.extra["parse_error"] and v.source == srv.url, (
                name
            )
    assert by_name["fine"].parse_ok and by_name["fine"].label is SafetyLabel.SAFE
    assert g.stats()["parse_failures"] == len(MALFORMED) - 2


@pytest.mark.parametrize("status", [400, 409, 413, 422])
def test_item_rejection_carries_status_and_the_guards_message(status):
    err = {"error": {"message": f"no thanks ({status})", "type": "BadRequestError", "code": status}}
    app = scripted({"bad": (status, err)})
    with ThreadedServer(app) as srv:
        g = guard(srv.url)
        ok, bad = asyncio.run(run(g, [ModerationItem("ok"), ModerationItem("bad")]))
        assert app.state.calls["bad"] == 1  # a rejection is not re-asked
    assert ok.parse_ok
    assert (
        bad.rejected and bad.status == status and bad.message == f"no thanks ({status})" and bad.label is None
    )
    assert bad.extra["http_status"] == status and not bad.parse_ok
    st = g.stats()
    assert (
        st["rejected"] == 1
        and st[f"rejected{{{status}}}"] == 1
        and st["parse_failures"] == 0
        and st["errors"] == 0
    )
    e = verdict_error(bad)
    assert isinstance(e, GuardRejectedError) and e.status == status and f"HTTP {status}" in str(e)


@pytest.mark.parametrize("status", [401, 403, 404, 405])
def test_guard_wide_4xx_is_a_config_error_not_a_verdict(status):
    app = scripted({"p": (status, {"error": {"message": "go away"}})})
    with ThreadedServer(app) as srv:
        with pytest.raises(GuardConfigError) as ei:
            asyncio.run(run(guard(srv.url), [ModerationItem("p")]))
    assert f"HTTP {status}: go away" in ei.value.cause


def test_cache_is_bounded_in_bytes_and_keys_hold_no_text(monkeypatch):
    big = "x" * 190_000
    with ThreadedServer(scripted({})) as srv:
        g = guard(srv.url, cache_size=100_000)
        items = [ModerationItem(big + str(i)) for i in range(64)]
        asyncio.run(run(g, items))
        assert all(isinstance(k, bytes) and len(k) == 16 for k in g._cache)  # hashes, not texts
        st = g.stats()
        assert st["cache_size"] == 64 and st["cache_bytes"] < 64 * 2_000  # ~1 KB per verdict, not 190 KB

        small = guard(srv.url, cache_size=100_000, cache_max_bytes=5_000)
        asyncio.run(run(small, [ModerationItem(f"p{i}") for i in range(40)]))
        st = small.stats()
        assert 0 < st["cache_bytes"] <= 5_000 and 0 < st["cache_size"] < 40


def test_dedup_of_identical_items_in_flight_still_works_with_hashed_keys(fake_guard):
    g = guard(fake_guard.url, cache_size=0)
    vs = asyncio.run(run(g, [ModerationItem("same", "answer")] * 10))
    assert all(v.parse_ok for v in vs) and g.stats()["dedup_hits"] == 9 and g.stats()["requests"] == 1


def test_item_key_distinguishes_fields_and_takes_lone_surrogates():
    keys = {
        item_key(ModerationItem("ab", "c")),
        item_key(ModerationItem("a", "bc")),
        item_key(ModerationItem("abc")),
        item_key(ModerationItem("abc", "")),
        item_key(ModerationItem("a", "b", trace="c")),
        item_key(ModerationItem("\ud800", "\udfff")),
    }
    assert len(keys) == 6


def test_stats_is_one_flat_mapping_of_numbers(fake_guard):
    g = guard(fake_guard.url)
    asyncio.run(run(g, [ModerationItem("p")]))
    st = g.stats()
    assert all(isinstance(k, str) and isinstance(v, float) for k, v in st.items())
    assert st["items"] == 1 and st["http_requests"] >= 1 and f"http_requests{{{fake_guard.url}}}" in st
    assert not hasattr(g, "clear_cache")


def test_safety_reward_names_a_rejection_instead_of_an_empty_unparsable_output():
    from sinternal_verl.rewards.safety import SafetyRewardConfig, safety_score

    err = {"error": {"message": "This model's maximum context length is 256 tokens.", "code": 400}}
    with ThreadedServer(scripted({"long prompt": (400, err)})) as srv:

        async def score(cfg):
            g = guard(srv.url)
            try:
                return await safety_score("long prompt", "an answer", {"prompt_type": "harmful"}, g, cfg)
            finally:
                await g.aclose()

        with pytest.raises(GuardRejectedError, match="HTTP 400: This model's maximum context length is 256"):
            asyncio.run(score(SafetyRewardConfig()))
        fallback = asyncio.run(score(SafetyRewardConfig(on_guard_error="fallback")))
    assert fallback["guard_error"] == 1.0


def test_on_guard_rejected_scores_a_rejection_as_configured_and_flags_it():
    """``on_guard_rejected``: ``score`` gives ``guard_rejected_score``, ``truncated`` the truncated
    score, both flagged ``guard_rejected=1``; other items of the batch are judged as usual."""
    from sinternal_verl.rewards.router import RESULT_KEYS, RewardRouter

    err = {"error": {"message": "This model's maximum context length is 256 tokens.", "code": 400}}
    safe = "Safety: Safe\nCategories: None\nRefusal: No"  # response moderation carries a refusal line
    ok = {"choices": [{"index": 0, "message": {"role": "assistant", "content": safe}}]}
    with ThreadedServer(scripted({"long prompt": (400, err), "short prompt": (200, ok)})) as srv:

        async def score(**kw):
            router = RewardRouter(
                {"guard_urls": srv.url, "guard_max_retries": 1, "guard_backoff_base_s": 0.01, **kw}
            )
            try:
                info = {"prompt_type": "harmful"}
                return [
                    await router.score("safety", "an answer", None, {**info, "prompt": p})
                    for p in ("long prompt", "short prompt")
                ]
            finally:
                await router.guard.aclose()

        scored = asyncio.run(score(on_guard_rejected="score", guard_rejected_score=-0.5))
        truncated = asyncio.run(score(on_guard_rejected="truncated", truncated_score=-1.0))
    assert (
        scored[0]["score"] == -0.5 and scored[0]["guard_rejected"] == 1.0 and scored[0]["guard_error"] == 0.0
    )
    assert truncated[0]["score"] == -1.0 and truncated[0]["guard_rejected"] == 1.0
    assert scored[1]["score"] == 1.0 and scored[1]["guard_rejected"] == 0.0  # the other item: judged safe
    assert all(set(r) == set(RESULT_KEYS) for r in scored + truncated)  # verl needs the same keys everywhere
