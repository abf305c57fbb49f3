"""``sinternal-verl serve`` as a real process: flags, env, binding, bad flags."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
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
    env = dict(
        os.environ,
        SINTERNAL_GUARD_URLS=fake_guard.url,
        SINTERNAL_GUARD_KIND="qwen3guard",
        SINTERNAL_SERVER_API_KEY="k",
    )
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sinternal_verl.cli",
            "serve",
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--reward-kwargs",
            '{"harmful_safe_score": 2.0}',
        ],
        env=env,
        stderr=subprocess.PIPE,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        _wait(url, proc)
        item = {"prompt": "bomb?", "response": "Sorry, I can't.", "task": "safety", "prompt_type": "harmful"}
        assert httpx.post(f"{url}/v1/score", json={"items": [item]}).status_code == 401
        r = httpx.post(
            f"{url}/v1/score", json={"items": [item]}, headers={"Authorization": "Bearer k"}, timeout=30
        )
        assert (
            r.status_code == 200 and r.json()["results"][0]["score"] == 2.0
        )  # reward kwargs reach the reward
    finally:
        proc.terminate()
        assert proc.wait(30) in (0, -15)  # uvicorn drains, then re-raises SIGTERM on exit


def test_serve_without_guard_fails_clearly():
    env = {k: v for k, v in os.environ.items() if not k.startswith("SINTERNAL_GUARD_")}
    r = subprocess.run(
        [sys.executable, "-m", "sinternal_verl.cli", "serve", "--guard-kind", "qwen3guard"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode != 0 and "needs at least one URL" in r.stderr


def _serve(args: list[str], env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "sinternal_verl.cli", "serve", *args],
        env=env or dict(os.environ),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_misspelt_setting_fails_at_start_up_with_a_suggestion(tmp_path):
    r = _serve(["--guard-backend", "lexical", "--set", "max_concurent_requests=3"])
    assert r.returncode != 0 and "did you mean 'max_concurrent_requests'" in r.stderr, r.stderr
    cfg = tmp_path / "server.yaml"
    cfg.write_text("request_timout_s: 3\nreward_kwargs: {guard_kind: lexical}\n")
    r = _serve(["--config", str(cfg)])
    assert r.returncode != 0 and "did you mean 'request_timeout_s'" in r.stderr, r.stderr
    r = _serve(["--guard-backend", "lexical", "--max-items", "0"])
    assert r.returncode != 0 and "max_items" in r.stderr
    # reward settings are as strict as in verl's reward workers: the server never binds
    r = _serve(["--guard-backend", "lexical", "--reward-kwarg", "controversal=loose"])
    assert r.returncode != 0 and "did you mean 'controversial'" in r.stderr, r.stderr
    r = _serve(["--guard-backend", "lexical", "--reward-kwargs", '{"math_timeout_s": 2}'])
    assert r.returncode != 0 and "did you mean 'math_symbolic_timeout_s'" in r.stderr, r.stderr


def test_config_file_and_api_key_with_trailing_space(fake_guard, tmp_path):
    port = free_port()
    cfg = tmp_path / "server.yaml"
    cfg.write_text(
        f"port: {port}\nlog_level: warning\nreward_kwargs:\n  guard_urls: {fake_guard.url}\n  guard_kind: qwen3guard\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("SINTERNAL_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "sinternal_verl.cli", "serve", "--config", str(cfg), "--api-key", "k \n"],
        env=env,
        stderr=subprocess.PIPE,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        _wait(url, proc)
        item = {"prompt": "bomb?", "response": "Sorry, I can't.", "task": "safety", "prompt_type": "harmful"}
        r = httpx.post(
            f"{url}/v1/score", json={"items": [item]}, headers={"Authorization": "Bearer k"}, timeout=30
        )
        assert r.status_code == 200 and r.json()["results"][0]["score"] == 1.0
    finally:
        proc.terminate()
        proc.wait(30)


def test_open_requests_get_a_clean_503_past_the_shutdown_grace_period(fake_guard):
    """SIGTERM with one request in flight and two queued behind a hung guard: past the grace
    period each gets a JSON 503 (it got a bare 500 or no answer at all)."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SINTERNAL_")}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sinternal_verl.cli",
            "serve",
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--guard-url",
            fake_guard.url,
            "--guard-kind",
            "qwen3guard",
            "--max-concurrent-requests",
            "1",
            "--graceful-shutdown",
            "0.5",
            "--shutdown-reply-s",
            "20",
        ],
        env=env,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait(url, proc)
        fake_guard.fault("slow", delay_s=120.0)
        answers: list[httpx.Response | Exception] = []

        def call(i: int) -> None:
            item = {
                "prompt": f"bomb {i}?",
                "response": "Sorry, I can't.",
                "task": "safety",
                "prompt_type": "harmful",
            }
            try:
                answers.append(httpx.post(f"{url}/v1/score", json={"items": [item]}, timeout=90))
            except Exception as exc:  # noqa: BLE001 - recorded and asserted on below
                answers.append(exc)

        threads = [threading.Thread(target=call, args=(i,)) for i in range(3)]
        for t in threads:
            t.start()
        for _ in range(600):  # until one request is in flight and two are queued
            text = httpx.get(f"{url}/metrics", timeout=10).text
            if (
                "sinternal_server_requests_queued 2.0" in text
                and "sinternal_server_requests_in_flight 1.0" in text
            ):
                break
            time.sleep(0.05)
        else:
            raise AssertionError(text)
        proc.send_signal(signal.SIGTERM)
        for t in threads:
            t.join(90)
        assert len(answers) == 3
        for a in answers:
            assert isinstance(a, httpx.Response), a
            assert a.status_code == 503 and "shutting down" in a.json()["error"]["message"], a.text
            assert a.headers["retry-after"]
        assert proc.wait(60) in (0, -15)
    finally:
        if proc.poll() is None:
            proc.kill()
