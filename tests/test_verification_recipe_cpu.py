"""One verification-SFT epoch on CPU: the pipeline's parquet (with a user's own short spec
file), the recipe config, verl's real SFT trainer under torchrun, LoRA on the tiny Qwen3."""

from __future__ import annotations

import math
import re
import subprocess
import sys
from pathlib import Path

import pytest

from sinternal_verl.data import PipelineConfig, run_pipeline
from sinternal_verl.testing.fake_expert import EXPERT_MODEL, POLICY_MODEL, build_expert_app, build_policy_app
from sinternal_verl.testing.fake_openai import build_app
from sinternal_verl.testing.server import ThreadedServer

RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "verification_sft"


@pytest.mark.slow
def test_one_sft_epoch_on_cpu_with_the_recipe(tmp_path):
    import json

    from sinternal_verl.cpu.overrides import cpu_env, sft_overrides
    from sinternal_verl.cpu.tiny import build_tiny_model

    model = build_tiny_model(tmp_path / "tiny")
    spec = tmp_path / "my_spec.md"
    spec.write_text("Unsafe: real help to hurt people. Safe: everything else, refusals included.")
    prompts = [{"kind": "harmful", "prompt": f"[mix] bomb {i}"} for i in range(4)] + [
        {"kind": "benign", "prompt": f"bread {i}"} for i in range(4)
    ]
    (tmp_path / "p.jsonl").write_text("".join(json.dumps(p) + "\n" for p in prompts))
    with (
        ThreadedServer(build_policy_app()) as pol,
        ThreadedServer(build_app()) as g,
        ThreadedServer(build_expert_app()) as ex,
    ):
        cfg = PipelineConfig.from_mapping(
            {
                "out_dir": str(tmp_path / "run"),
                "progress": False,
                "spec": str(spec),
                "prompts": {"path": str(tmp_path / "p.jsonl")},
                "sample": {"backend": "openai", "model": POLICY_MODEL, "urls": [pol.url], "params": {"n": 2}},
                "label": {"guard": {"kind": "qwen3guard", "urls": [g.url]}},
                "critique": {"urls": [ex.url], "model": EXPERT_MODEL},
                "build": {"val_fraction": 0.0},
            }
        )
        result = run_pipeline(cfg)
    assert result.summary["stages"]["build"]["train_rows"] == 12  # 4 pairs + 4 benign

    ckpt = tmp_path / "ckpt"
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=1",
        "-m",
        "verl.trainer.sft_trainer",
        f"--config-path={RECIPE / 'config'}",
        "--config-name=verification_sft",
        f"model.path={model}",
        f"data.train_files={result.train_path}",
        *sft_overrides(),
        "trainer.total_epochs=1",
        "data.train_batch_size=4",
        "data.micro_batch_size_per_gpu=2",
        "data.max_length=1024",
        "data.max_token_len_per_gpu=2048",
        "model.enable_gradient_checkpointing=False",
        "trainer.logger=[console]",
        f"trainer.default_local_dir={ckpt}",
        "trainer.save_freq=-1",
        "checkpoint.save_contents=[model,extra]",
        "trainer.resume_mode=disable",
    ]
    env = cpu_env()
    env.pop("CUDA_VISIBLE_DEVICES", None)
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout + proc.stderr
    # verl's console logger prints "step:N - train/loss:..." per step: 12 rows / batch 4 = 3 steps
    steps = sorted({int(m) for m in re.findall(r"step:(\d+) - ", out)})
    assert steps == [1, 2, 3], (steps, out[-3000:])
    losses = [float(x) for x in re.findall(r"train/loss:([0-9.]+)", out)]
    assert len(losses) >= 3 and all(math.isfinite(x) for x in losses), losses
