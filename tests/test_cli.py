"""The README's commands as a user runs them: real processes, real guard server on loopback."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from sinternal_verl.testing.server import free_port

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "SINTERNAL_GUARD_URLS": ""}


def cli(*args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "sinternal_verl.cli", *args],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_demo_scores_the_shipped_examples(tmp_path):
    out = tmp_path / "scored.jsonl"
    res = cli("demo-score", "--json", str(out))
    assert res.returncode == 0, res.stdout + res.stderr
    assert "12/12 match the expected reward" in res.stdout
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 12 and all("score" in r and "guard_error" in r for r in rows)


def test_demo_against_a_served_guard(fake_guard):
    res = cli("demo-score", "--guard-url", fake_guard.url)
    assert "guard: qwen3guard" in res.stdout, res.stdout + res.stderr
    assert fake_guard.stats()["counts"]["chat"] >= 5  # every safety example went to the server


def test_doctor_reports_registration_and_a_ready_guard(fake_guard):
    res = cli("doctor", "--guard-url", fake_guard.url)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "reward manager 'sinternal'" in res.stdout and "registered" in res.stdout
    assert "all checks passed" in res.stdout


def test_doctor_fails_loudly_on_a_dead_guard():
    dead = f"http://127.0.0.1:{free_port()}"
    res = cli("doctor", "--guard-url", dead)
    assert res.returncode == 1
    assert "guard not ready" in res.stdout and dead.split("//")[1] in res.stdout


def test_no_command_prints_help():
    res = cli()
    assert res.returncode == 2 and "build-verification-data" in res.stdout
