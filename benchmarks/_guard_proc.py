"""Start the fake guard as a separate process (its own core and GIL), as a real guard would be."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time

import httpx

from sinternal_verl.testing.server import free_port


@contextlib.contextmanager
def guard_process(
    service_time_s: float,
    max_concurrency: int,
    model: str = "Qwen/Qwen3Guard-Gen-4B",
    service_jitter: float = 0.0,
    service_sigma: float = 0.0,
    service_growth: float = 0.0,
):
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sinternal_verl.testing.fake_openai",
            "--port",
            str(port),
            "--model",
            model,
            "--service-time",
            str(service_time_s),
            "--max-concurrency",
            str(max_concurrency),
            "--service-jitter",
            str(service_jitter),
            "--service-sigma",
            str(service_sigma),
            "--service-growth",
            str(service_growth),
        ],
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{url}/v1/models", timeout=1).raise_for_status()
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("fake guard did not start") from None
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(10)
