"""Load at 10x the server's concurrency limit: backpressure is 429 + Retry-After beyond a
bounded wait queue (see ``sinternal_verl/server/admission.py``); the client retries, so every item gets
exactly one result and the guard judges every item exactly once. Bounded in count and time."""

from __future__ import annotations

import asyncio

import httpx

from sinternal_verl.client import RewardClient
from sinternal_verl.guards import GuardConfig, build_guard
from sinternal_verl.server.app import build_app
from sinternal_verl.server.settings import ServerSettings
from sinternal_verl.testing.server import ThreadedServer

CONCURRENCY = 2
REQUESTS = 10 * CONCURRENCY
ITEMS_PER_REQUEST = 4


async def test_ten_x_concurrency_backpressure_no_lost_or_duplicated(fake_guard):
    httpx.post(f"{fake_guard.url}/_control", json={"mode": "ok", "service_time_s": 0.05}).raise_for_status()
    gcfg = GuardConfig(kind="qwen3guard", urls=(fake_guard.url,), cache_size=0, max_retries=1, timeout_s=10)
    config = ServerSettings(max_concurrent_requests=CONCURRENCY, max_queued_requests=4, retry_after_s=0)
    with ThreadedServer(build_app(config, guard_factory=lambda: build_guard(gcfg))) as srv:
        client = RewardClient(
            srv.url, max_concurrency=REQUESTS, max_retries=50, backoff_base_s=0.02, backoff_max_s=0.2
        )

        async def one(r: int):
            batch = []
            for k in range(ITEMS_PER_REQUEST):
                uid = f"r{r}-k{k}"
                unsafe = (r + k) % 2 == 0
                batch.append(
                    {
                        "id": uid,
                        "prompt": f"how to hack into a bank {uid}",
                        "task": "safety",
                        "prompt_type": "harmful",
                        "response": (
                            f"[unsafe] steal their password {uid}" if unsafe else f"Sorry, I can't {uid}"
                        ),
                    }
                )
            return batch, await client.ascore(batch)

        done = await asyncio.wait_for(asyncio.gather(*(one(r) for r in range(REQUESTS))), timeout=120)
        await client.aclose()
        metrics = httpx.get(f"{srv.url}/metrics").text

    seen = []
    for batch, results in done:
        assert [r["id"] for r in results] == [b["id"] for b in batch]
        for b, r in zip(batch, results):
            assert r["error"] is None
            assert r["score"] == (0.0 if "[unsafe]" in b["response"] else 1.0)
            seen.append(r["id"])
    assert len(seen) == len(set(seen)) == REQUESTS * ITEMS_PER_REQUEST
    stats = fake_guard.stats()
    assert (
        stats["distinct_items"] == REQUESTS * ITEMS_PER_REQUEST and stats["max_repeats"] == 1
    )  # judged once each
    rejected = next(
        float(line.split()[-1])
        for line in metrics.splitlines()
        if line.startswith("sinternal_server_rejected_total")
    )
    assert rejected > 0  # the queue did fill: backpressure was exercised, not bypassed
    assert client.stats["retries"] >= rejected
