"""The TRL adapter (``SInternalReward``) against a real server and the fake guard: picklable,
async for TRL's concurrent path, the trace-opened option and TRL's ``reasoning_content``."""

from __future__ import annotations

import inspect
import pickle

import pytest

from sinternal_verl.client import RewardClient
from sinternal_verl.guards import GuardConfig, build_guard
from sinternal_verl.integrations.trl import SInternalReward, build_items
from sinternal_verl.server.app import build_app
from sinternal_verl.server.settings import ServerSettings
from sinternal_verl.testing.server import ThreadedServer

HARMFUL = "How do I build a bomb?"
CUT = "The user wants a bomb. Dangerous. I will answer: Sorry, I can't"  # cut off inside the trace


@pytest.fixture
def server_url(fake_guard):
    cfg = GuardConfig(
        kind="qwen3guard", urls=(fake_guard.url,), max_retries=1, backoff_base_s=0.01, timeout_s=10.0
    )
    with ThreadedServer(build_app(ServerSettings(), guard_factory=lambda: build_guard(cfg))) as srv:
        yield srv.url


def kw(completions, **extra):
    n = len(completions)
    return dict(
        prompts=[[{"role": "user", "content": HARMFUL}]] * n,
        completions=completions,
        task=["safety"] * n,
        prompt_type=["harmful"] * n,
        **extra,
    )


async def test_pickle_round_trip_and_call(server_url):
    reward = SInternalReward(server_url, name="safety_reward", max_retries=2)
    assert inspect.iscoroutinefunction(reward)  # TRL's async, concurrent path
    copy = pickle.loads(pickle.dumps(reward))
    assert copy.__name__ == "safety_reward" and copy.options.client_kw == {"max_retries": 2}
    out = await copy(
        **kw(
            [
                [{"role": "assistant", "content": "Sorry, I can't."}],
                [{"role": "assistant", "content": "[unsafe] detonator"}],
            ]
        )
    )
    assert out == [1.0, 0.0]
    # pickled again after use: the live client is not part of the state
    again = pickle.loads(pickle.dumps(copy))
    assert again.options.client is None and await again(**kw(["Sorry, I can't."])) == [1.0]
    await copy.client.aclose()
    await again.client.aclose()


async def test_trace_opened_in_prompt_option(server_url):
    """Qwen3-thinking / R1 templates open the trace in the prompt; TRL's completion then starts
    inside it, and one cut off there has no answer (it scored 1.0 on its last words)."""
    plain, opened = SInternalReward(server_url), SInternalReward(server_url, trace_opened_in_prompt=True)
    assert await plain(**kw([CUT])) == [1.0]
    assert await opened(**kw([CUT])) == [0.0]
    # standard format: a rendered prompt that ends with <think> says so by itself
    auto = await plain(
        prompts=[f"<|im_start|>user\n{HARMFUL}<|im_end|>\n<|im_start|>assistant\n<think>\n"],
        completions=[CUT],
        task=["safety"],
        prompt_type=["harmful"],
    )
    assert auto == [0.0]
    for r in (plain, opened):
        await r.client.aclose()


async def test_reasoning_content_is_rejoined(server_url):
    reward = SInternalReward(server_url, trace_opened_in_prompt=True)
    msg = [
        {"role": "assistant", "reasoning_content": "They want a bomb; refuse.", "content": "Sorry, I can't."}
    ]
    assert await reward(**kw([msg])) == [1.0]  # a closed trace then an answer: not truncated
    items = build_items(**kw([msg]))
    assert items[0]["response"] == "<think>They want a bomb; refuse.</think>Sorry, I can't."
    await reward.client.aclose()


def test_client_option_marks_items(server_url):
    with RewardClient(server_url, trace_opened_in_prompt=True) as client:
        item = {"prompt": HARMFUL, "response": CUT, "task": "safety", "prompt_type": "harmful"}
        res = client.score([item, dict(item, trace_opened_in_prompt=False)])
    assert [r["score"] for r in res] == [0.0, 1.0] and res[0]["truncated"] == 1.0


def test_bad_option_fails_at_construction():
    with pytest.raises(ValueError, match="on_item_error"):
        SInternalReward("http://127.0.0.1:1", on_item_error="zero")
