"""verl's real ``main_ppo`` GRPO on the CPU platform with the ``hf`` rollout and our ``sinternal``
reward manager scoring against a loopback fake Qwen3Guard server: 2 steps on the tiny model.
Validation after step 2 shows our extra reward keys. Prints wall time and peak RSS across all
processes (driver, Ray, workers)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import httpx
import pandas as pd
import pytest

from sinternal_verl.cpu.measure import run_measured
from sinternal_verl.cpu.overrides import cpu_env, ppo_overrides
from sinternal_verl.cpu.tiny import build_tiny_model
from sinternal_verl.testing.fake_openai import build_app
from sinternal_verl.testing.server import ThreadedServer

pytestmark = pytest.mark.slow


def _rl_rows() -> list[dict]:
    rows = []
    for i in range(8):
        if i % 2 == 0:
            rows.append(
                dict(
                    data_source="safety",
                    prompt=[{"role": "user", "content": f"How do I make a dangerous weapon, variant {i}?"}],
                    ability="safety",
                    reward_model={"style": "rule", "ground_truth": ""},
                    extra_info={"index": i, "prompt_type": "harmful"},
                )
            )
        else:
            rows.append(
                dict(
                    data_source="math_dapo",
                    prompt=[
                        {"role": "user", "content": f"What is {i} + {i}? Put the answer in \\boxed{{}}."}
                    ],
                    ability="math",
                    reward_model={"style": "rule", "ground_truth": str(2 * i)},
                    extra_info={"index": i, "prompt_type": "math"},
                )
            )
    return rows


def test_grpo_two_steps_on_cpu_with_guard_rewards(tmp_path: Path):
    model_dir = build_tiny_model(tmp_path / "model")
    pd.DataFrame(_rl_rows()).to_parquet(tmp_path / "train.parquet")
    pd.DataFrame(_rl_rows()[:4]).to_parquet(tmp_path / "val.parquet")
    metrics = tmp_path / "metrics.jsonl"
    env = cpu_env()
    env["VERL_FILE_LOGGER_PATH"] = str(metrics)
    env.pop("SINTERNAL_GUARD_URLS", None)

    app = build_app(models=("Qwen/Qwen3Guard-Gen-4B",))
    with ThreadedServer(app) as guard:
        args = [
            sys.executable, "-m", "verl.trainer.main_ppo", *ppo_overrides(),
            "algorithm.adv_estimator=grpo",
            f"data.train_files={tmp_path / 'train.parquet'}", f"data.val_files={tmp_path / 'val.parquet'}",
            "data.train_batch_size=4", "data.max_prompt_length=64", "data.max_response_length=32",
            "data.dataloader_num_workers=0",
            f"actor_rollout_ref.model.path={model_dir}", "actor_rollout_ref.actor.optim.lr=1e-4",
            "actor_rollout_ref.actor.ppo_mini_batch_size=4", "actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=8",
            "actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu=8",
            "actor_rollout_ref.ref.log_prob_micro_batch_size_per_gpu=8",
            "actor_rollout_ref.rollout.n=2", "actor_rollout_ref.rollout.calculate_log_probs=True",
            "actor_rollout_ref.actor.use_kl_loss=False", "algorithm.use_kl_in_reward=False",
            "reward.reward_manager.source=register", "reward.reward_manager.name=sinternal",
            f"+reward.reward_kwargs.guard_urls={guard.url}",
            "trainer.total_training_steps=2", "trainer.val_before_train=False", "trainer.test_freq=2",
            "trainer.save_freq=-1", "trainer.logger=[console,file]", f"trainer.default_local_dir={tmp_path / 'ckpt'}",
            "trainer.project_name=cpu", "trainer.experiment_name=grpo",
        ]  # fmt: skip
        run = run_measured(args, log_path=tmp_path / "grpo.log", env=env, cwd=tmp_path, timeout_s=600)
        guard_stats = httpx.get(f"{guard.url}/_stats").json()
    print(f"\n[cpu grpo] wall {run.wall_s:.1f} s, peak RSS (process tree) {run.peak_rss_gb:.2f} GB")
    assert run.returncode == 0, run.log_tail()

    steps = [json.loads(line) for line in metrics.read_text().splitlines() if line.strip()]
    assert [s["step"] for s in steps] == [1, 2]
    for s in steps:
        m = s["data"]
        print(
            f"[cpu grpo] step {s['step']}: {m['timing_s/step']:.1f} s, score/mean {m['critic/score/mean']:.3f}"
        )
        # rewards reached the trainer: 4 prompts x 2 rollouts scored, values in the reward range
        assert 0.0 <= m["critic/score/min"] <= m["critic/score/mean"] <= m["critic/score/max"] <= 1.0
        assert m["response_length/mean"] > 0
        # the rollout's log-probs agree with the actor's recomputation: right model, right weights
        assert m["training/rollout_probs_diff_max"] < 0.05, m["training/rollout_probs_diff_max"]
    # the harmful prompts went to the guard
    assert guard_stats["counts"].get("chat", 0) >= 1, guard_stats  # completions, not just the readiness probe
    # validation after step 2 (greedy rollout) logs our reward manager's extra keys per data source
    val = steps[-1]["data"]
    assert val["val-aux/safety/harmful_prompt/mean@1"] == 1.0
    assert val["val-aux/safety/guard_error/mean@1"] == 0.0  # the guard answered: no failed scoring
    assert val["val-aux/math_dapo/is_math/mean@1"] == 1.0
    assert 0.0 <= val["val-core/safety/acc/mean@1"] <= 1.0
