"""RewardClient and the TRL adapter against a real server (uvicorn) and the fake guard."""

from __future__ import annotations

import asyncio

import pytest
from fastapi import FastAPI

from sinternal_verl.client import ItemScoreError, RewardClient, RewardClientError, RewardProtocolError
from sinternal_verl.guards import GuardConfig, build_guard
from sinternal_verl.integrations.trl import make_reward_func
from sinternal_verl.server.app import build_app
from sinternal_verl.server.settings import ServerSettings
from sinternal_verl.testing.server import ThreadedServer, free_port

HARMFUL = "How do I build a bomb?"


def _factory(url):
    cfg = GuardConfig(kind="qwen3guard", urls=(url,), max_retries=1, backoff_base_s=0.01, timeout_s=5.0)
    return lambda: build_guard(cfg)


@pytest.fixture
def server_url(fake_guard):
    with ThreadedServer(build_app(ServerSettings(), guard_factory=_factory(fake_guard.url))) as srv:
        yield srv.url


def _items():
    return [
        {
            "id": 0,
            "prompt": HARMFUL,
            "response": "Sorry, I can't help.",
            "task": "safety",
            "prompt_type": "harmful",
        },
        {
            "id": 1,
            "prompt": HARMFUL,
            "response": "[unsafe] detonator steps",
            "task": "safety",
            "prompt_type": "harmful",
        },
        {"id": 2, "prompt": "2+2?", "response": "\\boxed{4}", "task": "math", "ground_truth": "4"},
    ]


def test_sync_and_async_score(server_url):
    with RewardClient(server_url, max_items_per_request=2) as client:  # 3 items -> 2 requests
        assert client.ready()
        res = client.score(_items())
        assert [r["score"] for r in res] == [1.0, 0.0, 1.0] and [r["id"] for r in res] == [0, 1, 2]
        assert client.scores(_items()) == [1.0, 0.0, 1.0]
        assert client.stats["requests"] == 4

    async def run():
        async with RewardClient(server_url, max_items_per_request=1) as c:
            assert await c.aready()
            return await c.ascores(_items() * 3)

    assert asyncio.run(run()) == [1.0, 0.0, 1.0] * 3


def test_item_errors_raise_when_asked(server_url, fake_guard):
    fake_guard.fault("garbage")
    client = RewardClient(server_url)
    res = client.score(_items())
    assert res[0]["error"] and res[2]["score"] == 1.0
    with pytest.raises(ItemScoreError, match="item 0"):
        client.scores(_items())


def test_4xx_raises_at_once_and_5xx_retries(server_url, fake_guard):
    client = RewardClient(server_url, max_retries=2, backoff_base_s=0.01)
    with pytest.raises(RewardClientError, match="HTTP 422") as e:
        client.score([{"prompt": "x", "response": "y"}])
    assert e.value.status == 422 and client.stats["retries"] == 0
    fake_guard.fault("500")
    with pytest.raises(RewardClientError, match="3 attempt") as e:
        client.score(_items())
    assert "guard unavailable" in str(e.value) and client.stats["retries"] == 2
    # transient: the guard recovers while the client retries
    fake_guard.reset()
    assert client.scores(_items()) == [1.0, 0.0, 1.0]


def test_unreachable_server():
    client = RewardClient(f"http://127.0.0.1:{free_port()}", max_retries=1, backoff_base_s=0.01)
    assert client.ready() is False
    with pytest.raises(RewardClientError, match="ConnectError"):
        client.score(_items())


def test_short_or_reordered_answer_is_rejected():
    """A server that answers 200 with the wrong number of results, or out of order."""
    app = FastAPI()

    @app.post("/v1/score")
    async def bad(body: dict):
        items = body["items"]
        if len(items) > 2:
            return {"results": [{"id": items[0].get("id"), "score": 1.0, "error": None}]}
        return {"results": [{"id": it.get("id"), "score": 1.0, "error": None} for it in reversed(items)]}

    with ThreadedServer(app) as srv:
        client = RewardClient(srv.url)
        with pytest.raises(RewardProtocolError, match="1 results for 3 items"):
            client.score(_items())
        with pytest.raises(RewardProtocolError, match="reordered"):
            client.score(_items()[:2])


async def test_trl_adapter(server_url):
    reward = make_reward_func(server_url)
    assert reward.__name__ == "sinternal_reward" and asyncio.iscoroutinefunction(reward)
    # conversational format, as TRL passes it, with dataset columns as keyword lists
    prompts = [[{"role": "system", "content": "be safe"}, {"role": "user", "content": HARMFUL}]] * 2 + [
        [{"role": "user", "content": "2+2?"}]
    ]
    completions = [
        [{"role": "assistant", "content": "<think>no</think>Sorry, I can't."}],
        [{"role": "assistant", "content": "[unsafe] here is how to build a bomb"}],
        [{"role": "assistant", "content": "<think>2+2=4</think>\\boxed{4}"}],
    ]
    out = await reward(
        prompts=prompts,
        completions=completions,
        completion_ids=[[1], [2], [3]],
        task=["safety", "safety", "math"],
        prompt_type=["harmful", "harmful", None],
        solution=[None, None, "4"],
        trainer_state=None,
    )
    assert out == [1.0, 0.0, 1.0]
    # standard (string) format
    out = await reward(prompts=["2+2?"], completions=["\\boxed{5}"], task=["math"], ground_truth=["4"])
    assert out == [0.0]
    await reward.client.aclose()


async def test_trl_adapter_item_errors(server_url, fake_guard):
    fake_guard.fault("garbage")
    strict, lenient = make_reward_func(server_url), make_reward_func(server_url, on_item_error="none")
    kw = dict(
        prompts=[HARMFUL, "2+2?"],
        completions=["Sorry, no.", "\\boxed{4}"],
        task=["safety", "math"],
        prompt_type=["harmful", None],
        ground_truth=[None, "4"],
    )
    with pytest.raises(ItemScoreError):
        await strict(**kw)
    assert await lenient(**kw) == [None, 1.0]
