"""Guard replica pool on a real local multi-node Ray cluster (3 nodes, one fake GPU each),
with the ``rules`` engine: real rendering (per-kind ``build_payload``) and real parsing,
no model. Checks placement (SPREAD over nodes), restart of a killed replica with no lost
request, attach by name, and the failure when every replica is gone."""

from __future__ import annotations

import asyncio
import time

import pytest

ray = pytest.importorskip("ray")
from ray.cluster_utils import Cluster  # noqa: E402

from sinternal_verl.guards.ray_pool import RayGuardPool, RayPoolConfig  # noqa: E402
from sinternal_verl.guards.types import GuardUnavailableError, ModerationItem, Refusal, SafetyLabel  # noqa: E402

pytestmark = pytest.mark.slow

NODES = 3


@pytest.fixture(scope="module")
def cluster():
    c = Cluster(
        initialize_head=True, head_node_args={"num_cpus": 1, "num_gpus": 1, "include_dashboard": False}
    )
    for _ in range(NODES - 1):
        c.add_node(num_cpus=1, num_gpus=1)
    ray.init(address=c.address, namespace="sinternal-test", log_to_driver=False)
    c.wait_for_nodes()
    try:
        yield c
    finally:
        ray.shutdown()
        c.shutdown()


def _items(n: int) -> list[ModerationItem]:
    out = []
    for i in range(n):
        if i % 3 == 0:
            out.append(
                ModerationItem(
                    prompt=f"q{i}: how do I make a bomb",
                    response=f"[unsafe] here is how to build a bomb #{i}",
                )
            )
        elif i % 3 == 1:
            out.append(
                ModerationItem(
                    prompt=f"q{i}: how do I make a bomb", response=f"Sorry, I can't help with that #{i}"
                )
            )
        else:
            out.append(ModerationItem(prompt=f"q{i}: what is 2+2?", response=f"It is 4 #{i}"))
    return out


def _check(items, verdicts):
    assert len(verdicts) == len(items)
    for i, (it, v) in enumerate(zip(items, verdicts)):
        assert v.parse_ok, v
        assert f"#{i}" in it.response
        if i % 3 == 0:
            assert v.label is SafetyLabel.UNSAFE
        else:
            assert v.label is SafetyLabel.SAFE
        assert v.refusal is (Refusal.YES if i % 3 == 1 else Refusal.NO)
        assert v.source.startswith("ray://sinternal-test/pool-a/replica-")


#: the rules engine's context bound (whitespace words) for the per-item length check
MAX_WORDS = 60


@pytest.fixture(scope="module")
def pool(cluster):
    cfg = RayPoolConfig(
        name="pool-a",
        namespace="sinternal-test",
        kind="qwen3guard",
        engine="rules",
        num_replicas=NODES,
        num_gpus_per_replica=1,
        num_cpus_per_replica=0.5,
        chunk_size=4,
        max_attempts=3,
        call_timeout_s=30,
        ready_timeout_s=120,
        engine_kwargs={"service_time_s": 0.05, "max_model_len": MAX_WORDS},
    )
    p = RayGuardPool.create(cfg)
    yield p
    p.shutdown()


def test_replicas_spread_over_nodes(cluster, pool):
    infos = pool.replica_info()
    nodes = {n["NodeID"] for n in ray.nodes() if n["Alive"]}
    assert len(infos) == NODES
    assert {i["node_id"] for i in infos} == nodes  # one replica per node
    assert all(len(i["gpu_ids"]) == 1 for i in infos)


async def test_moderate_parses_and_balances(pool):
    items = _items(30)
    verdicts = await pool.moderate(items)
    _check(items, verdicts)
    calls = [i["calls"] for i in pool.replica_info()]
    assert sum(calls) >= 8 and all(c > 0 for c in calls), calls  # 8 chunks spread over all replicas
    assert (await pool.check_ready()).ready


async def test_killed_replica_restarts_and_nothing_is_lost(pool):
    before = pool.replica_info()[0]
    retries_before = pool.stats()["retries"]
    items = _items(300)  # 75 chunks of 0.05 s over 3 replicas, 2 at a time each: ~0.6 s of work
    task = asyncio.ensure_future(pool.moderate(items))
    # Kill once the chunks are with the replicas: a count, not a guessed sleep. A fixed 0.15 s
    # failed once in a clean-clone CI beside another job (nothing was retried: the kill came
    # before any call of replica 0 was under way, or after all of them were done)
    deadline = time.monotonic() + 60
    while pool.stats()["in_flight"] < 1:
        assert time.monotonic() < deadline and not task.done(), "the chunks were never dispatched"
        await asyncio.sleep(0.005)
    ray.kill(pool.handles[0], no_restart=False)
    verdicts = await task
    _check(items, verdicts)  # every item answered, in order, none duplicated
    assert (
        pool.stats()["retries"] - retries_before >= 1
    )  # the dead replica's chunks were re-sent to the others
    # Ray brings replica 0 back (new process), and it serves again
    deadline = time.monotonic() + 60
    while True:
        try:
            after = pool.replica_info(timeout_s=10)[0]
            break
        except Exception:
            assert time.monotonic() < deadline, "replica 0 did not come back"
            await asyncio.sleep(0.5)
    assert after["pid"] != before["pid"]
    _check(items[:12], await pool.moderate(items[:12]))


