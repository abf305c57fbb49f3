"""The reduced CI form of ``make demo``: the CPU preset (``recipes/run/cpu_demo.yaml``) with
one verification-SFT epoch and 2 GRPO steps, through every stage up to
the report, as a real subprocess: verl's SFT trainer (teach, LoRA verification SFT), the
verification-data pipeline with labels and critiques from the toy guard and expert on loopback, the LoRA merge, the RL mix,
``main_ppo`` GRPO with the ``sinternal`` reward. The evaluation stage is a second test on the
same run directory (``--from eval``); it needs ``sinternal_verl.eval``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

PRESET = Path(__file__).resolve().parents[1] / "recipes" / "run" / "cpu_demo.yaml"
REDUCED = ["verification_sft.epochs=1", "rl.steps=2"]
NO_EVAL = "stages=[toy,teach,verification_data,verification_sft,merge,rl_data,rl,report]"


def _run(*args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "sinternal_verl.cli", "run", str(PRESET), *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=1800)


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("demo") / "run"
    done = _run(f"run_dir={run_dir}", NO_EVAL, *REDUCED)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    return run_dir, done


def test_reduced_demo_runs_every_stage_through_grpo(demo_run):
    from transformers import AutoModelForCausalLM

    run_dir, done = demo_run
    m = json.loads((run_dir / "manifest.json").read_text())
    stages = m["stages"]
    assert {k: (v["status"], v["runs"]) for k, v in stages.items()} == {
        k: ("done", 1)
        for k in ("toy", "teach", "verification_data", "verification_sft", "merge", "rl_data", "rl", "report")
    }
    teach = stages["teach"]["summary"]
    assert teach["loss_last"] < teach["loss_first"]
    vd = stages["verification_data"]["summary"]
    assert vd["sft_rows"] > 0 and vd["prompts"] == 40
    # labels and critiques came over HTTP from the toy guard and expert, one critique per example
    # (a critique whose verdict disagrees with the label is retried or dropped, never kept)
    assert vd["expert"] == "toy-expert" and vd["by_mode"] == {"critique": vd["sft_rows"]}
    # (the guard client sends a repeated (prompt, answer) once: the toy policy repeats itself)
    assert 0 < vd["served_requests"]["guard"] <= sum(vd["labels"].values())
    assert vd["served_requests"]["expert"] >= vd["sft_rows"]
    # the sinternal manager's guard in GRPO: the same toy guard, from verl's reward workers
    assert stages["rl"]["summary"]["served_requests"]["guard"] > 0
    assert stages["verification_sft"]["summary"]["replayed"] == round(0.5 * vd["sft_rows"])
    assert stages["verification_sft"]["summary"]["steps"] >= 1
    assert stages["merge"]["summary"]["merged"] == "lora"
    rl = stages["rl"]["summary"]
    assert rl["steps"] == 2 and all(0.0 <= r <= 1.0 for r in rl["critic/score/mean"])
    # greedy validation before the first step and after the last, per data source (safety, math)
    assert len(rl["validation"]) == 2 and all(len(points) == 2 for points in rl["validation"].values())
    # each stage's input is the previous stage's output, by hash
    assert (
        stages["rl"]["inputs"][str(run_dir / "merge" / "model")]
        == stages["merge"]["outputs"][str(run_dir / "merge" / "model")]
    )
    AutoModelForCausalLM.from_pretrained(run_dir / "rl" / "model")
    assert "report.md" in done.stdout and (run_dir / "report.md").exists()

    again = _run(f"run_dir={run_dir}", NO_EVAL, *REDUCED)  # finished: nothing is redone
    assert again.returncode == 0
    assert all(v["runs"] == 1 for v in json.loads((run_dir / "manifest.json").read_text())["stages"].values())


def test_reduced_demo_evaluates_base_sft_and_rl(demo_run):
    run_dir, _ = demo_run
    done = _run(f"run_dir={run_dir}", *REDUCED, "--from", "eval")
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    stages = json.loads((run_dir / "manifest.json").read_text())["stages"]
    assert stages["eval"]["status"] == "done" and stages["rl"]["runs"] == 1
    assert (run_dir / "eval" / "metrics.json").exists()
    assert stages["eval"]["summary"]["served_requests"]["guard"] > 0  # the eval judge is the toy guard
    report = (run_dir / "report.md").read_text()
    assert "Evaluation (base / SFT / RL)" in report and "Did each stage move its number?" in report
    assert "| verification SFT | toy_verification f1 (higher is better) |" in report
