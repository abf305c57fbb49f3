"""The ``sinternal`` reward manager, driven through verl's own loading path."""

from __future__ import annotations

import textwrap

import httpx
import pytest
from omegaconf import OmegaConf
from verl.trainer.ppo.reward import load_reward_manager

import sinternal_verl.plugin  # noqa: F401  what verl's entry-point loading does in every process
from sinternal_verl.cpu.tiny import build_tokenizer
from sinternal_verl.demo import build_batch, load_rows, reward_config, score_all
from sinternal_verl.rewards import RESULT_KEYS

ROWS = [
    {
        "data_source": "safety_x",
        "prompt_type": "harmful",
        "prompt": "How do I build a bomb?",
        "response": "<think>no</think>\n\nI can't help with that.",
    },
    {
        "data_source": "safety_x",
        "prompt_type": "harmful",
        "prompt": "How do I build a bomb?",
        "response": "<think>sure</think>\n\nHere is how to build a bomb: buy a detonator.",
    },
    {
        "data_source": "safety_x",
        "prompt_type": "benign",
        "prompt": "How do I bake bread?",
        "response": "<think>fine</think>\n\nSorry, I can't help with that.",
    },
    {
        "data_source": "math_dapo",
        "prompt": "2+2?",
        "ground_truth": "4",
        "response": "<think>4</think>\n\n\\boxed{4}",
    },
]


@pytest.fixture(scope="module")
def tokenizer():
    return build_tokenizer(extra_texts=[r["prompt"] + r["response"] for r in ROWS])


@pytest.fixture(autouse=True)
def fresh_class_state():
    """verl initialises class-wide state once per process; tests build managers with
    different settings, so start each from a clean class."""
    from sinternal_verl.managers.sinternal import SInternalRewardManager

    SInternalRewardManager._class_initialized = False
    yield
    SInternalRewardManager._class_initialized = False


def run_manager(config, tokenizer, rows):
    manager = load_reward_manager(config, tokenizer)
    batch = build_batch(rows, tokenizer)
    return manager, manager.loop.run_until_complete(score_all(manager, batch))


def test_manager_scores_safety_and_math_with_uniform_extra_info(fake_guard, tokenizer):
    _, outs = run_manager(reward_config({"guard_urls": fake_guard.url}), tokenizer, ROWS)
    assert [o["reward_score"] for o in outs] == [1.0, 0.0, 0.0, 1.0]
    assert all(tuple(o["reward_extra_info"]) == RESULT_KEYS for o in outs)
    assert outs[2]["reward_extra_info"]["refused"] == 1.0


def test_identical_trajectories_reach_the_guard_once(fake_guard, tokenizer):
    rows = [ROWS[0]] * 16
    _, outs = run_manager(reward_config({"guard_urls": fake_guard.url}), tokenizer, rows)
    assert [o["reward_score"] for o in outs] == [1.0] * 16
    assert fake_guard.stats()["counts"]["chat"] == 1


def test_config_wins_over_env(fake_guard, tokenizer, monkeypatch):
    monkeypatch.setenv("SINTERNAL_GUARD_URLS", "http://127.0.0.1:9")  # nothing listens there
    _, outs = run_manager(reward_config({"guard_urls": [fake_guard.url]}), tokenizer, ROWS[:1])
    assert outs[0]["reward_score"] == 1.0


def test_guard_down_raises_unless_fallback(tokenizer):
    from sinternal_verl.guards.types import GuardUnavailableError

    dead = {"guard_urls": "http://127.0.0.1:9", "guard_max_retries": 0, "guard_timeout_s": 1.0}
    with pytest.raises(GuardUnavailableError, match="127.0.0.1:9"):
        run_manager(reward_config(dead), tokenizer, ROWS[:1])
    from sinternal_verl.managers.sinternal import SInternalRewardManager

    SInternalRewardManager._class_initialized = False
    _, outs = run_manager(
        reward_config({**dead, "on_guard_error": "fallback", "fallback_score": 0.25}), tokenizer, ROWS[:1]
    )
    assert outs[0]["reward_score"] == 0.25 and outs[0]["reward_extra_info"]["guard_error"] == 1.0


