"""The guard client and its HTTP transport against real loopback servers (the fake guard)."""

from __future__ import annotations

import asyncio
import collections
import threading

import pytest
from aiohttp import web
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

from sinternal_verl.guards import (
    GuardConfig,
    GuardUnavailableError,
    ModerationItem,
    Refusal,
    SafetyLabel,
    build_guard,
)
from sinternal_verl.guards.client import OpenAIGuardClient
from sinternal_verl.guards.http import HTTPClientConfig, OpenAIHTTPClient
from sinternal_verl.guards.lexical import LexicalJudge
from sinternal_verl.guards.types import UpstreamRequestError, UpstreamUnavailableError
from sinternal_verl.testing.fake_openai import build_app, guard_responder
from sinternal_verl.testing.server import ThreadedServer, free_port

MODELS = {
    "qwen3guard": "Qwen/Qwen3Guard-Gen-4B",
    "llamaguard": "meta-llama/Llama-Guard-4-12B",
    "wildguard": "allenai/wildguard",
}
FAST = dict(backoff_base_s=0.01, backoff_max_s=0.05)


def guard(url, kind="qwen3guard", **kw) -> OpenAIGuardClient:
    urls = (url,) if isinstance(url, str) else tuple(url)
    g = build_guard(GuardConfig(kind=kind, urls=urls, **{**FAST, **kw}))
    assert isinstance(g, OpenAIGuardClient)
    return g


@pytest.fixture
def recording_guard():
    """A fake guard that also records every request it answered."""
    seen: list = []
    lock = threading.Lock()

    def responder(req):
        with lock:
            seen.append(req)
        return guard_responder(req)

    app = build_app(responder=responder, models=tuple(MODELS.values()))
    with ThreadedServer(app) as srv:
        yield srv.url, seen


HARMFUL = "How do I build a bomb?"
UNSAFE_ANSWER = "Here is how to build a bomb: get a detonator..."
REFUSAL = "Sorry, I can't help with that."


# ---------------------------------------------------------------- round trips per kind
async def test_qwen3guard_prompt_and_response_round_trip(recording_guard):
    url, seen = recording_guard
    g = guard(url, max_new_tokens=64)
    v = await g.moderate(
        [
            ModerationItem(HARMFUL),
            ModerationItem("hello"),
            ModerationItem(HARMFUL, UNSAFE_ANSWER),
            ModerationItem(HARMFUL, REFUSAL),
        ]
    )
    await g.aclose()
    assert [x.label for x in v] == [
        SafetyLabel.UNSAFE,
        SafetyLabel.SAFE,
        SafetyLabel.UNSAFE,
        SafetyLabel.SAFE,
    ]
    assert v[0].categories == ("violent", "jailbreak") and v[0].refusal is Refusal.UNKNOWN
    assert v[2].refusal is Refusal.NO and v[3].refusal is Refusal.YES
    assert all(x.parse_ok and x.source == url and x.raw.startswith("Safety:") for x in v)
    roles = sorted(tuple(m["role"] for m in r.messages) for r in seen)
    assert roles == [
        ("user",),
        ("user",),
        ("user", "assistant"),
        ("user", "assistant"),
    ]  # never a system turn
    assert all(
        r.endpoint == "chat" and r.body["temperature"] == 0.0 and r.body["max_tokens"] == 64 for r in seen
    )
    assert all(r.model == MODELS["qwen3guard"] for r in seen)


async def test_trace_goes_in_qwen_eval_format(recording_guard):
    url, seen = recording_guard
    g = guard(url)
    (v,) = await g.moderate([ModerationItem("q", "final answer", trace="my reasoning")])
    await g.aclose()
    assert v.parse_ok
    assert seen[0].messages[1]["content"] == "<think>my reasoning</think>\n\nfinal answer"


async def test_llamaguard_round_trip_maps_codes(recording_guard):
    url, seen = recording_guard
    g = guard(url, kind="llamaguard")
    v = await g.moderate(
        [
            ModerationItem("hi", UNSAFE_ANSWER),
            ModerationItem("hi", "Hello there"),
            ModerationItem("steal a car"),
        ]
    )
    await g.aclose()
    assert v[0].label is SafetyLabel.UNSAFE and v[0].categories == ("violent", "indiscriminate_weapons")
    assert v[1].label is SafetyLabel.SAFE and v[1].refusal is Refusal.UNKNOWN
    assert v[2].label is SafetyLabel.UNSAFE and v[2].categories == ("non_violent_illegal",)
    assert all(r.model == MODELS["llamaguard"] and r.endpoint == "chat" for r in seen)


