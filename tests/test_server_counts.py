"""The ``server_counts`` limit signal: a serving engine's running/waiting gauges from its
``/metrics`` (parser), the limit they steer (plain numbers, no clocks), and the transport
that reads them from a real loopback server, with its failure paths."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from itertools import count

import httpx
import pytest

from sinternal_verl.guards.http import HTTPClientConfig, OpenAIHTTPClient
from sinternal_verl.guards.limiter import AdaptiveLimit
from sinternal_verl.guards.server_counts import parse_server_counts
from sinternal_verl.testing.fake_openai import build_app
from sinternal_verl.testing.server import ThreadedServer

# ---------------------------------------------------------------- the parser
#: the two gauges as vLLM 0.x prints them (a data-parallel server: one line per engine), among
#: histogram lines that must not be mistaken for them
VLLM = """# HELP vllm:num_requests_running Number of requests in model execution batches.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0",model_name="Qwen/Qwen3Guard-Gen-4B"} 16.0
vllm:num_requests_running{engine="1",model_name="Qwen/Qwen3Guard-Gen-4B"} 15.0
# HELP vllm:num_requests_waiting Number of requests waiting to be processed.
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{engine="0",model_name="Qwen/Qwen3Guard-Gen-4B"} 3.0
vllm:num_requests_waiting{engine="1",model_name="Qwen/Qwen3Guard-Gen-4B"} 0.0
vllm:num_requests_waiting_by_reason{engine="0",reason="capacity"} 99.0
vllm:request_queue_time_seconds_bucket{engine="0",le="0.3"} 12.0
"""

#: SGLang's names (its docs' production metrics page), a label value with a space and a brace
SGLANG = """# TYPE sglang:num_running_reqs gauge
sglang:num_running_reqs{model_name="my guard {v2}"} 8
sglang:num_queue_reqs{model_name="my guard {v2}"} 4 1733300000000
sglang:token_usage{model_name="my guard {v2}"} 0.28
"""


def test_the_parser_sums_vllm_s_gauges_over_engines_and_skips_look_alikes():
    assert parse_server_counts(VLLM) == (31, 3)


def test_the_parser_reads_sglang_s_gauges_with_awkward_labels_and_a_timestamp():
    assert parse_server_counts(SGLANG) == (8, 4)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "process_cpu_seconds_total 1.0\n",
        "vllm:num_requests_running 3\n",  # the queue gauge missing: not enough to steer by
        "vllm:num_requests_running NaN\nvllm:num_requests_waiting 1\n",  # no finite running value
        'vllm:num_requests_running{engine="0"}\nvllm:num_requests_waiting 1\n',  # no value
        "<html>Not Found</html>",
    ],
)
def test_the_parser_says_none_without_both_gauges(text):
    assert parse_server_counts(text) is None


# ---------------------------------------------------------------- the limit
def busy(limit: AdaptiveLimit, n: int = 4096) -> AdaptiveLimit:
    """``n`` requests sent and not answered: never app-limited while the limit stays under 2n."""
    for _ in range(n):
        limit.on_send()
    return limit


def test_counts_steer_only_once_the_server_was_seen_to_queue():
    lim = busy(AdaptiveLimit(32))
    lim.observe_upstream(20, 0)  # no queue yet: the batch size is unknown
    assert (lim.slots, lim.limit, lim.slow_start, lim.readings) == (0, 32, True, 1)
    lim.observe_upstream(64, 10)
    assert lim.slots == 64 and not lim.slow_start
    lim.observe_upstream(60, 30)  # fewer running while some wait: the batch stays 64
    assert lim.slots == 64


def test_clients_reading_the_same_counts_meet_at_one_limit_quickly():
    # Two clients of a 512-slot server, 3 x apart (one came out of slow start later). The
    # server's counts follow from what they keep in flight; both read them. The latency
    # gradient would even them out by about 2 % of the difference per window at these limits
    # (sixteenth pass); the counts give both one target, so they meet at counts_gain per
    # reading, and the server holds its batch plus each client's share of the queue.
    a, b = busy(AdaptiveLimit(150)), busy(AdaptiveLimit(450))
    for _ in range(300):
        total = a.limit + b.limit
        running, waiting = min(total, 512), max(0, total - 512)
        a.observe_upstream(running, waiting)
        b.observe_upstream(running, waiting)
    assert abs(a.limit - b.limit) <= 0.02 * (a.limit + b.limit) / 2
    alpha = 0.1 * 512
    assert 512 + 1.5 * alpha <= a.limit + b.limit <= 512 + 2.5 * alpha


def test_idle_slots_are_filled_and_an_app_limited_client_does_not_grow():
    lim = busy(AdaptiveLimit(40))
    lim.observe_upstream(64, 8)  # the batch is 64
    before = lim.limit
    for _ in range(5):
        lim.observe_upstream(32, 0)  # half the slots idle
    assert lim.limit > before
    idle = AdaptiveLimit(40)
    idle.on_send()  # one request in flight: app-limited
    idle.observe_upstream(64, 8)
    idle.observe_upstream(32, 0)
    assert idle.limit == 40


def test_the_limit_at_most_doubles_per_round_trip_of_readings():
    # A queue of 1 against a share of 51 asks for a fiftyfold, and a reading comes before
    # the last one's sends show in the counts. Readings every 50 ms at a 100 ms floor: at
    # most x sqrt(2) per reading, x 2 per round trip (the reward server's stream start at cap
    # 128 went 130 -> 260 -> 460 in two readings, and queued 0.58 x cap on average).
    lim = AdaptiveLimit(128, window_min=4, counts_share=0.4, counts_every_s=0.05)
    first = [lim.on_send() for _ in range(4)]
    for t in first:
        lim.on_sample(0.1, 4, t)
    assert lim.floor == pytest.approx(0.1)
    busy(lim)
    start = lim.limit
    lim.observe_upstream(128, 1)
    assert lim.slots == 128 and start < lim.limit <= math.sqrt(2) * start + 1
    lim.observe_upstream(128, 1)
    assert lim.limit <= 2 * start + 1
    slow = AdaptiveLimit(128, window_min=4, counts_share=0.4, counts_every_s=0.05)
    busy(slow).observe_upstream(128, 1)  # no floor yet: one reading is a round trip
    assert slow.limit == 2 * start


def test_while_counts_steer_there_are_no_drains_and_forgetting_them_brings_latency_back():
    lim = busy(AdaptiveLimit(32))
    lim.observe_upstream(64, 8)
    lim.drain()
    assert lim.drains == 0 and not lim.draining
    lim.forget_upstream()
    assert lim.slots == 0
    lim.drain()
    assert lim.drains == 1 and lim.draining


def test_bad_counts_and_settings_are_refused():
    with pytest.raises(ValueError, match="server counts must be >= 0"):
        AdaptiveLimit().observe_upstream(-1, 0)
    with pytest.raises(ValueError, match="counts_share"):
        AdaptiveLimit(counts_share=0)
    with pytest.raises(ValueError, match="counts_gain"):
        AdaptiveLimit(counts_gain=1.5)
    with pytest.raises(ValueError, match="counts_every_s"):
        AdaptiveLimit(counts_every_s=0)
    with pytest.raises(ValueError, match="limit_signal"):
        HTTPClientConfig(urls=("http://a:1",), limit_signal="queue")


# ---------------------------------------------------------------- the transport
CHAT = "/v1/chat/completions"


def payload(i: int) -> dict:
    return {"model": "Qwen/Qwen3Guard-Gen-4B", "messages": [{"role": "user", "content": f"prompt {i}"}]}


@pytest.fixture
def slow_guard():
    """A fake guard of 4 slots x 20 ms (a queue forms at once), its /metrics as vLLM's."""
    with ThreadedServer(build_app(service_time_s=0.02, max_concurrency=4)) as srv:
        yield srv.url