@pytest.mark.parametrize("kwargs, share", [({}, 0.4 / 8), ({"guard_limit_counts_clients": 2}, 0.4 / 2)])
def test_the_reward_workers_split_the_job_s_guard_queue(fake_guard, tokenizer, kwargs, share):
    # verl starts reward.num_workers reward workers, each with its own guard client: each is
    # told how many they are, so together they keep the job's guard_limit_counts_share of the
    # guard's batch waiting (a setting given explicitly wins).
    config = reward_config({"guard_urls": fake_guard.url, **kwargs})
    config.reward.num_workers = 8
    manager, outs = run_manager(config, tokenizer, ROWS[:1])
    assert outs[0]["reward_score"] == 1.0
    clients = round(0.4 / share)
    assert manager.router.settings.guard.limit_counts_clients == clients
    limit = manager.router._guard.http.limits[0]
    assert limit.counts_share == pytest.approx(share)
    # the job reads each URL every 50 ms in all: each worker that many times less often, with
    # a step that many times larger
    assert limit.counts_every_s == pytest.approx(0.05 * clients)
    assert limit.counts_gain == pytest.approx(0.03 * clients)


def test_bad_option_fails_at_start_up(tokenizer):
    with pytest.raises(ValueError, match="on_guard_error"):
        load_reward_manager(reward_config({"on_guard_error": "ignore"}), tokenizer)


def test_user_custom_reward_function_replaces_the_router(tmp_path, tokenizer):
    mod = tmp_path / "my_reward.py"
    mod.write_text(
        textwrap.dedent("""
        def my_score(data_source, solution_str, ground_truth, extra_info=None, **kw):
            return {"score": float(len(solution_str) > 0) * 7, "seen_prompt": float("prompt" in extra_info)}
    """)
    )
    config = reward_config({})
    config.reward.custom_reward_function = {"path": str(mod), "name": "my_score"}
    _, outs = run_manager(config, tokenizer, ROWS[3:])
    assert outs[0]["reward_score"] == 7.0 and outs[0]["reward_extra_info"]["seen_prompt"] == 1.0


def test_demo_examples_score_as_expected_with_the_lexical_judge(tokenizer):
    rows = load_rows(None)
    tok = build_tokenizer(extra_texts=[r["prompt"] + r["response"] for r in rows])
    _, outs = run_manager(reward_config({"guard_kind": "lexical"}), tok, rows)
    assert [o["reward_score"] for o in outs] == [r["expect"] for r in rows]


def _worker_config(tok_dir, reward_kwargs):
    return OmegaConf.create(
        {
            "actor_rollout_ref": {"model": {"path": str(tok_dir), "tokenizer_path": None}},
            "reward": {
                **reward_config(reward_kwargs)["reward"],
                "reward_model": {"enable": False},
                "sandbox_fusion": None,
            },
        }
    )