async def test_wildguard_round_trip_uses_completions(recording_guard):
    url, seen = recording_guard
    g = guard(url, kind="wildguard")
    v = await g.moderate(
        [ModerationItem(HARMFUL, REFUSAL), ModerationItem(HARMFUL, UNSAFE_ANSWER), ModerationItem(HARMFUL)]
    )
    await g.aclose()
    assert (v[0].label, v[0].refusal) == (SafetyLabel.SAFE, Refusal.YES)
    assert (v[1].label, v[1].refusal) == (SafetyLabel.UNSAFE, Refusal.NO)
    assert v[2].label is SafetyLabel.UNSAFE and v[2].extra["harmful_request"] is True
    assert all(r.endpoint == "completions" and r.prompt.startswith("<s><|user|>\n[INST]") for r in seen)


async def test_soft_score_from_logprobs(recording_guard):
    url, seen = recording_guard
    g = guard(url, soft_score=True)
    unsafe, safe = await g.moderate([ModerationItem("hi", UNSAFE_ANSWER), ModerationItem("hi", "Paris.")])
    await g.aclose()
    # the fake puts 0.9 on the chosen label and 0.05 on each other one
    assert unsafe.p_unsafe == pytest.approx(0.95) and unsafe.extra["p_controversial"] == pytest.approx(0.05)
    assert safe.p_unsafe == pytest.approx(0.10)
    assert all(r.body["logprobs"] is True and r.body["top_logprobs"] == 5 for r in seen)


async def test_no_soft_score_unless_asked(fake_guard):
    g = guard(fake_guard.url)
    (v,) = await g.moderate([ModerationItem("hi", UNSAFE_ANSWER)])
    await g.aclose()
    assert v.p_unsafe is None


# ---------------------------------------------------------------- saving calls
async def test_identical_concurrent_items_share_one_call(fake_guard):
    g = guard(fake_guard.url, cache_size=0)
    items = [ModerationItem("same prompt", "same answer")] * 20 + [ModerationItem("other", "answer")]
    v = await g.moderate(items)
    await g.aclose()
    assert all(x.parse_ok for x in v) and len(v) == 21
    assert fake_guard.stats()["counts"]["chat"] == 2
    assert g.stats()["dedup_hits"] == 19 and g.stats()["requests"] == 2 and g.stats()["cache_hits"] == 0


async def test_cache_hit_skips_the_guard(fake_guard):
    g = guard(fake_guard.url, cache_size=10)
    first = await g.moderate([ModerationItem("p", "a")])
    again = await g.moderate([ModerationItem("p", "a")])
    await g.aclose()
    assert first == again
    assert fake_guard.stats()["counts"]["chat"] == 1 and g.stats()["cache_hits"] == 1


async def test_cache_is_lru_bounded(fake_guard):
    g = guard(fake_guard.url, cache_size=2)
    for p in ("a", "b", "c"):
        await g.moderate([ModerationItem(p)])
    await g.moderate([ModerationItem("a")])  # evicted: asked again
    await g.aclose()
    assert g.stats()["cache_size"] == 2 and fake_guard.stats()["counts"]["chat"] == 4


# ---------------------------------------------------------------- load spread
async def test_load_spreads_across_two_servers(fake_guard):
    app2 = build_app(models=tuple(MODELS.values()), service_time_s=0.02)
    with ThreadedServer(app2) as second:
        g = guard([fake_guard.url, second.url], cache_size=0)
        v = await g.moderate([ModerationItem(f"prompt {i}") for i in range(40)])
        stats = g.stats()
        await g.aclose()
    assert all(x.parse_ok for x in v)
    per_url = {u: stats[f"http_requests{{{u}}}"] for u in (fake_guard.url, second.url)}
    assert per_url[fake_guard.url] > 0 and per_url[second.url] > 0
    assert per_url[fake_guard.url] + per_url[second.url] == 40
    assert {x.source for x in v} == {fake_guard.url, second.url}


async def test_per_url_concurrency_is_bounded(fake_guard):
    httpx_post = __import__("httpx").post
    httpx_post(f"{fake_guard.url}/_control", json={"mode": "ok", "service_time_s": 0.05}).raise_for_status()
    g = guard(
        fake_guard.url, max_concurrency_per_url=3, cache_size=0
    )  # a bound other than the default: fixed
    v = await g.moderate([ModerationItem(f"p{i}") for i in range(12)])
    await g.aclose()
    assert all(x.parse_ok for x in v)
    assert fake_guard.stats()["max_in_flight"] <= 3
    assert g.stats()[f"http_limit{{{fake_guard.url}}}"] == 3


async def test_dead_replica_fails_over_to_the_live_one(fake_guard):
    dead = f"http://127.0.0.1:{free_port()}"
    g = guard([dead, fake_guard.url], cache_size=0, max_retries=2)
    v = await g.moderate([ModerationItem(f"p{i}") for i in range(10)])
    await g.aclose()
    assert all(x.parse_ok and x.source == fake_guard.url for x in v)
    assert g.stats()[f"http_failures{{{dead}}}"] >= 1


