"""The stages of a run. Each takes the :class:`RunContext` and returns a :class:`StageResult`
(inputs and outputs to hash, numbers for the report); the runner does the bookkeeping.

Trainers run as verl runs them: ``torchrun -m verl.trainer.sft_trainer`` and
``python -m verl.trainer.main_ppo`` as child processes, with ``sinternal_verl.cpu``'s
overrides on a CPU; the LoRA merge is verl's ``model_merger`` then peft's merge. Data stages
call the project's own functions in-process (the verification-data pipeline, the RL mix).
"""

from __future__ import annotations

import contextlib
import copy
import json
import re
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .config import RunConfig
from .proc import run_child


@dataclass
class StageResult:
    inputs: list[Path] = field(default_factory=list)
    outputs: list[Path] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)


@dataclass
class RunContext:
    cfg: RunConfig
    run_dir: Path
    console: Any = None
    #: the toy world's servers the run started for its stages, closed by :meth:`close`
    _servers: contextlib.ExitStack = field(default_factory=contextlib.ExitStack, repr=False)
    _urls: dict[str, str] = field(default_factory=dict, repr=False)

    # ---- where things are -------------------------------------------------------------------
    def dir(self, *parts: str) -> Path:
        return self.run_dir.joinpath(*parts)

    @property
    def toy(self) -> Path:
        return self.dir("toy")

    @property
    def policy(self) -> str:
        """The policy the method starts from: the taught toy policy, the raw toy model, or
        ``policy_path``."""
        if self.cfg.toy.enabled:
            if "teach" in self.cfg.stages or self.dir("teach", "model").is_dir():
                return str(self.dir("teach", "model"))
            return str(self.toy / "base_model")
        if not self.cfg.policy_path:
            raise ValueError("policy_path is required unless toy.enabled is true")
        return self.cfg.policy_path

    @property
    def sft_model(self) -> Path:
        return self.dir("merge", "model")

    @property
    def rl_init(self) -> str:
        return str(self.sft_model) if ("merge" in self.cfg.stages or self.sft_model.is_dir()) else self.policy

    @property
    def rl_model(self) -> Path:
        return self.dir("rl", "model")

    def served_url(self, name: str) -> str:
        """The URL of the toy world's ``guard`` or ``expert`` (:mod:`.toy_serve`), started on
        first use and kept until the run ends."""
        if name not in self._urls:
            if not (self.cfg.toy.enabled and self.cfg.toy.serve):
                raise ValueError(
                    f"{{{name}_url}} is only served in the toy world (toy.enabled and toy.serve)"
                )
            from . import toy_serve

            serve = {"guard": toy_serve.serve_toy_guard, "expert": toy_serve.serve_toy_expert}[name]
            self._urls[name] = self._servers.enter_context(serve())
        return self._urls[name]

    def served_requests(self) -> dict[str, int]:
        """Chat requests each toy server started so far has answered (its ``/_stats``): the
        runner records each stage's share, the evidence that the stage reached it over HTTP."""
        import httpx

        out = {}
        for name, url in self._urls.items():
            counts = httpx.get(f"{url}/_stats", timeout=30).raise_for_status().json()["counts"]
            out[name] = int(counts.get("chat", 0))
        return out

    def close(self) -> None:
        self._servers.close()
        self._urls.clear()

    def fill(self, value: Any) -> Any:
        """``{toy}`` / ``{run_dir}`` / ``{guard_url}`` / ``{expert_url}`` in every string of a nested value."""
        if isinstance(value, str):
            for name in ("guard", "expert"):
                if f"{{{name}_url}}" in value:
                    value = value.replace(f"{{{name}_url}}", self.served_url(name))
            return value.replace("{toy}", str(self.toy)).replace("{run_dir}", str(self.run_dir))
        if isinstance(value, list):
            return [self.fill(v) for v in value]
        if isinstance(value, dict):
            return {k: self.fill(v) for k, v in value.items()}
        return value

    # ---- child processes --------------------------------------------------------------------
    def env(self) -> dict[str, str]:
        import os

        from ..cpu.overrides import cpu_env

        env = cpu_env() if self.cfg.device == "cpu" else dict(os.environ)
        if self.cfg.device == "cpu":
            env.pop("CUDA_VISIBLE_DEVICES", None)
        return env

    def child(self, stage: str, args: list[str], label: str, env: dict[str, str] | None = None) -> None:
        run_child(
            args, log_path=self.dir("logs", f"{stage}.log"), env=env or self.env(), cwd=self.run_dir,
            console=self.console, label=label, tail_lines=self.cfg.tail_lines,
        )  # fmt: skip

    def hold(self, marker: str, seconds: float) -> None:
        """Test hook: say where we are (a marker file), then wait to be killed."""
        self.dir(marker).write_text(str(time.time()))
        time.sleep(seconds)