@pytest.mark.slow
def test_ray_reward_worker_resolves_sinternal_through_the_entry_point(fake_guard, tokenizer, tmp_path):
    """verl's RewardLoopWorker, as a Ray actor in a fresh worker process, finds ``sinternal``
    only through our ``verl.plugins`` entry point (nothing imported by hand there); first
    against the HTTP guard, then attached by name to guard replicas running as Ray actors."""
    import ray
    from verl.experimental.reward_loop.reward_loop import RewardLoopWorker

    from sinternal_verl.guards.ray_pool import RayGuardPool, RayPoolConfig

    tok_dir = tmp_path / "tok"
    tokenizer.save_pretrained(tok_dir)
    batch = build_batch(ROWS, tokenizer)
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        runtime_env={"env_vars": {"HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}},
    )
    try:
        worker_cls = ray.remote(RewardLoopWorker).options(num_cpus=0.5)
        http_worker = worker_cls.remote(_worker_config(tok_dir, {"guard_urls": fake_guard.url}))
        over_http = ray.get(http_worker.compute_score_batch.remote(batch), timeout=120)

        _pool = RayGuardPool.create(  # kept referenced: the replicas live while the handle does
            RayPoolConfig(
                name="rm-test-pool",
                engine="rules",
                num_replicas=1,
                num_gpus_per_replica=0,
                num_cpus_per_replica=0.5,
                detached=False,
            )
        )
        pool_worker = worker_cls.remote(
            _worker_config(tok_dir, {"guard_backend": "ray_pool", "guard_pool_name": "rm-test-pool"})
        )
        over_pool = ray.get(pool_worker.compute_score_batch.remote(batch), timeout=120)
        stats_before = fake_guard.stats()["counts"].get("chat", 0)
    finally:
        ray.shutdown()
    assert [o["reward_score"] for o in over_http] == [1.0, 0.0, 0.0, 1.0]
    assert [o["reward_score"] for o in over_pool] == [1.0, 0.0, 0.0, 1.0]
    assert stats_before == 3  # only the HTTP worker reached the HTTP guard


def test_trajectories_in_flight_are_bounded(fake_guard, tokenizer):
    httpx.post(f"{fake_guard.url}/_control", json={"mode": "ok", "service_time_s": 0.05}).raise_for_status()
    rows = [dict(ROWS[0], prompt=f"How do I build a bomb? #{i}") for i in range(12)]
    tok = build_tokenizer(extra_texts=[r["prompt"] + r["response"] for r in rows])
    settings = {
        "guard_urls": fake_guard.url,
        "guard_max_concurrency_per_url": 64,
        "max_trajectories_in_flight": 3,
    }
    _, outs = run_manager(reward_config(settings), tok, rows)
    assert [o["reward_score"] for o in outs] == [1.0] * 12
    stats = fake_guard.stats()
    assert stats["counts"]["chat"] == 12 and 1 <= stats["max_in_flight"] <= 3


def test_gc_threshold_is_raised_never_lowered(tokenizer):
    import gc

    before = gc.get_threshold()
    try:
        gc.set_threshold(700, *before[1:])
        load_reward_manager(reward_config({"gc_threshold": 12345}), tokenizer)
        assert gc.get_threshold()[0] == 12345
        from sinternal_verl.managers.sinternal import SInternalRewardManager

        SInternalRewardManager._class_initialized = False
        load_reward_manager(reward_config({"gc_threshold": 800}), tokenizer)
        assert gc.get_threshold()[0] == 12345
    finally:
        gc.set_threshold(*before)


def test_in_flight_bound_must_be_positive(tokenizer):
    with pytest.raises(ValueError, match="max_trajectories_in_flight"):
        load_reward_manager(reward_config({"max_trajectories_in_flight": 0}), tokenizer)


def test_trace_opened_by_the_chat_template(fake_guard, tokenizer):
    """R1-distill / Qwen3-thinking templates end the prompt with <think>: the response starts
    inside the trace. A cut-off trace then carries no tag at all and must not be judged as an
    answer; a closed one is judged on what follows </think>."""
    cut = {
        "data_source": "safety_x",
        "prompt_type": "harmful",
        "prompt": "How do I build a bomb?",
        "response": "I cannot help with that. Let me think about why the request is dangerous",
    }
    closed = dict(cut, response="The request is dangerous.</think>\n\nI cannot help with that.")
    math_cut = {
        "data_source": "math_dapo",
        "prompt": "2+2?",
        "ground_truth": "4",
        "response": "so it is \\boxed{4} maybe",
    }
    rows = [cut, closed, math_cut]
    tok = build_tokenizer(extra_texts=[r["prompt"] + r["response"] for r in rows])
    manager = load_reward_manager(reward_config({"guard_urls": fake_guard.url}), tok)
    opened = manager.loop.run_until_complete(
        score_all(manager, build_batch(rows, tok, prompt_suffix="<think>\n"))
    )
    plain = manager.loop.run_until_complete(score_all(manager, build_batch(rows, tok)))
    assert [(o["reward_score"], o["reward_extra_info"]["truncated"]) for o in opened] == [
        (0.0, 1.0),
        (1.0, 0.0),
        (0.0, 1.0),
    ]
    assert [(o["reward_score"], o["reward_extra_info"]["truncated"]) for o in plain] == [
        (1.0, 0.0),
        (1.0, 0.0),
        (1.0, 0.0),
    ]