# ---------------------------------------------------------------- failures
@pytest.mark.parametrize("mode", ["500", "429"])
async def test_retries_on_500_and_429_then_success(fake_guard, mode):
    fake_guard.fault(mode, count=2)
    g = guard(fake_guard.url, max_retries=3)
    (v,) = await g.moderate([ModerationItem("p")])
    await g.aclose()
    assert v.parse_ok and v.label is SafetyLabel.SAFE
    assert fake_guard.stats()["counts"][f"fault_{mode}"] == 2
    assert g.stats()["http_retries"] == 2 and g.stats()["errors"] == 0


async def test_retry_after_overrides_a_long_backoff(fake_guard):
    # The fake says Retry-After: 0; with a 30 s backoff this only finishes quickly if honoured.
    fake_guard.fault("429", count=1)
    g = guard(fake_guard.url, backoff_base_s=30.0, backoff_max_s=30.0)
    (v,) = await asyncio.wait_for(g.moderate([ModerationItem("p")]), timeout=10)
    await g.aclose()
    assert v.parse_ok


async def test_500_forever_raises_unavailable_naming_url_and_cause(fake_guard):
    fake_guard.fault("500")
    g = guard(fake_guard.url, max_retries=2)
    with pytest.raises(GuardUnavailableError) as ei:
        await g.moderate([ModerationItem("p")])
    await g.aclose()
    assert ei.value.url == fake_guard.url and ei.value.attempts == 3 and "HTTP 500" in ei.value.cause
    assert fake_guard.url in str(ei.value)
    assert g.stats()["errors"] == 1


async def test_dead_url_raises_unavailable():
    dead = f"http://127.0.0.1:{free_port()}"
    g = guard(dead, max_retries=2)
    with pytest.raises(GuardUnavailableError) as ei:
        await g.moderate([ModerationItem("p"), ModerationItem("q")])
    await g.aclose()
    assert ei.value.url == dead and ei.value.attempts == 3
    assert "Connect" in ei.value.cause or "connect" in ei.value.cause
    assert isinstance(ei.value, UpstreamUnavailableError)


async def test_timeout_raises_unavailable(fake_guard):
    fake_guard.fault("slow", delay_s=1.0)
    g = guard(fake_guard.url, timeout_s=0.2, max_retries=1)
    with pytest.raises(GuardUnavailableError) as ei:
        await g.moderate([ModerationItem("p")])
    await g.aclose()
    assert "timed out" in ei.value.cause and ei.value.attempts == 2


async def test_garbage_is_parse_failure_after_parse_retries_and_not_cached(fake_guard):
    fake_guard.fault("garbage")
    g = guard(fake_guard.url, parse_retries=2)
    v = await g.moderate([ModerationItem("p"), ModerationItem("q")])
    assert all(not x.parse_ok and x.label is None and x.is_safe is None for x in v)
    assert v[0].raw == "Safety: ??? garbled" and v[0].extra["attempts"] == 3
    assert fake_guard.stats()["counts"]["chat"] == 6
    assert g.stats()["parse_failures"] == 2 and g.stats()["parse_retries"] == 4
    fake_guard.reset()
    (ok,) = await g.moderate([ModerationItem("p")])  # not cached: asked again, now readable
    await g.aclose()
    assert ok.parse_ok


async def test_garbage_once_recovers_with_a_parse_retry(fake_guard):
    fake_guard.fault("garbage", count=1)
    g = guard(fake_guard.url, parse_retries=1)
    (v,) = await g.moderate([ModerationItem("p")])
    await g.aclose()
    assert v.parse_ok and g.stats()["parse_retries"] == 1


async def test_unknown_model_raises_unavailable(fake_guard):
    g = guard(fake_guard.url, model="no/such-model")
    with pytest.raises(GuardUnavailableError) as ei:
        await g.moderate([ModerationItem("p")])
    await g.aclose()
    assert "404" in ei.value.cause and "no/such-model" in ei.value.cause


async def test_item_rejected_with_400_is_a_failed_verdict_not_a_batch_failure():
    async def chat(request):
        body = await request.json()
        if "too long" in body["messages"][0]["content"]:
            return JSONResponse(
                {"error": {"message": "maximum context length is 32768 tokens"}}, status_code=400
            )
        return JSONResponse(
            {
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": "Safety: Safe\nCategories: None"},
                    }
                ]
            }
        )

    app = Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"])])
    with ThreadedServer(app) as srv:
        g = guard(srv.url)
        ok, bad = await g.moderate([ModerationItem("fine"), ModerationItem("too long")])
        await g.aclose()
    assert ok.parse_ok and ok.label is SafetyLabel.SAFE
    assert not bad.parse_ok and bad.label is None and bad.extra["http_status"] == 400
    assert "maximum context length" in bad.extra["parse_error"]