async def test_engine_error_in_every_replica_is_unavailable_not_a_crash(pool):
    """An exception raised by the engine inside a replica (RayTaskError) is retried on the
    other replicas, then surfaces as GuardUnavailableError, which on_guard_error handles."""
    bad = [ModerationItem(prompt="q", response="[engine-error] boom")]
    with pytest.raises(GuardUnavailableError, match="RayTaskError"):
        await pool.moderate(bad)
    _check(_items(3), await pool.moderate(_items(3)))  # the replicas still serve


async def test_one_over_long_item_is_rejected_alone_not_the_whole_chunk(pool):
    """vLLM's offline engine raises for a whole call when one prompt exceeds max_model_len;
    the replica checks lengths per item, so only that item is rejected (status 400 with the
    bound in the message) and the rest of its chunk is judged."""
    items = _items(4)
    long_item = ModerationItem(prompt="q " * MAX_WORDS, response="a long answer")
    mixed = items[:2] + [long_item] + items[2:]
    rejected_before = pool.stats()["rejected"]
    verdicts = await pool.moderate(mixed)
    bad = verdicts[2]
    assert bad.rejected and bad.status == 400 and not bad.parse_ok and bad.label is None
    assert f"maximum context length is {MAX_WORDS}" in bad.message
    _check(items, verdicts[:2] + verdicts[3:])
    assert pool.stats()["rejected"] - rejected_before == 1


async def test_connect_by_name(pool):
    other = RayGuardPool.connect("pool-a", namespace="sinternal-test", chunk_size=2)
    assert other.kind == "qwen3guard" and len(other.handles) == NODES and other.config.chunk_size == 2
    items = _items(7)
    _check(items, await other.moderate(items))
    with pytest.raises(GuardUnavailableError, match="no replicas"):
        RayGuardPool.connect("no-such-pool", namespace="sinternal-test")


async def test_all_replicas_gone_is_unavailable(cluster):
    cfg = RayPoolConfig(
        name="pool-b",
        namespace="sinternal-test",
        kind="llamaguard",
        engine="rules",
        num_replicas=1,
        num_gpus_per_replica=0,
        num_cpus_per_replica=0.1,
        max_restarts=0,
        max_attempts=2,
        call_timeout_s=10,
    )
    p = RayGuardPool.create(cfg)
    v = await p.moderate([ModerationItem(prompt="hi", response="[unsafe] detonator wiring")])
    assert v[0].label is SafetyLabel.UNSAFE
    p.shutdown()
    with pytest.raises(GuardUnavailableError, match="pool-b"):
        await p.moderate([ModerationItem(prompt="hi", response="hello")])


def test_reward_server_on_the_pool(pool):
    """The reward server with the Ray pool as its guard backend (what serve_app / the CLI's
    --guard-backend ray_pool do): the pool's verdicts reach the reward."""
    import httpx

    from sinternal_verl.server.app import build_app
    from sinternal_verl.server.settings import ServerSettings
    from sinternal_verl.testing.server import ThreadedServer

    factory = lambda: RayGuardPool.connect("pool-a", namespace="sinternal-test")  # noqa: E731
    with ThreadedServer(build_app(ServerSettings(), guard_factory=factory)) as srv:
        assert httpx.get(f"{srv.url}/ready", timeout=30).json()["ready"] is True
        batch = [
            {
                "prompt": "how to make a bomb",
                "response": "Sorry, I can't.",
                "task": "safety",
                "prompt_type": "harmful",
            },
            {
                "prompt": "how to make a bomb",
                "response": "[unsafe] detonator",
                "task": "safety",
                "prompt_type": "harmful",
            },
        ]
        body = httpx.post(f"{srv.url}/v1/score", json={"items": batch}, timeout=60).json()
        assert [r["score"] for r in body["results"]] == [1.0, 0.0]
        assert "sinternal_guard_chunks_total" in httpx.get(f"{srv.url}/metrics").text


def test_serve_app_builds():
    pytest.importorskip("ray.serve")
    from ray.serve import Application

    from sinternal_verl.server.serve_app import app_builder

    assert isinstance(app_builder({"reward_kwargs": {"guard_kind": "lexical"}, "max_items": 10}), Application)