def client_for(url: str, **kw) -> OpenAIHTTPClient:
    cfg = dict(limit_signal="server_counts", limit_counts_every_s=0.005, limit_initial=16, max_retries=1)
    return OpenAIHTTPClient(HTTPClientConfig(urls=(url,), **{**cfg, **kw}))


async def run(client: OpenAIHTTPClient, n: int) -> dict:
    await asyncio.gather(*(client.post_json(CHAT, payload(i)) for i in range(n)))
    s = client.stats()
    await client.aclose()
    return s


async def test_the_transport_reads_the_server_s_counts_and_they_steer_the_limit(slow_guard):
    # 16 sent at once on 4 slots: the first answers find 12 waiting, so the limit learns
    # the batch from the first reading that sees a queue and is steered by the counts.
    s = await run(client_for(slow_guard), 120)
    fake = httpx.get(f"{slow_guard}/_stats").json()
    assert s["successes"] == 120 and s["errors"] == 0
    assert s[f"counts_reads/{slow_guard}"] >= 1 and s[f"counts_errors/{slow_guard}"] == 0
    assert fake["counts"]["metrics"] >= s[f"counts_reads/{slow_guard}"]
    assert 1 <= s[f"server_slots/{slow_guard}"] <= 4
    assert s[f"drains/{slow_guard}"] == 0


async def test_the_counts_are_read_by_default(slow_guard):
    s = await run(OpenAIHTTPClient(HTTPClientConfig(urls=(slow_guard,))), 40)
    assert s["successes"] == 40
    assert s[f"counts_reads/{slow_guard}"] >= 1 and s[f"counts_errors/{slow_guard}"] == 0


@pytest.mark.parametrize("which", [dict(limit_signal="latency"), dict(concurrency="fixed")])
async def test_latency_or_a_fixed_bound_reads_no_counts(slow_guard, which):
    s = await run(OpenAIHTTPClient(HTTPClientConfig(urls=(slow_guard,), **which)), 40)
    assert "counts_reads/" + slow_guard not in s and "server_slots/" + slow_guard not in s
    assert httpx.get(f"{slow_guard}/_stats").json()["counts"].get("metrics", 0) == 0