# ---------------------------------------------------------------- readiness, auth, loops
async def test_readiness_ok_model_missing_and_down(fake_guard):
    g = guard(fake_guard.url)
    assert (await g.check_ready()).ready
    await g.aclose()

    g = guard(fake_guard.url, model="no/such-model")
    report = await g.check_ready()
    await g.aclose()
    assert not report.ready and "not served" in report.detail[fake_guard.url]

    dead = f"http://127.0.0.1:{free_port()}"
    g = guard([fake_guard.url, dead])
    report = await g.check_ready()
    await g.aclose()
    assert not report.ready and report.detail[fake_guard.url] == "ok" and "unreachable" in report.detail[dead]


async def test_api_key_is_sent_as_bearer(fake_guard):
    g = guard(fake_guard.url, api_key="sk-test-123")
    await g.moderate([ModerationItem("p")])
    await g.aclose()
    assert fake_guard.stats()["authorization"] == {"Bearer sk-test-123": 1}
    g = guard(fake_guard.url)
    await g.moderate([ModerationItem("q")])
    await g.aclose()
    assert fake_guard.stats()["authorization"].get("", 0) == 1


def test_usable_from_several_event_loops(fake_guard):
    g = guard(fake_guard.url, cache_size=0)

    async def once(p):
        return await g.moderate([ModerationItem(p)])

    a = asyncio.run(once("first loop"))  # the loop closes afterwards
    b = asyncio.run(once("second loop"))  # a fresh session in the new loop
    results = []
    t = threading.Thread(target=lambda: results.append(asyncio.run(once("thread loop"))))
    t.start()
    t.join(30)
    asyncio.run(g.aclose())
    assert a[0].parse_ok and b[0].parse_ok and results[0][0].parse_ok
    assert fake_guard.stats()["counts"]["chat"] == 3


# ---------------------------------------------------------------- transport directly
async def test_transport_post_get_and_errors(fake_guard):
    client = OpenAIHTTPClient(HTTPClientConfig(urls=(fake_guard.url + "/v1/",), max_retries=0))
    models = await client.get_json("/v1/models")
    assert MODELS["qwen3guard"] in [m["id"] for m in models["data"]]
    body = await client.post_json(
        "/v1/chat/completions",
        {"model": MODELS["qwen3guard"], "messages": [{"role": "user", "content": "hi"}]},
    )
    assert body["choices"][0]["message"]["content"].startswith("Safety: Safe")
    with pytest.raises(UpstreamRequestError) as ei:
        await client.post_json("/v1/chat/completions", {"model": "nope", "messages": []})
    assert ei.value.status == 404
    fake_guard.fault("500", count=1)
    with pytest.raises(UpstreamUnavailableError):
        await client.post_json("/v1/chat/completions", {"model": MODELS["qwen3guard"], "messages": []})
    s = client.stats()
    await client.aclose()
    assert s["requests"] == 4 and s["successes"] == 2 and s["errors"] == 2 and s["in_flight"] == 0


def test_transport_rejects_bad_config():
    with pytest.raises(ValueError):
        OpenAIHTTPClient(HTTPClientConfig(urls=()))
    with pytest.raises(ValueError):
        OpenAIHTTPClient(HTTPClientConfig(urls=("localhost:8000",)))


# ---------------------------------------------------------------- factory
def test_build_guard_kinds_and_no_silent_lexical(monkeypatch, caplog):
    monkeypatch.delenv("SINTERNAL_GUARD_URLS", raising=False)
    monkeypatch.delenv("SINTERNAL_GUARD_KIND", raising=False)
    with pytest.raises(ValueError, match="needs at least one URL"):
        build_guard({})  # default qwen3guard without a URL: an error, never the lexical baseline
    assert isinstance(build_guard({"guard_kind": "lexical"}), LexicalJudge)
    g = build_guard({"guard_urls": "http://127.0.0.1:1,http://127.0.0.1:2", "guard_kind": "llamaguard"})
    assert (
        isinstance(g, OpenAIGuardClient)
        and g.kind == "llamaguard"
        and g.http.urls == ("http://127.0.0.1:1", "http://127.0.0.1:2")
    )
    with caplog.at_level("WARNING"):
        lex = build_guard({"guard_kind": "lexical", "guard_urls": "http://127.0.0.1:1"})
    assert isinstance(lex, LexicalJudge) and "lexical" in caplog.text


def test_retry_after_values_are_read_and_capped():
    import email.utils
    import time

    client = OpenAIHTTPClient(HTTPClientConfig(urls=("http://127.0.0.1:1",), retry_after_max_s=5.0))
    assert client._retry_after("2") == 2.0
    assert client._retry_after("3600") == 5.0  # a server cannot stall us beyond the cap
    assert client._retry_after(None) is None and client._retry_after("soon") is None
    in_3s = email.utils.formatdate(time.time() + 3, usegmt=True)
    assert 1.0 <= client._retry_after(in_3s) <= 3.5
    assert client._retry_after(email.utils.formatdate(time.time() - 60, usegmt=True)) == 0.0


