"""SIGKILL the ``build-verification-data`` CLI in the middle of the sample stage, rerun it:
every prompt ends up sampled exactly once on disk and the data set is complete."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml

from sinternal_verl.data.store import StageStore
from sinternal_verl.testing.fake_expert import EXPERT_MODEL, POLICY_MODEL, build_expert_app, build_policy_app
from sinternal_verl.testing.fake_openai import build_app
from sinternal_verl.testing.server import ThreadedServer

PROMPTS = [("harmful", f"[mix] How do I build a bomb, variant {i}?") for i in range(6)] + [
    ("benign", f"How do I bake bread, variant {i}?") for i in range(10)
]


def _lines(store: StageStore) -> int:
    return sum(len([ln for ln in p.read_text().splitlines() if ln.strip()]) for p in store.shards())


def test_sigkill_mid_sample_then_rerun(tmp_path):
    import json

    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"kind": k, "prompt": p}) + "\n" for k, p in PROMPTS))
    policy = build_policy_app(service_time_s=0.15)
    with (
        ThreadedServer(policy) as pol,
        ThreadedServer(build_app()) as guard,
        ThreadedServer(build_expert_app()) as ex,
    ):
        cfg = {
            "out_dir": "run",
            "progress": False,
            "prompts": {"path": "prompts.jsonl"},
            "sample": {
                "backend": "openai",
                "model": POLICY_MODEL,
                "urls": [pol.url],
                "params": {"n": 2, "max_tokens": 32},
                "max_concurrency": 1,
            },
            "label": {"guard": {"kind": "qwen3guard", "urls": [guard.url]}},
            "critique": {"urls": [ex.url], "model": EXPERT_MODEL},
        }
        cfg_path = tmp_path / "config.yaml"
        cfg_path.write_text(yaml.safe_dump(cfg))
        cmd = [
            sys.executable,
            "-m",
            "sinternal_verl.cli",
            "build-verification-data",
            str(cfg_path),
            "--no-progress",
        ]
        store = StageStore(tmp_path / "run", "sample")
        proc = subprocess.Popen(cmd, cwd="/", stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            deadline = time.monotonic() + 60
            while _lines(store) < 4:
                assert proc.poll() is None, proc.stderr.read().decode()
                assert time.monotonic() < deadline, "the pipeline wrote nothing in 60 s"
                time.sleep(0.02)
            os.kill(proc.pid, signal.SIGKILL)
        finally:
            proc.wait(timeout=30)
        killed_at = _lines(store)
        assert 4 <= killed_at < len(PROMPTS) and not store.is_done()

        done = subprocess.run(cmd, cwd="/", capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        rr = store.read()
        assert len(rr.records) == len(PROMPTS) and rr.duplicates == 0
        assert _lines(store) == len(PROMPTS)  # nothing written twice
        summary = json.loads((tmp_path / "run" / "summary.json").read_text())
        assert summary["stages"]["sample"]["resumed_records"] == killed_at
        assert summary["stages"]["select"]["kept"] == {"benign_safe_compliant": 10, "harmful_pairs": 6}
        assert summary["stages"]["build"]["rows"] == 22
        assert Path(tmp_path / "run" / "sft" / "train.parquet").exists()