@pytest.mark.parametrize("mode", ["off", "garbage", "401"])
async def test_a_server_without_the_gauges_is_steered_by_latency_for_good(slow_guard, mode, caplog):
    # A 404, a /metrics without vLLM's or SGLang's gauges, or one refused to us (401): not a
    # server to read. Every
    # request still succeeds; the failed readings are counted and said once in the log.
    httpx.post(f"{slow_guard}/_control", json={"metrics": mode}).raise_for_status()
    with caplog.at_level(logging.WARNING, logger="sinternal_verl.guards.http"):
        s = await run(client_for(slow_guard), 60)
    fake = httpx.get(f"{slow_guard}/_stats").json()
    assert s["successes"] == 60 and s["errors"] == 0
    assert s[f"counts_reads/{slow_guard}"] == 0
    assert s[f"counts_errors/{slow_guard}"] == fake["counts"]["metrics"] >= 1
    assert f"server_slots/{slow_guard}" not in s
    said = [r.getMessage() for r in caplog.records if "/metrics" in r.getMessage()]
    assert len(said) == 1 and "steered by latency" in said[0], said


async def test_failing_readings_hand_the_limit_back_to_latency_and_readings_resume(slow_guard, caplog):
    # Counts steer, then /metrics answers 500 (a server restarting): after three failures in
    # a row latency steers again; readings resume after limit_counts_retry_s (0 here), and
    # once /metrics answers again they are taken. The requests never notice. The fake serves
    # 4 at a time for 20 ms, so 100 requests keep the client busy for half a second at least:
    # readings every 5 ms, one at a time, fail far more than three times.
    client = client_for(slow_guard, limit_counts_retry_s=0)
    await asyncio.gather(*(client.post_json(CHAT, payload(i)) for i in range(60)))
    assert client.limits[0].slots >= 1
    reads = client.stats()[f"counts_reads/{slow_guard}"]
    httpx.post(f"{slow_guard}/_control", json={"metrics": "500"}).raise_for_status()
    with caplog.at_level(logging.WARNING, logger="sinternal_verl.guards.http"):
        await asyncio.gather(*(client.post_json(CHAT, payload(i)) for i in range(100)))
    s = client.stats()
    assert s["successes"] == 160 and s["errors"] == 0
    assert client.limits[0].slots == 0 and f"server_slots/{slow_guard}" not in s
    assert s[f"counts_errors/{slow_guard}"] >= 3
    said = [r.getMessage() for r in caplog.records if "failed 3 times in a row" in r.getMessage()]
    assert said and "steered by latency" in said[0]
    httpx.post(f"{slow_guard}/_control", json={"metrics": "vllm"}).raise_for_status()
    s = await run(client, 100)
    assert s["successes"] == 260 and s[f"counts_reads/{slow_guard}"] > reads


def round_robin_balancer(backends: list[str]):
    """A load balancer in front of ``backends``: requests go round robin, and ``/metrics``
    is the first backend's, as behind any balancer that routes the scrape to one replica."""

    from starlette.applications import Starlette
    from starlette.responses import Response
    from starlette.routing import Route

    turn = count()
    client = httpx.AsyncClient(timeout=30)

    async def forward(request):
        base = backends[0] if request.url.path == "/metrics" else backends[next(turn) % len(backends)]
        r = await client.request(request.method, base + request.url.path, content=await request.body())
        return Response(r.content, status_code=r.status_code, media_type=r.headers.get("content-type"))

    @contextlib.asynccontextmanager
    async def lifespan(app):
        yield
        await client.aclose()

    routes = [Route(p, forward, methods=["GET", "POST"]) for p in ("/metrics", CHAT)]
    return Starlette(routes=routes, lifespan=lifespan)


async def test_behind_a_load_balancer_the_counts_keep_less_queue_not_more():
    # One URL, two cap-4 replicas, /metrics from one of them: every count is half the
    # whole, and the rule, made of ratios, takes one replica's batch for the server's. The
    # job's share (0.4 x 4 slots) then spreads over both replicas: less queue than meant,
    # never a flood of the 200 requests at once.
    apps = [build_app(service_time_s=0.02, max_concurrency=4) for _ in range(2)]
    with ThreadedServer(apps[0]) as a, ThreadedServer(apps[1]) as b:
        with ThreadedServer(round_robin_balancer([a.url, b.url])) as lb:
            s = await run(client_for(lb.url), 200)
            replicas = [httpx.get(f"{u}/_stats").json() for u in (a.url, b.url)]
    assert s["successes"] == 200 and s[f"counts_reads/{lb.url}"] >= 1
    assert s[f"server_slots/{lb.url}"] <= 4  # one replica's batch
    assert [r["counts"]["chat"] for r in replicas] == [100, 100]
    assert all(r["mean_waiting"] <= 4 for r in replicas), replicas