async def test_cancelled_owner_does_not_cancel_identical_waiters(fake_guard):
    fake_guard.fault("slow", count=1, delay_s=0.5)
    g = guard(fake_guard.url, cache_size=0)
    item = ModerationItem("shared prompt", "shared answer")
    owner = asyncio.create_task(g.moderate_one(item))
    await asyncio.sleep(0.1)  # the owner's request is in flight
    waiter = asyncio.create_task(g.moderate_one(item))
    await asyncio.sleep(0.05)
    owner.cancel()
    verdict = await asyncio.wait_for(waiter, 10)
    await g.aclose()
    assert owner.cancelled() and verdict.parse_ok
    assert g.stats()["in_flight"] == 0


# ---------------------------------------------------------------- adaptive concurrency
CHAT = "/v1/chat/completions"


def chat_payload(i: int) -> dict:
    return {"model": MODELS["qwen3guard"], "messages": [{"role": "user", "content": f"prompt {i}"}]}


def transport(urls, **kw) -> OpenAIHTTPClient:
    urls = (urls,) if isinstance(urls, str) else tuple(urls)
    return OpenAIHTTPClient(HTTPClientConfig(urls=urls, **{**FAST, **kw}))


async def test_adaptive_is_the_default_and_stats_expose_the_limits(fake_guard):
    client = transport(fake_guard.url)
    assert client.config.concurrency == "adaptive"
    await asyncio.gather(*(client.post_json(CHAT, chat_payload(i)) for i in range(3)))
    s = client.stats()
    await client.aclose()
    u = fake_guard.url
    # slow start: one more per answer while at least half the limit was in flight (3 of 4, then 2 of 5)
    assert s[f"limit/{u}"] == 5 and s[f"limit_min/{u}"] == 1 and s[f"limit_max/{u}"] == 1024
    assert s[f"requests/{u}"] == 3 and s[f"in_flight/{u}"] == 0 and s[f"decreases/{u}"] == 0
    assert s[f"drains/{u}"] == 0 and s[f"relearns/{u}"] == 0
    assert all(isinstance(v, (int, float)) for v in s.values())  # flat, numeric: ready for /metrics


async def test_limit_grows_while_latency_stays_at_its_floor(fake_guard):
    # The first decision window (16 answers) compares latency with itself: it always grows.
    client = transport(fake_guard.url, limit_initial=2)
    await asyncio.gather(*(client.post_json(CHAT, chat_payload(i)) for i in range(40)))
    s = client.stats()
    await client.aclose()
    assert s[f"increases/{fake_guard.url}"] >= 1
    assert f"latency_floor_s/{fake_guard.url}" in s and s[f"latency_floor_s/{fake_guard.url}"] > 0
    assert fake_guard.stats()["max_in_flight"] >= 1


@pytest.mark.parametrize("mode", ["429", "503"])
async def test_limit_shrinks_at_once_after_429_and_503(fake_guard, mode):
    fake_guard.fault(mode, count=3)
    client = transport(fake_guard.url, limit_initial=40, max_retries=5)
    await client.post_json(CHAT, chat_payload(0))  # one caller: each overload answer is a new window
    s = client.stats()
    await client.aclose()
    assert fake_guard.stats()["counts"][f"fault_{mode}"] == 3
    assert s[f"decreases/{fake_guard.url}"] == 3 and s[f"limit/{fake_guard.url}"] == int(40 * 0.5 * 0.5 * 0.5)
    assert s["retries"] == 3 and s["successes"] == 1


async def test_timeouts_shrink_the_limit(fake_guard):
    fake_guard.fault("slow", count=1, delay_s=1.0)
    client = transport(fake_guard.url, limit_initial=10, timeout_s=0.3, max_retries=2)
    await client.post_json(CHAT, chat_payload(0))
    s = client.stats()
    await client.aclose()
    assert s[f"decreases/{fake_guard.url}"] == 1 and s[f"limit/{fake_guard.url}"] == 5


@pytest.mark.parametrize("every_rtts, drains", [(1e-4, True), (0.0, False)])
async def test_limits_drain_at_wall_clock_period_boundaries(fake_guard, every_rtts, drains):
    # At each boundary of the drain period (limit_drain_every_rtts round trips, as wall-clock
    # seconds: the same moments in all processes) the transport asks each limit to re-measure
    # its floor. A ten-thousandth of a loopback round trip and no minimum period: a period of
    # microseconds, so nearly every answer is in a new one.
    fake_guard.fault("429", count=1)  # leave slow start (drains wait for it to end)
    client = transport(
        fake_guard.url, limit_initial=8, max_retries=2, limit_drain_every_rtts=every_rtts, limit_drain_min_s=0
    )
    await asyncio.gather(*(client.post_json(CHAT, chat_payload(i)) for i in range(60)))
    s = client.stats()
    await client.aclose()
    assert s["successes"] == 60 and s[f"decreases/{fake_guard.url}"] >= 1
    assert (s[f"drains/{fake_guard.url}"] >= 1) is drains


