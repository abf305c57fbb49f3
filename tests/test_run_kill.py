"""Killing ``sinternal-verl run`` (SIGKILL, a real subprocess) between two stages and inside a
stage, then rerunning the same command: it finishes without redoing finished stages (stage
start counts in the manifest) and, inside the verification-data stage, without redoing the
pipeline's finished sampling (request counts at the loopback policy server)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import yaml

from sinternal_verl.testing.fake_expert import POLICY_MODEL, build_policy_app
from sinternal_verl.testing.server import ThreadedServer

TOY = {"enabled": True, "hidden": 32, "layers": 1, "heads": 2, "kv_heads": 1, "copies": 2}


def _write(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump({"run_dir": str(tmp_path / "run"), "device": "cpu", "toy": TOY, **data}))
    return path


def _cmd(cfg: Path, *overrides: str) -> list[str]:
    return [sys.executable, "-m", "sinternal_verl.cli", "run", str(cfg), *overrides]


def _kill_when(marker: Path, proc: subprocess.Popen, polls: int = 1200) -> None:
    """SIGKILL ``proc`` once ``marker`` exists (bounded number of polls)."""
    for _ in range(polls):
        if marker.exists():
            break
        assert proc.poll() is None, proc.communicate()[0][-3000:]
        time.sleep(0.25)
    assert marker.exists(), "the run never reached the marker"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()


def _manifest(tmp_path: Path) -> dict:
    return json.loads((tmp_path / "run" / "manifest.json").read_text())


def _rerun(cfg: Path) -> None:
    done = subprocess.run(_cmd(cfg), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


def test_killed_between_stages_resumes_at_the_next_stage(tmp_path):
    cfg = _write(
        tmp_path,
        {
            "stages": ["toy", "rl_data", "report"],
            "rl_data": {"math_count": None, "math_template": "{problem}"},
        },
    )
    proc = subprocess.Popen(_cmd(cfg, "hooks.hold_after_stage=toy", "hooks.hold_s=600"),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip
    _kill_when(tmp_path / "run" / "_hold_after_toy", proc)
    m = _manifest(tmp_path)
    assert m["stages"]["toy"]["status"] == "done" and "rl_data" not in m["stages"]

    _rerun(cfg)
    m = _manifest(tmp_path)
    assert {k: (v["status"], v["runs"]) for k, v in m["stages"].items()} == {
        "toy": ("done", 1), "rl_data": ("done", 1), "report": ("done", 1),
    }  # fmt: skip
    assert len(m["invocations"]) == 2


def test_killed_inside_a_stage_redoes_only_that_stage_and_the_pipeline_resumes(tmp_path):
    with ThreadedServer(build_policy_app()) as policy:
        cfg = _write(
            tmp_path,
            {
                "stages": ["toy", "verification_data", "report"],
                "verification_data": {
                    "pipeline": {
                        "sample": {
                            "backend": "openai",
                            "model": POLICY_MODEL,
                            "urls": [policy.url],
                            "params": {"n": 4, "max_tokens": 64},
                        },
                        # the toy guard and expert: new servers (new ports) after the kill
                        "label": {"guard": {"kind": "qwen3guard", "urls": ["{guard_url}"]}},
                        "critique": {"urls": ["{expert_url}"], "model": "toy-expert"},
                        "build": {"val_fraction": 0.0},
                        "progress": False,
                    },
                },
            },
        )
        proc = subprocess.Popen(_cmd(cfg, "verification_data.hold_after_sample_s=600"),
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip
        _kill_when(tmp_path / "run" / "_hold_verification_data", proc)
        m = _manifest(tmp_path)
        assert m["stages"]["verification_data"]["status"] == "running"  # killed inside it
        sampled = httpx.get(f"{policy.url}/_stats").json()["counts"].get("chat", 0)
        assert sampled >= 40  # the toy world's 40 safety prompts were sampled before the kill

        _rerun(cfg)
        assert (
            httpx.get(f"{policy.url}/_stats").json()["counts"].get("chat", 0) == sampled
        )  # sampling not redone
    m = _manifest(tmp_path)
    runs = {k: (v["status"], v["runs"]) for k, v in m["stages"].items()}
    assert runs == {"toy": ("done", 1), "verification_data": ("done", 2), "report": ("done", 1)}
    summary = m["stages"]["verification_data"]["summary"]
    assert summary["sft_rows"] > 0 and summary["prompts"] == 40
    assert (
        summary["served_requests"]["guard"] > 0
        and summary["served_requests"]["expert"] >= summary["sft_rows"]
    )
    assert (tmp_path / "run" / "verification_data" / "sft" / "train.parquet").exists()
