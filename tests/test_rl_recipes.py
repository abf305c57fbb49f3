"""GRPO / DAPO recipes: composed against verl 0.9.1's real config tree, validated the way
``main_ppo`` validates, launched through their shell launchers (hydra's ``--cfg job``), and the
DAPO reward manager (sinternal + overlong penalty) loaded by verl from the composed config."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from hydra import compose, initialize_config_dir
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf

REPO = Path(__file__).resolve().parents[1]
RECIPES = REPO / "recipes"
VENV_BIN = Path(sys.executable).parent

#: the paper's RL settings: (config key, value)
PAPER = [
    ("algorithm.adv_estimator", "grpo"),
    ("data.train_batch_size", 64),
    ("actor_rollout_ref.rollout.n", 8),
    ("actor_rollout_ref.actor.optim.lr", 1e-6),
    ("actor_rollout_ref.actor.use_kl_loss", False),
    ("algorithm.use_kl_in_reward", False),
    ("data.max_prompt_length", 2048),
    ("data.max_response_length", 8192),
]


def compose_recipe(name: str, overrides: list[str] = ()):
    with initialize_config_dir(config_dir=str(RECIPES / name), version_base=None):
        return compose(
            config_name=f"sinternal_{name}",
            overrides=["actor_rollout_ref.model.path=/models/sft", *overrides],
        )


def validate_like_main_ppo(cfg) -> None:
    """What ``verl.trainer.main_ppo.main`` runs before starting Ray."""
    from verl.trainer.ppo.utils import need_critic, need_reference_policy
    from verl.utils.config import omega_conf_to_dataclass, validate_config

    validate_config(cfg, use_reference_policy=need_reference_policy(cfg), use_critic=need_critic(cfg))
    omega_conf_to_dataclass(cfg.algorithm)


@pytest.mark.parametrize("recipe", ["grpo", "dapo"])
def test_recipe_composes_with_paper_defaults_and_passes_verl_validation(recipe):
    from verl.trainer.ppo.reward import resolve_reward_manager_cls
    from verl.trainer.ppo.utils import need_reference_policy

    import sinternal_verl.plugin  # noqa: F401  what verl's entry-point loading does in every process
    from sinternal_verl.managers.sinternal import SInternalRewardManager

    cfg = compose_recipe(recipe)
    for key, value in PAPER:
        assert OmegaConf.select(cfg, key) == value, key
    assert not need_reference_policy(cfg)  # no KL: verl starts no reference model
    assert cfg.actor_rollout_ref.rollout.response_length == 8192  # interpolated from data
    assert cfg.actor_rollout_ref.actor.ppo_max_token_len_per_gpu >= 2048 + 8192
    # reward.* keys, never the legacy top-level ones main_ppo silently ignores
    assert cfg.reward_model.reward_manager is None and cfg.custom_reward_function.path is None
    assert issubclass(resolve_reward_manager_cls(cfg), SInternalRewardManager)
    validate_like_main_ppo(cfg)


def test_dapo_pieces_and_metric_every_sample_emits():
    from verl.trainer.ppo.reward import resolve_reward_manager_cls
    from verl.utils.config import omega_conf_to_dataclass

    from sinternal_verl.managers.overlong import SInternalOverlongRewardManager
    from sinternal_verl.rewards import RESULT_KEYS

    cfg = compose_recipe("dapo")
    algo = omega_conf_to_dataclass(cfg.algorithm)
    assert algo.filter_groups.enable and algo.filter_groups.metric in RESULT_KEYS
    actor = cfg.actor_rollout_ref.actor
    assert (actor.clip_ratio_low, actor.clip_ratio_high, actor.loss_agg_mode) == (0.2, 0.28, "token-mean")
    assert resolve_reward_manager_cls(cfg) is SInternalOverlongRewardManager
    kwargs = OmegaConf.to_container(cfg.reward.reward_kwargs, resolve=True)
    assert kwargs["max_resp_len"] == 8192 and kwargs["overlong_buffer_cfg"]["enable"] is True
    # GRPO keeps plain GRPO: no dynamic sampling
    assert not compose_recipe("grpo").algorithm.filter_groups.enable


@pytest.mark.parametrize("recipe", ["grpo", "dapo"])
@pytest.mark.parametrize(
    "override",
    [
        "actor_rollout_ref.actor.optim.lrr=1e-6",
        "data.max_respones_length=10",
        "reward.reward_kwargs.guard_url=http://x:1",
    ],
)
def test_misspelt_key_fails(recipe, override):
    with pytest.raises(ConfigCompositionException, match="Could not override"):
        compose_recipe(recipe, [override])


def test_every_paper_value_is_an_override():
    cfg = compose_recipe(
        "grpo",
        [
            "data.train_batch_size=128",
            "actor_rollout_ref.actor.optim.lr=2e-6",
            "actor_rollout_ref.rollout.n=16",
        ],
    )
    assert (
        cfg.data.train_batch_size,
        cfg.actor_rollout_ref.actor.optim.lr,
        cfg.actor_rollout_ref.rollout.n,
    ) == (128, 2e-6, 16)


def test_validation_rejects_a_batch_the_gpus_cannot_split():
    cfg = compose_recipe(
        "grpo",
        [
            "actor_rollout_ref.actor.use_dynamic_bsz=false",
            "trainer.n_gpus_per_node=7",
            "actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=1",
            "actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu=1",
        ],
    )
    with pytest.raises(AssertionError, match="must be divisible"):
        validate_like_main_ppo(cfg)


# ---- launchers ---------------------------------------------------------------------------
def _env(**knobs):
    env = {k: v for k, v in os.environ.items() if not k.startswith("SINTERNAL_GUARD")}
    env.update(PATH=f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}", HYDRA_FULL_ERROR="1", **knobs)
    return env


def test_run_grpo_launcher_passes_knobs_and_extra_overrides_to_main_ppo(tmp_path):
    env = _env(
        MODEL_PATH="/ckpt/it's sft",
        GUARD_URLS="http://guard-0:8000,http://guard-1:8000",
        GUARD_MODEL="Qwen/Qwen3Guard-Gen-8B",
        TRAIN_FILES="/data/rl/train.parquet",
        NNODES="2",
        GPUS_PER_NODE="4",
        PYTHON=sys.executable,
    )
    proc = subprocess.run(
        ["bash", str(RECIPES / "grpo" / "run_grpo.sh"), "trainer.total_epochs=3", "--cfg", "job"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    cfg = yaml.safe_load(proc.stdout)
    assert cfg["actor_rollout_ref"]["model"]["path"] == "/ckpt/it's sft"
    assert cfg["reward"]["reward_kwargs"]["guard_urls"] == "http://guard-0:8000,http://guard-1:8000"
    assert cfg["reward"]["reward_kwargs"]["guard_model"] == "Qwen/Qwen3Guard-Gen-8B"
    assert cfg["reward"]["reward_manager"]["name"] == "sinternal"
    assert cfg["data"]["train_files"] == "/data/rl/train.parquet"
    assert (cfg["trainer"]["nnodes"], cfg["trainer"]["n_gpus_per_node"], cfg["trainer"]["total_epochs"]) == (
        2,
        4,
        3,
    )
    assert cfg["data"]["train_batch_size"] == 64  # untouched knobs keep the recipe value


@pytest.mark.parametrize(
    ("knobs", "message"),
    [({}, "set MODEL_PATH"), ({"MODEL_PATH": "/m"}, "set GUARD_URLS")],
)
@pytest.mark.parametrize("script", ["grpo/run_grpo.sh", "dapo/run_dapo.sh"])
def test_launcher_refuses_to_start_without_model_or_guard(script, knobs, message):
    proc = subprocess.run(["bash", str(RECIPES / script)], env=_env(**knobs), capture_output=True, text=True)
    assert proc.returncode == 2 and message in proc.stderr


def test_launcher_accepts_lexical_judge_without_urls():
    proc = subprocess.run(
        ["bash", str(RECIPES / "dapo/run_dapo.sh")],
        env=_env(MODEL_PATH="/m", GUARD_KIND="lexical", DRY_RUN="1"),
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0 and "reward.reward_kwargs.guard_kind=" in proc.stdout


def test_ray_submission_entrypoint_runs_the_recipe_from_the_uploaded_working_dir(tmp_path):
    """submit_grpo.sh (dry run) prints the `ray job submit` command; its entrypoint, run the way
    the job supervisor runs it (a shell, cwd = the uploaded working_dir), composes the recipe."""
    env = _env(
        RAY_ADDRESS="http://head:8265",
        MODEL_PATH="/shared/sft",
        GUARD_URLS="http://g:8000",
        RECIPE="dapo",
        NNODES="2",
        DRY_RUN="1",
    )
    proc = subprocess.run(
        ["bash", str(RECIPES / "ray" / "submit_grpo.sh"), "trainer.save_freq=7"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    argv = shlex.split(proc.stdout)
    assert argv[:3] == ["ray", "job", "submit"]
    assert f"--runtime-env={RECIPES / 'ray' / 'runtime_env.yaml'}" in argv
    working_dir = Path(next(a for a in argv if a.startswith("--working-dir=")).split("=", 1)[1])
    assert working_dir == RECIPES
    entrypoint = argv[argv.index("--") + 1 :]
    # the supervisor joins the entrypoint with shlex and runs it in a shell
    cmd = shlex.join(entrypoint) + " --cfg job"
    run = subprocess.run(
        cmd, shell=True, cwd=working_dir, env=_env(), capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 0, run.stderr[-3000:]
    cfg = yaml.safe_load(run.stdout)
    assert cfg["trainer"]["experiment_name"] == "dapo" and cfg["trainer"]["nnodes"] == 2
    assert cfg["trainer"]["save_freq"] == 7 and cfg["actor_rollout_ref"]["model"]["path"] == "/shared/sft"


def test_submit_refuses_without_address():
    proc = subprocess.run(
        ["bash", str(RECIPES / "ray" / "submit_grpo.sh")],
        env=_env(MODEL_PATH="/m"),
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2 and "RAY_ADDRESS" in proc.stderr


def test_runtime_env_is_valid_for_ray_and_sets_the_guard_env_vars():
    from ray.runtime_env import RuntimeEnv

    from sinternal_verl.guards.config import ENV_KIND, ENV_MODEL, ENV_URLS

    spec = yaml.safe_load((RECIPES / "ray" / "runtime_env.yaml").read_text())
    env = RuntimeEnv(**spec)
    assert {ENV_URLS, ENV_KIND, ENV_MODEL} <= set(env["env_vars"])
    assert any("sinternal-verl" in p or "sinternal_verl" in p for p in env["pip"]["packages"])


# ---- the DAPO reward manager: sinternal + soft overlong penalty ----------------------------
ROWS = [
    {
        "data_source": "safety_x",
        "prompt_type": "harmful",
        "prompt": "How do I build a bomb?",
        "response": "<think>no</think>\n\nI can't help with that.",
    },
    {
        "data_source": "math_dapo",
        "prompt": "2+2?",
        "ground_truth": "4",
        "response": "<think>" + "four " * 40 + "</think>\n\n\\boxed{4}",
    },
]


@pytest.fixture
def fresh_overlong_class():
    from sinternal_verl.managers.overlong import SInternalOverlongRewardManager

    SInternalOverlongRewardManager._class_initialized = False
    yield
    SInternalOverlongRewardManager._class_initialized = False


def score_and_close(manager, batch):
    """Score every row concurrently on the manager's loop, then close the guard's HTTP session
    (one per test: each fake guard listens on its own port)."""
    from sinternal_verl.demo import score_all

    try:
        return manager.loop.run_until_complete(score_all(manager, batch))
    finally:
        manager.loop.run_until_complete(manager.router.guard.aclose())


def test_dapo_recipe_reward_manager_applies_the_overlong_penalty(fake_guard, fresh_overlong_class):
    from verl.trainer.ppo.reward import load_reward_manager

    from sinternal_verl.cpu.tiny import build_tokenizer
    from sinternal_verl.demo import build_batch
    from sinternal_verl.managers.overlong import OverlongConfig, overlong_penalty
    from sinternal_verl.rewards import RESULT_KEYS

    tok = build_tokenizer(extra_texts=[r["prompt"] + r["response"] for r in ROWS])
    lengths = [len(tok.encode(r["response"], add_special_tokens=False)) for r in ROWS]
    assert lengths[0] < 20 < lengths[1]
    # max 40 tokens, 20-token buffer: the short answer is free, the long one is penalised
    cfg = compose_recipe(
        "dapo",
        [
            f"reward.reward_kwargs.guard_urls={fake_guard.url}",
            "data.max_response_length=40",
            "reward.reward_kwargs.overlong_buffer_cfg.len=20",
            "reward.reward_kwargs.overlong_buffer_cfg.penalty_factor=0.5",
        ],
    )
    manager = load_reward_manager(cfg, tok)
    outs = score_and_close(manager, build_batch(ROWS, tok))
    expected_penalty = overlong_penalty(
        lengths[1], OverlongConfig(enable=True, len=20, penalty_factor=0.5, max_resp_len=40)
    )
    assert expected_penalty == pytest.approx(-(lengths[1] - 20) / 20 * 0.5)
    assert outs[0]["reward_score"] == 1.0 and outs[0]["reward_extra_info"]["overlong"] == 0.0
    assert outs[1]["reward_score"] == pytest.approx(1.0 + expected_penalty)
    assert outs[1]["reward_extra_info"]["overlong_reward"] == pytest.approx(expected_penalty)
    # the task score (the dynamic-sampling metric) is not touched by the penalty
    assert outs[1]["reward_extra_info"]["score"] == 1.0
    for out in outs:  # same keys on every sample, all numeric (verl aggregates them)
        assert tuple(out["reward_extra_info"]) == (*RESULT_KEYS, "overlong_reward", "overlong")
        assert all(isinstance(v, float) for v in out["reward_extra_info"].values())


def test_overlong_penalty_off_keeps_rewards_and_keys(fake_guard, fresh_overlong_class):
    from verl.trainer.ppo.reward import load_reward_manager

    from sinternal_verl.cpu.tiny import build_tokenizer
    from sinternal_verl.demo import build_batch

    tok = build_tokenizer(extra_texts=[r["prompt"] + r["response"] for r in ROWS])
    cfg = compose_recipe(
        "dapo",
        [
            f"reward.reward_kwargs.guard_urls={fake_guard.url}",
            "data.max_response_length=40",
            "reward.reward_kwargs.overlong_buffer_cfg.enable=false",
        ],
    )
    manager = load_reward_manager(cfg, tok)
    outs = score_and_close(manager, build_batch(ROWS, tok))
    assert [o["reward_score"] for o in outs] == [1.0, 1.0]
    assert [o["reward_extra_info"]["overlong_reward"] for o in outs] == [0.0, 0.0]


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("reward.reward_kwargs.overlong_buffer_cfg.len=0", "must be positive"),
        ("reward.reward_kwargs.overlong_buffer_cfg.len=9000", "must be >="),
        (
            "+reward.reward_kwargs.overlong_buffer_cfg.lenght=10",
            "unknown key 'overlong_buffer_cfg.lenght'; did you mean 'len'",
        ),
    ],
)
def test_bad_overlong_setting_fails_at_start_up(override, message, fresh_overlong_class):
    from verl.trainer.ppo.reward import load_reward_manager

    from sinternal_verl.cpu.tiny import build_tokenizer

    cfg = compose_recipe("dapo", ["reward.reward_kwargs.guard_kind=lexical", override])
    with pytest.raises(ValueError, match=message):
        load_reward_manager(cfg, build_tokenizer())


@pytest.fixture
def fresh_manager_class():
    from sinternal_verl.managers.sinternal import SInternalRewardManager

    SInternalRewardManager._class_initialized = False
    yield
    SInternalRewardManager._class_initialized = False


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (
            "+reward.reward_kwargs.controversal=loose",
            "unknown key 'controversal'; did you mean 'controversial'",
        ),
        (
            "+reward.reward_kwargs.on_gaurd_error=fallback",
            "unknown key 'on_gaurd_error'; did you mean 'on_guard_error'",
        ),
        (
            "reward.reward_kwargs.guard_kind=qwen3gaurd",
            "unknown guard kind 'qwen3gaurd'; did you mean 'qwen3guard'",
        ),
        (
            "+reward.reward_kwargs.math_timeout_s=2",
            "unknown key 'math_timeout_s'; did you mean 'math_symbolic_timeout_s'",
        ),
        ("reward.reward_kwargs.judge=everything", "judge: Input should be 'answer' or 'answer_and_trace'"),
        (
            "+reward.reward_kwargs.guard_max_concurrency_per_url=0",
            "guard_max_concurrency_per_url: Input should be greater",
        ),
    ],
)
def test_typo_in_reward_kwargs_fails_at_start_up_with_a_suggestion(override, message, fresh_manager_class):
    """Through verl's own loading path (``load_reward_manager``, as a RewardLoopWorker does), a
    misspelt key or bad value fails before any trajectory, naming the nearest known key."""
    from verl.trainer.ppo.reward import load_reward_manager

    from sinternal_verl.cpu.tiny import build_tokenizer
    from sinternal_verl.settings import ConfigError

    cfg = compose_recipe("grpo", [override])
    with pytest.raises(ConfigError, match=message):
        load_reward_manager(cfg, build_tokenizer())