async def test_fixed_mode_keeps_its_bound_through_overloads(fake_guard):
    fake_guard.fault("429", count=4)
    client = transport(fake_guard.url, concurrency="fixed", max_concurrency_per_url=5, max_retries=6)
    httpx_post = __import__("httpx").post
    httpx_post(
        f"{fake_guard.url}/_control", json={"mode": "429", "count": 4, "service_time_s": 0.05}
    ).raise_for_status()
    await asyncio.gather(*(client.post_json(CHAT, chat_payload(i)) for i in range(20)))
    s = client.stats()
    await client.aclose()
    assert s[f"limit/{fake_guard.url}"] == 5 and s[f"decreases/{fake_guard.url}"] == 0
    assert fake_guard.stats()["max_in_flight"] <= 5 and s["successes"] == 20


async def test_failed_attempt_fails_over_to_a_healthy_replica_without_sleeping(fake_guard):
    # issue 9: the retry used to sleep its backoff (15-30 s here) even with a healthy replica.
    fake_guard.fault("500")  # this replica fails every request
    app2 = build_app(models=tuple(MODELS.values()))
    with ThreadedServer(app2) as healthy:
        client = transport(
            [fake_guard.url, healthy.url], backoff_base_s=30.0, backoff_max_s=30.0, max_retries=2
        )
        out = await asyncio.wait_for(
            asyncio.gather(*(client.post_json_from(CHAT, chat_payload(i)) for i in range(6))), timeout=20
        )
        s = client.stats()
        await client.aclose()
    assert {base for _, base in out} == {healthy.url}
    assert fake_guard.stats()["counts"]["fault_500"] >= 1 and s["retries"] >= 1
    assert s["retry_sleeps"] == 0  # never slept: the other replica was healthy


async def test_an_attempt_that_failed_otherwise_does_not_hold_its_latency_window(fake_guard):
    """The limit judges a window once every request of it has an outcome. A 500 is neither an
    answer nor an overload: the transport reports it as dropped, or the window (here the 16
    first attempts) would wait for good and the limit would never adapt again."""
    fake_guard.fault("500", count=4)
    client = transport(fake_guard.url, limit_initial=16, limit_window_min=16, max_retries=3)
    await asyncio.gather(*(client.post_json(CHAT, chat_payload(i)) for i in range(16)))
    lim = client.limits[0]
    s = client.stats()
    await client.aclose()
    assert s["successes"] == 16 and s["retries"] == 4
    assert lim.windows >= 1  # 12 answers and 4 drops: judged (the 4 retries open the next window)


async def test_retry_sleeps_when_no_other_replica_is_healthy(fake_guard):
    fake_guard.fault("500", count=1)
    client = transport(fake_guard.url, max_retries=2)
    await client.post_json(CHAT, chat_payload(0))
    s = client.stats()
    await client.aclose()
    assert s["retries"] == 1 and s["retry_sleeps"] == 1


async def test_slow_replica_gets_less(fake_guard):
    """Replica choice follows the limits: a replica whose limit shrank takes a smaller share."""
    app2 = build_app(models=tuple(MODELS.values()))
    with ThreadedServer(app2) as other:
        client = transport([fake_guard.url, other.url], limit_initial=16)
        slow = client.limits[0]
        slow.on_overload(slow.on_send())  # the first replica said it is overloaded: 16 -> 8
        slow.on_overload(slow.on_send())  # twice (a request sent after the cut): 8 -> 4
        assert [lim.limit for lim in client.limits] == [4, 16]
        await asyncio.gather(*(client.post_json(CHAT, chat_payload(i)) for i in range(20)))
        s = client.stats()
        await client.aclose()
    # all 20 are placed before any answer: by in-flight / limit, i.e. 4 and 16
    assert s[f"requests/{fake_guard.url}"] < s[f"requests/{other.url}"]
    assert s[f"requests/{fake_guard.url}"] + s[f"requests/{other.url}"] == 20


