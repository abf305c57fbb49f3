"""``RunConfig``: every setting of ``sinternal-verl run``, one strict Settings tree.

A run is the whole method in one directory; its config says which stages run and with what.
The paper's numbers (LoRA r16 / alpha 32 / lr 2e-4 / 2 epochs, 64 prompts x 8 rollouts, actor
lr 1e-6, ~3k math problems) are the defaults; the CPU preset (``recipes/run/cpu_demo.yaml``)
shrinks them for a laptop. Sections that are handed to another tool as they are (the
verification-data pipeline config, the evaluation config, raw hydra overrides) are plain
mappings / lists here and are validated by that tool at the start of its stage.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import field_validator

from ..settings import Settings, setting

#: every stage, in order; ``toy`` and ``teach`` run only in the toy world
STAGES: tuple[str, ...] = (
    "toy",
    "teach",
    "verification_data",
    "verification_sft",
    "merge",
    "rl_data",
    "rl",
    "eval",
    "report",
)


class ToySettings(Settings):
    enabled: bool = setting(
        False, "build the toy world (tiny policy, toy prompts) instead of using policy_path"
    )
    hidden: int = setting(128, "tiny policy hidden size")
    layers: int = setting(2, "tiny policy layers")
    heads: int = setting(4, "tiny policy attention heads")
    kv_heads: int = setting(2, "tiny policy key/value heads")
    vocab_size: int = setting(1024, "BPE vocabulary target of the toy tokenizer (trained on the toy texts)")
    harmful_comply: float = setting(
        0.5, "share of compliance answers to harmful prompts in the teaching data"
    )
    benign_refuse: float = setting(
        0.25, "share of refusals of benign look-alike prompts in the teaching data"
    )
    math_wrong: float = setting(0.4, "share of wrong boxed sums in the teaching data")
    copies: int = setting(4, "teaching answers per toy prompt")
    max_operand: int = setting(5, "toy sums use operands 1..max_operand")
    seed: int = setting(0, "seed of the tiny model's weights and of the teaching data")
    serve: bool = setting(
        True,
        "serve the toy guard (Qwen3Guard protocol) and expert (OpenAI protocol) on loopback while the run lasts "
        "(run/toy_serve.py); '{guard_url}' and '{expert_url}' in any section are their URLs",
    )


class TeachSettings(Settings):
    epochs: int = setting(4, "epochs of the format-teaching SFT (toy world)")
    lr: float = setting(3e-3, "learning rate of the format-teaching SFT")
    batch_size: int = setting(32, "global batch size of the format-teaching SFT")
    max_length: int = setting(128, "max tokens per teaching example")
    overrides: list[str] = setting([], "extra hydra overrides for verl's sft_trainer")


class VerificationDataSettings(Settings):
    pipeline: dict[str, Any] = setting(
        {},
        "the verification-data pipeline config (as in build-verification-data); out_dir, prompts, model set by the run; {toy}, {run_dir}, {guard_url}, {expert_url} filled",
    )
    fake_expert: bool = setting(
        False,
        "start the OpenAI-protocol expert stand-in (sinternal_verl.testing.fake_expert) on loopback as the critic",
    )
    hold_after_sample_s: float = setting(
        0.0, "test hook: after sampling, write _hold_verification_data and sleep this long"
    )


class VerificationSFTSettings(Settings):
    lora_rank: int = setting(16, "LoRA rank (paper: 16)")
    lora_alpha: int = setting(32, "LoRA alpha (paper: 32)")
    target_modules: str = setting("all-linear", "LoRA target modules")
    lr: float = setting(2e-4, "learning rate (paper: 2e-4)")
    epochs: int = setting(2, "epochs (paper: 2)")
    batch_size: int = setting(64, "global batch size")
    micro_batch_size: int = setting(2, "micro batch per device")
    max_length: int = setting(8192, "max tokens per example (verification prompt + critique)")
    nproc: int = setting(8, "torchrun processes (devices) per node")
    toy_replay: float = setting(
        0.0,
        "toy world only: teaching rows mixed into the SFT data, as a multiple of its verification rows "
        "(a minutes-old tiny policy forgets its answers otherwise; 0 = the paper's verification data only)",
        ge=0,
    )
    overrides: list[str] = setting([], "extra hydra overrides for verl's sft_trainer")


class MergeSettings(Settings):
    dtype: str = setting("auto", "dtype of the merged model: auto, bfloat16, float16 or float32")


class RLDataSettings(Settings):
    safety_files: list[str] = setting([], "safety prompt files (prompt + kind); the toy world fills its own")
    math_files: list[str] = setting(
        [], "math problem files (DAPO parquet or problem/answer rows); the toy world fills its own"
    )
    math_count: int | None = setting(3000, "math problems drawn (paper: ~3k); null = all")
    safety_count: int | None = setting(None, "safety prompts drawn; null = all")
    val_fraction: float = setting(0.02, "held out per task for verl's validation")
    seed: int = setting(42, "seed of the draw and split")
    math_template: str = setting(
        "{problem}\n\nPlease reason step by step, and put your final answer within \\boxed{{}}.",
        "math prompt template ({problem})",
    )


class RLSettings(Settings):
    algorithm: Literal["grpo", "dapo"] = setting(
        "grpo", "grpo, or dapo (dynamic sampling, clip-higher, token-mean, overlong penalty)"
    )
    steps: int = setting(200, "training steps")
    train_batch_size: int = setting(64, "prompts per step (paper: 64)")
    n: int = setting(8, "rollouts per prompt (paper: 8)")
    lr: float = setting(1e-6, "actor learning rate (paper: 1e-6)")
    max_prompt_length: int = setting(2048, "max prompt tokens (paper: 2048)")
    max_response_length: int = setting(8192, "max response tokens (paper: 8192)")
    temperature: float = setting(1.0, "rollout temperature")
    ppo_mini_batch_size: int = setting(64, "prompts per actor update")
    micro_batch_size: int = setting(4, "micro batch per device (actor, ref, log-probs)")
    rollout: str = setting("vllm", "rollout engine: vllm (GPU) or hf (sinternal_verl.cpu, CPU)")
    nproc: int = setting(8, "devices per node")
    reward_kwargs: dict[str, Any] = setting(
        {},
        "reward.reward_kwargs of the sinternal reward manager (guard_kind, guard_urls, ...); {toy}, {run_dir}, {guard_url}, {expert_url} filled",
    )
    save_freq: int = setting(
        -1, "checkpoint every N steps (-1: only at the end); a killed run resumes from the last one"
    )
    test_freq: int = setting(-1, "validate every N steps (0: after the last step only, -1: never)")
    val_before_train: bool = setting(False, "validate before the first step")
    overrides: list[str] = setting([], "extra hydra overrides for verl.trainer.main_ppo")


class EvalSettings(Settings):
    backend: str = setting(
        "transformers", "how the harness runs each checkpoint: transformers, vllm, openai, precomputed"
    )
    generation: dict[str, Any] = setting(
        {}, "generation settings of every model (n, temperature, max_tokens, ...)"
    )
    model_options: dict[str, Any] = setting(
        {}, "other per-model keys of the eval config, the same for every model"
    )
    benchmarks: list[dict[str, Any]] = setting(
        [],
        "benchmarks (name/path/format/kind); {toy}, {run_dir}, {guard_url}, {expert_url} filled",
    )
    judge: dict[str, Any] = setting(
        {"kind": "lexical"},
        "guard settings of the evaluation judge; {toy}, {run_dir}, {guard_url}, {expert_url} filled",
    )
    verification: dict[str, Any] = setting(
        {},
        "verification-F1 settings; {toy}, {run_dir}, {guard_url}, {expert_url} filled",
    )
    extra: dict[str, Any] = setting({}, "any other EvalConfig keys, passed as they are")
    models: list[Literal["base", "sft", "rl"]] = setting(["base", "sft", "rl"], "checkpoints to evaluate")


class HookSettings(Settings):
    hold_after_stage: str = setting(
        "", "test hook: after this stage finishes, write _hold_after_<stage> and sleep"
    )
    hold_s: float = setting(0.0, "test hook: how long a hold sleeps (a test kills the run meanwhile)")


class RunConfig(Settings):
    run_dir: str = setting("runs/sinternal", "run directory: every stage writes here; rerunning resumes")
    device: Literal["cpu", "cuda"] = setting(
        "cuda", "cpu: verl runs through sinternal_verl.cpu (platform, overrides)"
    )
    policy_path: str = setting(
        "", "the policy to align (HF folder or hub name); the toy world builds its own"
    )
    spec: str = setting(
        "sinternal_default", "safety specification (shipped name or file); the toy world uses its own"
    )
    stages: list[str] = setting(
        list(STAGES), "stages to run, in the canonical order; a left-out stage is passed through"
    )
    seed: int = setting(
        42, "seed of verl's trainers: the RL data order, the engines and the rollout (verl's own seeds)"
    )
    deterministic: bool = setting(
        False,
        "verl's full_determinism in the trainers (seeded engines and LoRA init, deterministic kernels; "
        "the hf rollout seeds every request): the same config gives the same run on a CPU, RL up to float "
        "differences; slower on GPUs, and the vLLM rollout stays unseeded (verl 0.9.1 seeds its requests alike)",
    )
    toy: ToySettings = setting(ToySettings(), "toy world (make demo)")
    teach: TeachSettings = setting(TeachSettings(), "toy world: teach the tiny policy the answer format")
    verification_data: VerificationDataSettings = setting(
        VerificationDataSettings(), "verification-data pipeline"
    )
    verification_sft: VerificationSFTSettings = setting(VerificationSFTSettings(), "verification SFT (LoRA)")
    merge: MergeSettings = setting(MergeSettings(), "LoRA merge")
    rl_data: RLDataSettings = setting(RLDataSettings(), "RL data mix (prepare-data)")
    rl: RLSettings = setting(RLSettings(), "GRPO / DAPO")
    eval: EvalSettings = setting(EvalSettings(), "evaluation of base, SFT and RL")
    hooks: HookSettings = setting(HookSettings(), "test hooks (kill tests)")
    tail_lines: int = setting(40, "log lines shown when a stage's child process fails")
    full_hash_max_mb: float = setting(
        64.0, "files up to this size are hashed whole in the manifest; larger ones by size + first/last MiB"
    )

    @field_validator("stages")
    @classmethod
    def _known_stages(cls, value: list[str]) -> list[str]:
        import difflib

        for name in value:
            if name not in STAGES:
                close = difflib.get_close_matches(name, STAGES, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else f"; known: {', '.join(STAGES)}"
                raise ValueError(f"unknown stage {name!r}{hint}")
        if len(set(value)) != len(value):
            raise ValueError("a stage is listed twice")
        return [s for s in STAGES if s in value]
