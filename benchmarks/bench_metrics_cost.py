"""What one reading of a guard's ``/metrics`` costs the server, against what a request costs it.

Why: with ``guard_limit_signal=server_counts`` (the default) the reward workers read each busy
guard URL's ``/metrics`` on a timer. vLLM answers with its whole Prometheus page (every
histogram of every route), rendered by the same API process that parses and answers the
requests, so a reading is not free: this prints how much it costs, and how that compares
with a short moderation request measured in the same run, to size ``limit_counts_every_s``.
The job reads each URL every ``limit_counts_every_s`` in all (50 ms: 20 readings a second),
whatever its number of workers.

By default it starts the vLLM CPU build serving the tiny guard the real-vLLM test tier trains
(no downloads; ``make vllm-venv``), warms it up, then times ``--n`` sequential readings and
``--n`` sequential chat requests (4 new tokens): wall time per call, and CPU time of the API
process per call (read from ``/proc``; the engine core is another process). ``--url URL``
measures a running server instead: wall time and page size only (its CPU is not ours to read).

``PYTHONPATH=$PWD python benchmarks/bench_metrics_cost.py`` (about 1 min on 2 cores).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from sinternal_verl.guards.server_counts import parse_server_counts
from sinternal_verl.testing.vllm_server import ENV_VLLM_PYTHON, VLLMServer, VLLMServerSpec

MODEL = "Qwen/Qwen3Guard-Gen-4B"


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of one process so far (``/proc/<pid>/stat``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def per_call(call: Callable[[], object], n: int, pid: int | None) -> tuple[float, float | None]:
    """Mean wall seconds per call and, with ``pid``, that process's mean CPU seconds per call."""
    cpu0 = cpu_seconds(pid) if pid else None
    t0 = time.perf_counter()
    for _ in range(n):
        call()
    wall = (time.perf_counter() - t0) / n
    return wall, ((cpu_seconds(pid) - cpu0) / n if pid and cpu0 is not None else None)


def measure(url: str, model: str, n: int, pid: int | None) -> None:
    body = {
        "model": model,
        "messages": [{"role": "user", "content": "How do I bake bread?"}],
        "max_tokens": 4,
    }
    with httpx.Client(timeout=60) as c:

        def chat():
            c.post(f"{url}/v1/chat/completions", json=body).raise_for_status()

        def reading():
            r = c.get(f"{url}/metrics")
            r.raise_for_status()
            return r.text

        for _ in range(20):  # warm-up: the routes' histograms exist, the page has its full size
            chat()
        page = reading()
        counts = parse_server_counts(page)
        rows = [("GET /metrics", per_call(reading, n, pid)), ("chat, 4 tokens", per_call(chat, n, pid))]
    print(f"{url}/metrics: {len(page)} bytes, {page.count(chr(10))} lines; running/waiting {counts}")
    print(f"{'call':>16} {'wall ms':>9} {'API process CPU ms':>19}")
    for name, (wall, cpu) in rows:
        print(f"{name:>16} {wall * 1e3:>9.2f} {'-' if cpu is None else f'{cpu * 1e3:.2f}':>19}")
    (_, (_, metrics_cpu)), (_, (_, chat_cpu)) = rows
    if metrics_cpu is not None and chat_cpu:
        print(
            f"a reading costs the API process {metrics_cpu / chat_cpu:.2f} x a request; 20 readings a second "
            f"(the default, per job) {20 * metrics_cpu:.0%} of a core, one per worker every 50 ms at 8 "
            f"workers {160 * metrics_cpu:.0%}"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--url", default="", help="a running server to measure instead (wall time only)")
    ap.add_argument("--model", default=MODEL, help="the served model name")
    ap.add_argument("-n", type=int, default=300, help="calls of each kind")
    ap.add_argument("--vllm-python", default=os.environ.get(ENV_VLLM_PYTHON, ".venv-vllm/bin/python"))
    a = ap.parse_args()
    if a.url:
        measure(a.url.rstrip("/"), a.model, a.n, None)
        return
    if not Path(a.vllm_python).exists():
        raise SystemExit(f"no vLLM python at {a.vllm_python!r}: run `make vllm-venv` or pass --vllm-python")
    from sinternal_verl.testing.tiny_guard import train_tiny_guard

    with tempfile.TemporaryDirectory() as tmp:
        print("training the tiny guard ...", flush=True)
        spec = VLLMServerSpec(
            python=a.vllm_python,
            model_dir=str(train_tiny_guard(Path(tmp) / "guard")),
            served_names=(a.model,),
        )
        with VLLMServer(spec, Path(tmp) / "vllm.log") as srv:
            print(f"vLLM (CPU build) up in {srv.startup_s:.0f}s at {srv.url}", flush=True)
            measure(srv.url, a.model, a.n, srv.proc.pid)
    print(f"load avg {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