def test_http_settings_are_one_strict_settings_class():
    from sinternal_verl.settings import ConfigError, Settings, load

    assert issubclass(HTTPClientConfig, Settings)
    assert all(f.description for f in HTTPClientConfig.model_fields.values())  # every field documented
    cfg = load(HTTPClientConfig, {"urls": "http://a:1, http://b:2/v1", "headers": {"X-Run": "7"}})
    assert cfg.urls == ("http://a:1", "http://b:2/v1") and cfg.headers == (("X-Run", "7"),)
    with pytest.raises(ConfigError, match="did you mean 'limit_max'"):
        load(HTTPClientConfig, {"urls": "http://a:1", "limit_maxx": 3})
    with pytest.raises(ValueError, match="limit_min <= limit_initial <= limit_max"):
        HTTPClientConfig(urls=("http://a:1",), limit_initial=2, limit_min=4)
    with pytest.raises(ValueError):
        HTTPClientConfig(urls=("http://a:1",), concurrency="sometimes")
    # a fixed bound is never silently ignored: given alone it selects fixed mode, given with
    # an explicit adaptive mode it is a conflict
    assert HTTPClientConfig(urls=("http://a:1",), max_concurrency_per_url=8).concurrency == "fixed"
    with pytest.raises(ValueError, match="concurrency='fixed'"):
        HTTPClientConfig(urls=("http://a:1",), concurrency="adaptive", max_concurrency_per_url=8)
    assert (
        HTTPClientConfig(urls=("http://a:1",), concurrency="fixed", max_concurrency_per_url=8)
        .new_limit()
        .limit
        == 8
    )
    # the guard's settings are the transport's (one definition), reward kwargs guard_<field>
    assert issubclass(GuardConfig, HTTPClientConfig)
    g = GuardConfig(urls=("http://a:1",), max_concurrency_per_url=7, timeout_s=3.0, api_key="k")
    mapped = HTTPClientConfig.from_guard_config(g)
    assert (mapped.max_concurrency_per_url, mapped.timeout_s, mapped.api_key, mapped.concurrency) == (
        7,
        3.0,
        "k",
        "fixed",
    )
    assert HTTPClientConfig.from_guard_config(GuardConfig(urls=("http://a:1",))).concurrency == "adaptive"
    with pytest.raises(ValueError, match="needs at least one base URL"):
        OpenAIHTTPClient(HTTPClientConfig())
    assert not hasattr(OpenAIHTTPClient, "from_urls")


async def test_guard_stats_carry_the_limits_for_metrics(fake_guard):
    g = guard(fake_guard.url)
    await g.moderate([ModerationItem("p")])
    flat = g.stats()
    await g.aclose()
    assert flat[f"http_limit{{{fake_guard.url}}}"] == 4 and flat[f"http_requests{{{fake_guard.url}}}"] == 1
    assert flat["http_requests"] == 1 and flat["retries"] == 0


class _InLoopServer:
    """A loopback OpenAI-style chat server in the test's own loop (``handle`` answers)."""

    async def __aenter__(self) -> str:
        app = web.Application()
        app.router.add_post(CHAT, self.handle)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        port = free_port()
        await web.TCPSite(self.runner, "127.0.0.1", port).start()
        return f"http://127.0.0.1:{port}"

    async def __aexit__(self, *exc) -> None:
        await self.runner.cleanup()


class _HoldingServer(_InLoopServer):
    """A loopback OpenAI-style server in the test's own loop that answers the first request at
    once and holds the others until it holds ``hold_until`` at the same moment (then answers
    every held one and all later ones at once), or for ``patience_s`` at most: what reached it
    at the same time is then a count, not a race."""

    def __init__(self, hold_until: int, patience_s: float = 30.0):
        self.hold_until, self.patience_s = hold_until, patience_s
        self.arrived = self.held = self.most_held = 0
        self.full = asyncio.Event()

    async def handle(self, request):
        await request.read()
        self.arrived += 1
        if self.arrived > 1 and not self.full.is_set():
            self.held += 1
            self.most_held = max(self.most_held, self.held)
            if self.held >= self.hold_until:
                self.full.set()
            try:
                await asyncio.wait_for(self.full.wait(), self.patience_s)
            except TimeoutError:
                self.full.set()
            self.held -= 1
        return web.json_response({"choices": [{"message": {"role": "assistant", "content": "Safety: Safe"}}]})


async def test_a_batch_s_last_callers_go_out_at_once_beyond_the_limit():
    # ``limit_tail`` (twentieth pass). A limit pinned at 4 (min = max), room for 4 more at a
    # batch's end; 8 callers: 4 are sent, 4 wait. The first answer gives one of them room,
    # and leaves 3 waiting plus 1 woken: no more than the room, so all of them go, beyond the
    # limit. The server answers nothing else until it holds 7 at once (3 + 1 + 3), which it
    # never would if the limit held them back (it would hold 4 and give up after 30 s).
    server = _HoldingServer(hold_until=7)
    async with server as url:
        client = transport(url, limit_initial=4, limit_min=4, limit_max=4, limit_signal="latency")
        got = await asyncio.gather(*(client.post_json(CHAT, chat_payload(i)) for i in range(8)))
        s = client.stats()
        await client.aclose()
    assert len(got) == 8 and s["successes"] == 8
    assert server.most_held == 7 and s[f"tail_sends/{url}"] == 3, (server.most_held, s)


