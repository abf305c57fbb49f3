"""verl-signature router: task resolution, uniform keys, sync and async entry points."""

from __future__ import annotations

import pytest

from sinternal_verl.rewards import (
    RESULT_KEYS,
    UnknownTaskError,
    compute_score,
    compute_score_async,
    resolve_task,
)


@pytest.mark.parametrize(
    ("data_source", "extra", "task"),
    [
        ("math_dapo", None, "math"),
        ("aime2024", None, "math"),
        ("HuggingFaceH4/MATH-500", None, "math"),
        ("safety_wildjailbreak", None, "safety"),
        ("anything", {"task": "safety"}, "safety"),
        ("safety_x", {"task": "math"}, "math"),  # task wins over data_source
    ],
)
def test_resolve_task(data_source, extra, task):
    assert resolve_task(data_source, extra) == task


def test_unknown_source_lists_what_is_known():
    with pytest.raises(UnknownTaskError, match="math_dapo") as info:
        resolve_task("openai/gsm8k", {})
    assert "safety" in str(info.value)
    with pytest.raises(UnknownTaskError, match="known tasks"):
        resolve_task("math_dapo", {"task": "code"})


def test_math_results_have_the_same_numeric_keys_as_safety(fake_guard):
    math = compute_score("math_dapo", "<think>2+2</think>\n\n\\boxed{4}", "4", {})
    safety = compute_score(
        "safety_demo",
        "<think>.</think>\n\nI can't help with that.",
        None,
        {"prompt_type": "harmful", "prompt": "How do I build a bomb?"},
        guard_urls=fake_guard.url,
    )
    assert tuple(math) == tuple(safety) == RESULT_KEYS
    assert "reward" not in math
    assert all(isinstance(v, float) for v in (*math.values(), *safety.values()))
    assert (math["score"], math["is_math"]) == (1.0, 1.0)
    assert (safety["score"], safety["is_math"], safety["refused"]) == (1.0, 0.0, 1.0)


def test_math_needs_a_ground_truth():
    with pytest.raises(ValueError, match="ground truth"):
        compute_score("math_dapo", "\\boxed{4}", None, {})


def test_math_options_reach_the_math_reward():
    out = compute_score("math_dapo", "\\boxed{5}", "4", {}, math_incorrect_score=-1.0)
    assert out["score"] == -1.0


def test_truncated_math_is_flagged():
    out = compute_score("math_dapo", "<think>the answer is \\boxed{4} wait", "4", {})
    assert (out["score"], out["truncated"]) == (0.0, 1.0)


async def test_async_safety_needs_the_prompt(fake_guard):
    with pytest.raises(ValueError, match="prompt"):
        await compute_score_async(
            "safety_demo", "I can't.", None, {"prompt_type": "harmful"}, guard_urls=fake_guard.url
        )


async def test_async_uses_env_configuration(fake_guard, monkeypatch):
    monkeypatch.setenv("SINTERNAL_GUARD_URLS", fake_guard.url)
    out = await compute_score_async(
        "safety_demo",
        "Here is how to build a bomb: a detonator",
        None,
        {"prompt_type": "harmful", "prompt": "bomb?"},
    )
    assert out["score"] == 0.0 and out["safe"] == 0.0


def test_verl_loads_compute_score_by_package_path(fake_guard):
    """``reward.custom_reward_function.path=pkg://sinternal_verl.rewards`` with a stock verl
    manager: verl's own loader, our sync entry point, extra kwargs from the config."""
    from omegaconf import OmegaConf
    from verl.trainer.ppo.reward import get_custom_reward_fn

    config = OmegaConf.create(
        {
            "reward": {
                "custom_reward_function": {
                    "path": "pkg://sinternal_verl.rewards",
                    "name": "compute_score",
                    "reward_kwargs": {"guard_urls": fake_guard.url},
                }
            }
        }
    )
    fn = get_custom_reward_fn(config)
    out = fn(
        data_source="safety_x",
        solution_str="Here is how to build a bomb: a detonator",
        ground_truth=None,
        extra_info={"prompt_type": "harmful", "prompt": "bomb?"},
    )
    assert out["score"] == 0.0 and out["safe"] == 0.0
