"""``sinternal-verl serve`` as a real process: flags, env, binding, bad flags."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import httpx

from sinternal_verl.testing.server import free_port


def _wait(url: str, proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else "server exited"
        try:
            httpx.get(url + "/health", timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.2)
    raise TimeoutError(url)


def test_serve_with_env_guard_and_api_key(fake_guard):
    port = free_port()
    env = dict(os.environ, SINTERNAL_GUARD_URLS=fake_guard.url, SINTERNAL_GUARD_KIND="qwen3guard",
               SINTERNAL_SERVER_API_KEY="k")
    proc = subprocess.Popen([sys.executable, "-m", "sinternal_verl.cli", "serve", "--port", str(port), "--log-level", "warning",
                             "--reward-kwargs", '{"harmful_safe_score": 2.0}'], env=env, stderr=subprocess.PIPE)
    try:
        url = f"http://127.0.0.1:{port}"
        _wait(url, proc)
        item = {"prompt": "bomb?", "response": "Sorry, I can't.", "task": "safety", "prompt_type": "harmful"}
        assert httpx.post(f"{url}/v1/score", json={"items": [item]}).status_code == 401
        r = httpx.post(f"{url}/v1/score", json={"items": [item]}, headers={"Authorization": "Bearer k"}, timeout=30)
        assert r.status_code == 200 and r.json()["results"][0]["score"] == 2.0  # reward kwargs reach the reward
    finally:
        proc.terminate()
        assert proc.wait(30) in (0, -15)  # uvicorn drains, then re-raises SIGTERM on exit


def test_serve_without_guard_fails_clearly():
    env = {k: v for k, v in os.environ.items() if not k.startswith("SINTERNAL_GUARD_")}
    r = subprocess.run([sys.executable, "-m", "sinternal_verl.cli", "serve", "--guard-kind", "qwen3guard"],
                       env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and "needs at least one URL" in r.stderr