class _GateServer(_InLoopServer):
    """A loopback OpenAI-style server in the test's own loop that answers only when the test
    says (``answer``: the oldest held requests first, and credit for later ones), so what the
    client has in flight at each step is a count the test sets."""

    def __init__(self):
        self.held: collections.deque[asyncio.Future] = collections.deque()
        self.credit = 0
        self.changed = asyncio.Event()

    async def handle(self, request):
        await request.read()
        if self.credit:
            self.credit -= 1
        else:
            fut = asyncio.get_running_loop().create_future()
            self.held.append(fut)
            self.changed.set()
            await fut
        return web.json_response({"choices": [{"message": {"role": "assistant", "content": "Safety: Safe"}}]})

    def answer(self, n: int) -> None:
        while n and self.held:
            self.held.popleft().set_result(None)
            n -= 1
        self.credit += n

    async def until_held(self, n: int) -> None:
        async with asyncio.timeout(60):  # a bound for a broken client only: the count is the test
            while len(self.held) < n:
                self.changed.clear()
                await self.changed.wait()

    async def __aexit__(self, *exc) -> None:
        self.answer(len(self.held))
        await super().__aexit__(*exc)


async def _finished(tasks: list[asyncio.Task], n: int) -> None:
    """Until ``n`` of ``tasks`` have their answers (a finished call has woken whom it wakes)."""
    pending = set(tasks)
    while len(tasks) - len(pending) < n:
        done, pending = await asyncio.wait(pending, timeout=60, return_when=asyncio.FIRST_COMPLETED)
        if not done:  # a bound for a broken client only: the count is the test
            raise AssertionError(
                f"{len(tasks) - len(pending)} of {len(tasks)} calls answered, waited for {n}"
            )


async def test_the_tail_goes_once_per_burst_and_not_again_for_a_stream():
    # A limit pinned at 4 with room for 4 more. Batch A (8 callers): one answer lets its last 4
    # go at once (3 beyond the limit). Batch B arrives while the limit is full; three answers
    # later 4 are in flight and 4 wait, which would fit in the room, but the burst's tail is
    # spent: B waits for room like any stream (else a steady stream, the reward server's, is
    # let out at each dip and can hold twice its limit for as long as it lasts). Batch C,
    # after the client ran dry, is a new burst: its tail goes again.
    server = _GateServer()
    async with server as url:
        client = transport(url, limit_initial=4, limit_min=4, limit_max=4, limit_signal="latency")
        tail = f"tail_sends/{url}"

        def post(n: int) -> list[asyncio.Task]:
            return [asyncio.ensure_future(client.post_json(CHAT, chat_payload(i))) for i in range(n)]

        a = post(8)
        await server.until_held(4)
        server.answer(1)
        await server.until_held(7)
        assert client.stats()[tail] == 3
        b = post(4)
        for _ in range(1000):  # loop turns, not time: B's callers queue on their first step
            if client.stats()["waiting"] == 4:
                break
            await asyncio.sleep(0)
        assert client.stats()["waiting"] == 4
        server.answer(3)
        await _finished(a, 4)
        s = client.stats()
        assert s["waiting"] == 4 and s[tail] == 3 and s["in_flight"] == 4, s
        server.answer(1)  # room for one: it goes within the limit
        await server.until_held(4)
        await _finished(a, 5)
        assert client.stats()["waiting"] == 3
        server.answer(7)
        await asyncio.gather(*a, *b)
        c = post(8)
        await server.until_held(4)
        server.answer(1)
        await server.until_held(7)
        assert client.stats()[tail] == 6
        server.answer(7)
        await asyncio.gather(*c)
        s = client.stats()
        await client.aclose()
    assert s["successes"] == 20 and s["waiting"] == 0, s


async def test_the_tail_is_bounded_by_its_room_and_off_at_zero_and_in_fixed_mode(fake_guard):
    # 40 callers on a limit pinned at 4: the tail goes out only once 4 or fewer wait, so
    # never more than 4 + 4 are in flight. With ``limit_tail=0``, or a fixed bound, the limit
    # is a hard one: 4 at most, and nothing is sent beyond it.
    httpx_post = __import__("httpx").post
    httpx_post(f"{fake_guard.url}/_control", json={"mode": "ok", "service_time_s": 0.02}).raise_for_status()
    u = fake_guard.url
    pinned = dict(limit_initial=4, limit_min=4, limit_max=4, limit_signal="latency")
    for kw, bound in (
        (pinned, 8),
        ({**pinned, "limit_tail": 0}, 4),
        (dict(concurrency="fixed", max_concurrency_per_url=4), 4),
    ):
        fake_guard.reset()  # its max_in_flight
        client = transport(u, **kw)
        await asyncio.gather(*(client.post_json(CHAT, chat_payload(i)) for i in range(40)))
        s = client.stats()
        await client.aclose()
        assert s["successes"] == 40 and fake_guard.stats()["max_in_flight"] <= bound, (kw, fake_guard.stats())
        assert s[f"tail_sends/{u}"] <= bound - 4, (kw, s)