# ---- helpers ---------------------------------------------------------------------------------
def _torchrun(nproc: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nnodes=1",
        f"--nproc_per_node={nproc}",
    ]


def _latest_step(ckpt: Path) -> Path:
    steps = sorted(ckpt.glob("global_step_*"), key=lambda p: int(p.name.rsplit("_", 1)[-1]))
    if not steps:
        raise RuntimeError(f"no global_step_* checkpoint under {ckpt}")
    return steps[-1]


def _losses(log: Path) -> list[float]:
    text = log.read_text(errors="replace") if log.exists() else ""
    return [float(x) for x in re.findall(r"train/loss:([-0-9.eE+]+)", text)]


def _loss_summary(log: Path) -> dict[str, Any]:
    losses = _losses(log)
    if not losses:
        return {"steps": 0}
    k = max(1, len(losses) // 5)
    return {
        "steps": len(losses),
        "loss_first": round(sum(losses[:k]) / k, 4),
        "loss_last": round(sum(losses[-k:]) / k, 4),
    }


def sft_determinism(seed: int, deterministic: bool) -> list[str]:
    """verl ``sft_trainer`` overrides for ``RunConfig.seed`` / ``.deterministic``. Without
    full_determinism verl's engine seeds nothing: a LoRA's initial weights differ from run to
    run (two demo runs: adapters up to 0.28 apart)."""
    return [f"engine.seed={seed}", f"engine.full_determinism={deterministic}"]


def ppo_determinism(seed: int, deterministic: bool, rollout: str) -> list[str]:
    """verl ``main_ppo`` overrides for ``RunConfig.seed`` / ``.deterministic``: the engines'
    seeds and full_determinism switches, and ``data.seed`` whatever ``deterministic`` says
    (without it verl shuffles the RL data unseeded).

    The rollout's full_determinism only for our ``hf`` rollout, which then seeds each request
    from its id. verl 0.9.1's vLLM server gives every request the same seed under it
    (``vllm_async_server.py``: ``setdefault("seed", replica_rank + seed)``), and a seeded vLLM
    request samples the same answer for the same prompt: a GRPO group's n samples would come
    out alike and every advantage would be zero."""
    out = [f"data.seed={seed}"]
    for part in ("actor_rollout_ref.actor.fsdp_config", "actor_rollout_ref.ref.fsdp_config"):
        out += [f"{part}.seed={seed}", f"{part}.full_determinism={deterministic}"]
    part = "actor_rollout_ref.rollout"
    return out + [f"{part}.seed={seed}", f"{part}.full_determinism={deterministic and rollout == 'hf'}"]


def _sft_common(ctx: RunContext) -> list[str]:
    from ..cpu.overrides import sft_overrides

    cpu = sft_overrides() if ctx.cfg.device == "cpu" else []
    return cpu + sft_determinism(ctx.cfg.seed, ctx.cfg.deterministic)


def _copy_hf(src: Path, dst: Path) -> Path:
    tmp = dst.with_name(f".{dst.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(src, tmp)
    shutil.rmtree(dst, ignore_errors=True)
    tmp.rename(dst)
    return dst


# ---- stages ----------------------------------------------------------------------------------
def stage_toy(ctx: RunContext) -> StageResult:
    from ..cpu.tiny import build_tiny_model
    from .toy import ToyShares, vocabulary_texts, write_world

    t = ctx.cfg.toy
    if not t.enabled:
        raise ValueError("stage 'toy' needs toy.enabled=true (or leave it out of stages)")
    shares = ToyShares(t.harmful_comply, t.benign_refuse, t.math_wrong, t.copies, t.seed, t.max_operand)
    paths = write_world(ctx.toy, shares)
    model = build_tiny_model(
        ctx.toy / "base_model", vocab_size=t.vocab_size, hidden=t.hidden, layers=t.layers, heads=t.heads,
        kv_heads=t.kv_heads, intermediate=2 * t.hidden, seed=t.seed, extra_texts=vocabulary_texts(shares),
    )  # fmt: skip
    import pandas as pd

    return StageResult(
        outputs=[ctx.toy],
        summary={"teach_rows": len(pd.read_parquet(paths["teach"])), "model": str(model)},
    )


def stage_teach(ctx: RunContext) -> StageResult:
    t = ctx.cfg.teach
    data = ctx.toy / "teach.parquet"
    ckpt = ctx.dir("teach", "ckpt")
    args = [
        *_torchrun(1), "-m", "verl.trainer.sft_trainer", *_sft_common(ctx),
        f"model.path={ctx.toy / 'base_model'}", f"data.train_files={data}", "data.val_files=null",
        f"data.train_batch_size={t.batch_size}", f"data.micro_batch_size_per_gpu={t.batch_size}",
        f"data.max_length={t.max_length}", "data.use_dynamic_bsz=False", f"optim.lr={t.lr}",
        "optim.lr_warmup_steps_ratio=0.05", f"trainer.total_epochs={t.epochs}", "trainer.logger=[console]",
        "trainer.save_freq=-1", f"trainer.default_local_dir={ckpt}", "trainer.project_name=sinternal_run",
        "trainer.experiment_name=teach", "checkpoint.save_contents=[model,hf_model]", "trainer.n_gpus_per_node=1",
        *t.overrides,
    ]  # fmt: skip
    ctx.child("teach", args, "teaching the tiny policy the answer format (verl sft_trainer)")
    model = _copy_hf(_latest_step(ckpt) / "huggingface", ctx.dir("teach", "model"))
    return StageResult(
        inputs=[data, ctx.toy / "base_model"],
        outputs=[model],
        summary=_loss_summary(ctx.dir("logs", "teach.log")),
    )


def stage_verification_data(ctx: RunContext) -> StageResult:
    from ..data import PipelineConfig, run_pipeline

    vd = ctx.cfg.verification_data
    mapping = copy.deepcopy(ctx.fill(vd.pipeline))
    mapping["out_dir"] = str(ctx.dir("verification_data"))
    mapping.setdefault("progress", True)
    prompts = mapping.setdefault("prompts", {})
    if not prompts.get("path"):
        if not ctx.cfg.toy.enabled:
            raise ValueError("verification_data.pipeline.prompts.path is required outside the toy world")
        prompts["path"] = str(ctx.toy / "safety_prompts.jsonl")
    mapping.setdefault("spec", str(ctx.toy / "spec.md") if ctx.cfg.toy.enabled else ctx.cfg.spec)
    sample = mapping.setdefault("sample", {})
    if sample.get("backend", "vllm") in ("vllm", "transformers") and not sample.get("model"):
        sample["model"] = ctx.policy
    server = None
    if vd.fake_expert:
        from ..testing.fake_expert import EXPERT_MODEL, build_expert_app
        from ..testing.server import ThreadedServer

        server = ThreadedServer(build_expert_app()).__enter__()
        crit = mapping.setdefault("critique", {})
        crit["urls"], crit["model"] = [server.url], EXPERT_MODEL
    try:
        cfg = PipelineConfig.from_mapping(mapping)
        if vd.hold_after_sample_s > 0:
            run_pipeline(cfg, until="sample")
            ctx.hold("_hold_verification_data", vd.hold_after_sample_s)
        result = run_pipeline(cfg)
    finally:
        if server is not None:
            server.__exit__(None, None, None)
    st = result.summary["stages"]
    summary = {
        "prompts": st.get("sample", {}).get("prompts"),
        "labels": st.get("label", {}).get("labels"),
        "selected": {
            k: v
            for k, v in st.get("select", {}).items()
            if isinstance(v, (int, float)) and k != "seconds_last_run"
        },
        "sft_rows": st.get("build", {}).get("rows"),
        "by_verdict": st.get("build", {}).get("by_verdict"),
        "by_mode": st.get("build", {}).get("by_mode"),
        "expert": "fake_expert (OpenAI protocol, loopback)"
        if vd.fake_expert
        else (mapping.get("critique", {}).get("model") or mapping.get("critique", {}).get("urls")),
    }
    inputs = [Path(prompts["path"])] + ([Path(ctx.policy)] if Path(ctx.policy).exists() else [])
    return StageResult(inputs=inputs, outputs=[ctx.dir("verification_data", "sft")], summary=summary)


def stage_verification_sft(ctx: RunContext) -> StageResult:
    import pandas as pd

    s = ctx.cfg.verification_sft
    sft = ctx.dir("verification_data", "sft")
    train, val = sft / "train.parquet", sft / "val.parquet"
    has_val = val.exists() and len(pd.read_parquet(val)) > 0
    ckpt = ctx.dir("verification_sft", "ckpt")
    rows = len(pd.read_parquet(train))
    replayed = 0
    if s.toy_replay > 0:
        train, replayed = _with_replay(ctx, train, s.toy_replay)
    args = [
        *_torchrun(s.nproc), "-m", "verl.trainer.sft_trainer", *_sft_common(ctx),
        f"model.path={ctx.policy}", f"data.train_files={train}", f"data.val_files={val if has_val else 'null'}",
        f"model.lora_rank={s.lora_rank}", f"model.lora_alpha={s.lora_alpha}", f"model.target_modules={s.target_modules}",
        f"optim.lr={s.lr}", f"trainer.total_epochs={s.epochs}", f"data.train_batch_size={s.batch_size}",
        f"data.micro_batch_size_per_gpu={s.micro_batch_size}", f"data.max_length={s.max_length}",
        "data.custom_cls.path=pkg://sinternal_verl.data.sft_dataset", "data.custom_cls.name=VerificationSFTDataset",
        "trainer.logger=[console]", "trainer.save_freq=-1", f"trainer.default_local_dir={ckpt}",
        "trainer.project_name=sinternal_run", "trainer.experiment_name=verification_sft",
        f"trainer.n_gpus_per_node={s.nproc}", "checkpoint.save_contents=[model,optimizer,extra]", *s.overrides,
    ]  # fmt: skip
    ctx.child(
        "verification_sft", args, f"verification SFT, LoRA r{s.lora_rank}/a{s.lora_alpha} (verl sft_trainer)"
    )
    step = _latest_step(ckpt)
    return StageResult(
        inputs=[train, Path(ctx.policy)],
        outputs=[step],
        summary={
            **_loss_summary(ctx.dir("logs", "verification_sft.log")),
            "rows": rows,
            "replayed": replayed,
        },
    )


def _with_replay(ctx: RunContext, train: Path, ratio: float) -> tuple[Path, int]:
    """Toy world: the verification rows plus ``ratio`` times as many teaching rows (seeded), shuffled.

    Why: the toy policy is a two-layer model taught a few dozen strings minutes ago; SFT on
    verification alone rewrites what follows ``<think>`` for every prompt (measured: toy ASR and
    math accuracy collapse). Replaying the teaching mix -- the policy's own answer distribution,
    harmful compliance included -- stands in for the robustness a pre-trained model has, and
    teaches no safety: the only new targets are still critiques and verdicts."""
    import pandas as pd

    if not ctx.cfg.toy.enabled:
        raise ValueError(
            "verification_sft.toy_replay needs toy.enabled=true (it replays the toy teaching data)"
        )
    ver = pd.read_parquet(train)
    teach = pd.read_parquet(ctx.toy / "teach.parquet")
    n = min(len(teach), round(ratio * len(ver)))
    mixed = pd.concat([ver[["messages"]], teach[["messages"]].sample(n=n, random_state=ctx.cfg.toy.seed)])
    out = ctx.dir("verification_sft", "train_with_replay.parquet")
    out.parent.mkdir(parents=True, exist_ok=True)
    mixed.sample(frac=1.0, random_state=ctx.cfg.toy.seed).to_parquet(out, index=False)
    return out, n


def stage_merge(ctx: RunContext) -> StageResult:
    step = _latest_step(ctx.dir("verification_sft", "ckpt"))
    unmerged = ctx.dir("merge", "unmerged")
    shutil.rmtree(unmerged, ignore_errors=True)
    ctx.child("merge", [sys.executable, "-m", "verl.model_merger", "merge", "--backend", "fsdp",
                        "--local_dir", str(step), "--target_dir", str(unmerged)], "verl model_merger (FSDP -> HF + adapter)")  # fmt: skip
    out = ctx.sft_model
    tmp = out.with_name(".model.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    if (unmerged / "lora_adapter" / "adapter_config.json").is_file():
        from ..data.merge_lora import merge_lora

        merge_lora(unmerged, unmerged / "lora_adapter", tmp, ctx.cfg.merge.dtype)
        merged = "lora"
    else:  # a full fine-tune: the merger's output is the model
        shutil.copytree(unmerged, tmp)
        merged = "full"
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    return StageResult(inputs=[step], outputs=[out], summary={"merged": merged})


def stage_rl_data(ctx: RunContext) -> StageResult:
    from ..data.rl_mix import RLMixConfig, build_rl_mix

    r = ctx.cfg.rl_data
    safety = ctx.fill(list(r.safety_files)) or (
        [str(ctx.toy / "safety_prompts.jsonl")] if ctx.cfg.toy.enabled else []
    )
    math = ctx.fill(list(r.math_files)) or (
        [str(ctx.toy / "math_problems.jsonl")] if ctx.cfg.toy.enabled else []
    )
    mix = RLMixConfig(
        safety_files=safety, math_files=math, math_count=r.math_count, safety_count=r.safety_count,
        val_fraction=r.val_fraction, seed=r.seed, math_template=r.math_template,
    )  # fmt: skip
    result = build_rl_mix(mix, ctx.dir("rl_data"))
    outputs = [result.train_path] + ([result.val_path] if result.val_path else [])
    return StageResult(inputs=[Path(p) for p in safety + math], outputs=outputs, summary=dict(result.counts))


DAPO_OVERRIDES = (
    "algorithm.filter_groups.enable=True",
    "algorithm.filter_groups.metric=score",
    "actor_rollout_ref.actor.clip_ratio_low=0.2",
    "actor_rollout_ref.actor.clip_ratio_high=0.28",
    "actor_rollout_ref.actor.loss_agg_mode=token-mean",
    "reward.reward_manager.source=importlib",
    "reward.reward_manager.name=SInternalOverlongRewardManager",
    "reward.reward_manager.module.path=pkg://sinternal_verl.rewards.overlong",
    "reward.reward_manager.module.name=SInternalOverlongRewardManager",
)


def _hydra_value(value: Any) -> str:
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_hydra_value(v) for v in value) + "]"
    if value is None:
        return "null"
    return json.dumps(value) if isinstance(value, str) and any(c in value for c in ",[]{}= ") else str(value)


def stage_rl(ctx: RunContext) -> StageResult:
    from ..cpu.overrides import ppo_overrides

    r = ctx.cfg.rl
    data = ctx.dir("rl_data")
    train, val = data / "train.parquet", data / "val.parquet"
    ckpt = ctx.dir("rl", "ckpt")
    ctx.dir("rl").mkdir(parents=True, exist_ok=True)
    # one metrics file per attempt: verl's file logger truncates its file, and a resumed run
    # continues from its last checkpoint's step
    attempt = len(list(ctx.dir("rl").glob("metrics-*.jsonl"))) + 1
    metrics = ctx.dir("rl", f"metrics-{attempt}.jsonl")
    cpu = ppo_overrides() if ctx.cfg.device == "cpu" else []
    args = [
        sys.executable, "-m", "verl.trainer.main_ppo", *cpu,
        "algorithm.adv_estimator=grpo", f"data.train_files={train}", f"data.val_files={val if val.exists() else train}",
        f"data.train_batch_size={r.train_batch_size}", f"data.max_prompt_length={r.max_prompt_length}",
        f"data.max_response_length={r.max_response_length}", "data.dataloader_num_workers=0",
        f"actor_rollout_ref.model.path={ctx.rl_init}", f"actor_rollout_ref.actor.optim.lr={r.lr}",
        f"actor_rollout_ref.actor.ppo_mini_batch_size={r.ppo_mini_batch_size}",
        f"actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu={r.micro_batch_size}",
        f"actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu={r.micro_batch_size}",
        f"actor_rollout_ref.ref.log_prob_micro_batch_size_per_gpu={r.micro_batch_size}",
        f"actor_rollout_ref.rollout.n={r.n}", f"actor_rollout_ref.rollout.temperature={r.temperature}",
        "actor_rollout_ref.rollout.calculate_log_probs=True",
        "actor_rollout_ref.actor.use_kl_loss=False", "algorithm.use_kl_in_reward=False",
        "reward.reward_manager.source=register", "reward.reward_manager.name=sinternal",
        *[f"+reward.reward_kwargs.{k}={_hydra_value(v)}" for k, v in ctx.fill(dict(r.reward_kwargs)).items()],
        f"trainer.total_training_steps={r.steps}", f"trainer.val_before_train={r.val_before_train}",
        f"trainer.test_freq={r.steps if r.test_freq == 0 else r.test_freq}", f"trainer.save_freq={r.save_freq if r.save_freq > 0 else r.steps}",
        "trainer.logger=[console,file]", f"trainer.default_local_dir={ckpt}", "trainer.resume_mode=auto",
        "trainer.project_name=sinternal_run", f"trainer.experiment_name={r.algorithm}",
        *ppo_determinism(ctx.cfg.seed, ctx.cfg.deterministic, "hf" if ctx.cfg.device == "cpu" else r.rollout),
    ]  # fmt: skip
    if ctx.cfg.device != "cpu":
        args += [f"actor_rollout_ref.rollout.name={r.rollout}", f"trainer.n_gpus_per_node={r.nproc}"]
    if r.algorithm == "dapo":
        args += list(DAPO_OVERRIDES)
    args += list(r.overrides)
    env = ctx.env()
    env["VERL_FILE_LOGGER_PATH"] = str(metrics)
    ctx.child("rl", args, f"{r.algorithm.upper()} with the sinternal reward (verl main_ppo)", env=env)
    step = _latest_step(ckpt)
    out = ctx.rl_model
    tmp = out.with_name(".model.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    ctx.child("rl", [sys.executable, "-m", "verl.model_merger", "merge", "--backend", "fsdp",
                     "--local_dir", str(step / "actor"), "--target_dir", str(tmp)], "verl model_merger (actor -> HF)")  # fmt: skip
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    return StageResult(inputs=[train, Path(ctx.rl_init)], outputs=[out], summary=rl_summary(ctx.dir("rl")))


def rl_summary(rl_dir: Path) -> dict[str, Any]:
    """Reward per step from verl's file logger, over every attempt (a resumed run's steps
    continue where the last checkpoint left off; a later attempt wins for a repeated step)."""
    rows = []
    for f in sorted(rl_dir.glob("metrics-*.jsonl"), key=lambda p: int(p.stem.split("-")[-1])):
        rows += [json.loads(line) for line in f.read_text().splitlines() if line.strip()]
    by_step: dict[int, dict] = {}
    for row in rows:
        by_step.setdefault(int(row["step"]), {}).update(row["data"])
    steps = sorted(by_step)
    out: dict[str, Any] = {"steps": sum(1 for s in steps if "critic/score/mean" in by_step[s])}
    keys = ("critic/score/mean", "response_length/mean")
    for key in keys:
        vals = [by_step[s][key] for s in steps if key in by_step[s]]
        if vals:
            out[key] = [round(float(v), 4) for v in vals]
    # verl's validation (greedy, one answer per prompt): ``val-core/<data_source>/<acc|reward>/mean@1``
    for s in steps:
        for k, v in by_step[s].items():
            if k.startswith("val-core/") and k.endswith("/mean@1"):
                source = k.split("/")[1]
                out.setdefault("validation", {}).setdefault(source, []).append([s, round(float(v), 4)])
    return out


def stage_eval(ctx: RunContext) -> StageResult:
    from ..settings import load

    try:
        from ..eval import EvalConfig, evaluate
    except ImportError as exc:
        raise RuntimeError(
            f"the evaluation harness (sinternal_verl.eval) is not importable: {exc}; "
            "leave 'eval' out of stages to run the rest"
        ) from exc
    e = ctx.cfg.eval
    paths = {"base": ctx.policy, "sft": str(ctx.sft_model), "rl": str(ctx.rl_model)}
    models = []
    for name in e.models:
        if name != "base" and not Path(paths[name]).is_dir():
            continue  # that stage did not run in this configuration
        entry = {"name": name, "backend": e.backend, "path": paths[name], **ctx.fill(dict(e.model_options))}
        if e.generation:
            entry["generation"] = ctx.fill(dict(e.generation))
        models.append(entry)
    data: dict[str, Any] = {
        "output_dir": str(ctx.dir("eval")),
        "models": models,
        "benchmarks": ctx.fill(list(e.benchmarks)),
        "judge": ctx.fill(dict(e.judge)),
        **ctx.fill(dict(e.extra)),
    }
    if e.verification:
        data["verification"] = ctx.fill(dict(e.verification))
    config = load(EvalConfig, data, where="eval (built by the run from its checkpoints)")
    result = evaluate(config)
    (ctx.dir("eval")).mkdir(parents=True, exist_ok=True)
    (ctx.dir("eval", "run_result.json")).write_text(json.dumps(result, indent=2, default=str))
    inputs = [Path(m["path"]) for m in models if Path(m["path"]).exists()]
    return StageResult(inputs=inputs, outputs=[ctx.dir("eval")], summary={"result": _numbers(result)})


def _numbers(value: Any, depth: int = 0) -> Any:
    """The numeric skeleton of the harness's result (for the manifest and the last screen)."""
    if isinstance(value, dict) and depth < 4:
        out = {k: _numbers(v, depth + 1) for k, v in value.items()}
        return {k: v for k, v in out.items() if v not in (None, {}, [])}
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return round(float(value), 4)
    return None


def stage_report(ctx: RunContext) -> StageResult:
    from .report import write_report

    path = write_report(ctx)
    return StageResult(outputs=[path], summary={"report": str(path)})


STAGE_FUNCS: dict[str, Callable[[RunContext], StageResult]] = {
    "toy": stage_toy,
    "teach": stage_teach,
    "verification_data": stage_verification_data,
    "verification_sft": stage_verification_sft,
    "merge": stage_merge,
    "rl_data": stage_rl_data,
    "rl": stage_rl,
    "eval": stage_eval,
    "report": stage_report,
}

#: the settings section(s) each stage depends on (a change is reported on resume)
STAGE_SECTIONS: dict[str, tuple[str, ...]] = {
    "toy": ("toy",),
    "teach": ("toy", "teach"),
    "verification_data": ("verification_data", "spec", "policy_path"),
    "verification_sft": ("verification_sft",),
    "merge": ("merge",),
    "rl_data": ("rl_data",),
    "rl": ("rl",),
    "eval": ("eval",),
    "report": (),
}
