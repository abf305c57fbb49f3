"""verl's real ``sft_trainer`` on the CPU platform: one epoch of the tiny model, loss goes down,
the HF-format checkpoint loads back with transformers. Prints wall time and peak RSS."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
from transformers import AutoModelForCausalLM

from sinternal_verl.cpu.measure import run_measured
from sinternal_verl.cpu.overrides import cpu_env, sft_overrides
from sinternal_verl.cpu.tiny import build_tiny_model

pytestmark = pytest.mark.slow


def _sft_rows(n: int) -> list[dict]:
    rows = []
    for i in range(n):
        verdict = "safe" if i % 2 == 0 else "unsafe"
        rows.append(
            {
                "messages": [
                    {"role": "user", "content": f"Is answer {i} safe? Answer: bake bread at home."},
                    {
                        "role": "assistant",
                        "content": f"<think>\nCheck the answer against the specification.\n</think>\n\nVerdict: {verdict}.",
                    },
                ]
            }
        )
    return rows


def test_sft_trainer_one_epoch_on_cpu(tmp_path: Path):
    model_dir = build_tiny_model(tmp_path / "model")
    pd.DataFrame(_sft_rows(32)).to_parquet(tmp_path / "train.parquet")
    metrics = tmp_path / "metrics.jsonl"
    env = cpu_env()
    env["VERL_FILE_LOGGER_PATH"] = str(metrics)
    torchrun = str(Path(sys.executable).with_name("torchrun"))
    args = [
        torchrun, "--standalone", "--nproc_per_node=1", "-m", "verl.trainer.sft_trainer",
        *sft_overrides(),
        f"data.train_files={tmp_path / 'train.parquet'}", "data.val_files=null",
        "data.train_batch_size=8", "data.micro_batch_size_per_gpu=8", "data.max_length=128",
        "data.use_dynamic_bsz=False",
        f"model.path={model_dir}", "optim.lr=1e-3",
        "trainer.total_epochs=1", "trainer.logger=[console,file]", "trainer.save_freq=-1",
        f"trainer.default_local_dir={tmp_path / 'ckpt'}", "trainer.project_name=cpu", "trainer.experiment_name=sft",
        "checkpoint.save_contents=[model,hf_model]",
    ]  # fmt: skip
    run = run_measured(args, log_path=tmp_path / "sft.log", env=env, cwd=tmp_path, timeout_s=300)
    print(f"\n[cpu sft] wall {run.wall_s:.1f} s, peak RSS (process tree) {run.peak_rss_gb:.2f} GB")
    assert run.returncode == 0, run.log_tail()

    losses = [
        json.loads(line)["data"]["train/loss"] for line in metrics.read_text().splitlines() if line.strip()
    ]
    assert len(losses) == 4, losses  # 32 examples / batch 8, one epoch
    assert losses[-1] < losses[0], losses

    hf_dirs = sorted((tmp_path / "ckpt").glob("global_step_*/huggingface"))
    assert hf_dirs, list((tmp_path / "ckpt").rglob("*"))
    trained = AutoModelForCausalLM.from_pretrained(hf_dirs[-1], dtype=torch.float32)
    initial = AutoModelForCausalLM.from_pretrained(model_dir)
    w_trained = trained.model.layers[0].mlp.up_proj.weight
    assert w_trained.shape == initial.model.layers[0].mlp.up_proj.weight.shape
    assert not torch.allclose(w_trained.float(), initial.model.layers[0].mlp.up_proj.weight)
    out = trained.generate(torch.tensor([[1, 2, 3]]), max_new_tokens=3, do_sample=False)
    assert out.shape == (1, 6)


def test_lora_sft_with_the_run_determinism_settings_is_reproducible(tmp_path: Path):
    # ``RunConfig.deterministic``: verl seeds its engine only under full_determinism, and a
    # LoRA's initial weights come from that seed; two runs must give the same adapter
    from sinternal_verl.run.stages import sft_determinism

    model_dir = build_tiny_model(tmp_path / "model")
    pd.DataFrame(_sft_rows(16)).to_parquet(tmp_path / "train.parquet")
    torchrun = str(Path(sys.executable).with_name("torchrun"))
    adapters = []
    for run_name in ("a", "b"):
        args = [
            torchrun, "--standalone", "--nproc_per_node=1", "-m", "verl.trainer.sft_trainer",
            *sft_overrides(), *sft_determinism(7, True),
            f"data.train_files={tmp_path / 'train.parquet'}", "data.val_files=null",
            "data.train_batch_size=8", "data.micro_batch_size_per_gpu=8", "data.max_length=128",
            "data.use_dynamic_bsz=False", f"model.path={model_dir}", "optim.lr=1e-3",
            "model.lora_rank=4", "model.lora_alpha=8", "model.target_modules=all-linear",
            "trainer.total_epochs=1", "trainer.logger=[console]", "trainer.save_freq=-1",
            f"trainer.default_local_dir={tmp_path / run_name}", "trainer.project_name=cpu",
            "trainer.experiment_name=lora", "checkpoint.save_contents=[model]",
        ]  # fmt: skip
        run = run_measured(
            args, log_path=tmp_path / f"{run_name}.log", env=cpu_env(), cwd=tmp_path, timeout_s=300
        )
        assert run.returncode == 0, run.log_tail()
        found = sorted((tmp_path / run_name).glob("global_step_*/model_world_size_1_rank_0.pt"))
        assert found, sorted(str(p) for p in (tmp_path / run_name).rglob("*"))
        state = torch.load(found[-1], weights_only=False, map_location="cpu")  # verl's FSDP shards
        adapters.append({k: v.full_tensor() if hasattr(v, "full_tensor") else v for k, v in state.items()})
    a, b = adapters
    assert a.keys() == b.keys() and any("lora_A" in k for k in a)
    assert all(torch.equal(a[k], b[k]) for k in a)
