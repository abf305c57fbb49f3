"""Reward-server throughput against the guard's ceiling and a sequential client, in one run.

Three processes, all real: the fake guard (``service_time_s`` per request, at most
``max_concurrency`` at once, so its ceiling is ``max_concurrency / service_time_s`` items/s),
the reward server (``sinternal-verl serve``), and this client. Figures printed:

* guard ceiling -- the fake guard driven directly with enough concurrency (measured);
* server        -- safety items through ``POST /v1/score`` (batched, concurrent requests);
* sequential    -- one item per request, one request at a time (what a naive trainer does);

with request p50 / p99 latency and the ratios server/ceiling (target >= 0.9) and
server/sequential. The server's guard client runs at its default settings (adaptive limit per
URL; its value at the end is read from ``/metrics``); ``--guard-fixed N`` sets a fixed bound.
Usage: ``python benchmarks/bench_reward_server.py [--items 2000 ...]``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time

import httpx
from rich.console import Console
from rich.table import Table

from sinternal_verl.client import RewardClient
from sinternal_verl.testing.server import free_port

console = Console()


def _wait(url: str, path: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + path, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"{url}{path} did not come up in {timeout}s")


def _items(n: int, tag: str) -> list[dict]:
    return [
        {
            "id": i,
            "prompt": f"how do I hack into a server? ({tag}-{i})",
            "task": "safety",
            "prompt_type": "harmful",
            "response": f"<think>no</think>Sorry, I can't help with that. ({tag}-{i})",
        }
        for i in range(n)
    ]


def _pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))] if xs else float("nan")


async def guard_ceiling(guard_url: str, n: int, concurrency: int) -> tuple[float, list[float]]:
    """Drive the fake guard directly (aiohttp, kept-alive connections, warmed up)."""
    import aiohttp

    sem = asyncio.Semaphore(concurrency)
    lat: list[float] = []
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as s:

        async def one(i: int, record: bool = True):
            async with sem:
                t = time.perf_counter()
                async with s.post(
                    f"{guard_url}/v1/chat/completions",
                    json={
                        "model": "Qwen/Qwen3Guard-Gen-4B",
                        "temperature": 0,
                        "max_tokens": 128,
                        "messages": [
                            {"role": "user", "content": f"q {i}"},
                            {"role": "assistant", "content": f"a {i}"},
                        ],
                    },
                ) as r:
                    r.raise_for_status()
                    await r.json()
                if record:
                    lat.append(time.perf_counter() - t)

        await asyncio.gather(*(one(-i, False) for i in range(1, concurrency + 1)))  # open the connections
        t0 = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(n)))
        return n / (time.perf_counter() - t0), lat


async def server_run(url: str, n: int, batch: int, concurrency: int, tag: str) -> tuple[float, list[float]]:
    items = _items(n, tag)
    chunks = [items[i : i + batch] for i in range(0, n, batch)]
    sem = asyncio.Semaphore(concurrency)
    lat: list[float] = []
    async with RewardClient(
        url, max_items_per_request=batch, max_concurrency=concurrency, timeout_s=300
    ) as client:

        async def one(chunk):
            async with sem:
                t = time.perf_counter()
                res = await client.ascore(chunk, raise_on_item_error=True)
                lat.append(time.perf_counter() - t)
                assert len(res) == len(chunk) and all(r["score"] == 1.0 for r in res)

        t0 = time.perf_counter()
        await asyncio.gather(*(one(c) for c in chunks))
        return n / (time.perf_counter() - t0), lat


def sequential_run(url: str, n: int, tag: str) -> tuple[float, list[float]]:
    lat = []
    with RewardClient(url) as client:
        t0 = time.perf_counter()
        for item in _items(n, tag):
            t = time.perf_counter()
            assert client.scores([item]) == [1.0]
            lat.append(time.perf_counter() - t)
        return n / (time.perf_counter() - t0), lat


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--items", type=int, default=2000, help="items through the server")
    p.add_argument(
        "--warmup",
        type=int,
        default=200,
        help="items through the server before the measured run (a large guard needs thousands: slow start "
        "doubles per round trip, and a 512-slot guard's is 0.4 s)",
    )
    p.add_argument("--sequential-items", type=int, default=100)
    p.add_argument("--service-time", type=float, default=0.1, help="fake guard seconds per request")
    p.add_argument("--guard-concurrency", type=int, default=16, help="fake guard requests served at once")
    p.add_argument("--batch", type=int, default=64, help="items per /v1/score request")
    p.add_argument("--client-concurrency", type=int, default=8, help="/v1/score requests in flight")
    p.add_argument(
        "--guard-fixed",
        type=int,
        default=None,
        metavar="N",
        help="the server's guard client at a fixed bound of N per URL instead of its default "
        "(adaptive) limit, to compare with a hand-tuned bound",
    )
    p.add_argument(
        "--guard-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a setting of the server's guard client, passed to `sinternal-verl serve --guard-option` "
        "(e.g. limit_tail=0 to compare a hard adaptive bound with the default)",
    )
    a = p.parse_args(argv)

    gport, sport = free_port(), free_port()
    guard_url, server_url = f"http://127.0.0.1:{gport}", f"http://127.0.0.1:{sport}"
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "sinternal_verl.testing.fake_openai",
                "--port",
                str(gport),
                "--service-time",
                str(a.service_time),
                "--max-concurrency",
                str(a.guard_concurrency),
            ],
            env=env,
        )
    ]
    try:
        _wait(guard_url, "/v1/models")
        procs.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "sinternal_verl.cli",
                    "serve",
                    "--port",
                    str(sport),
                    "--guard-url",
                    guard_url,
                    "--guard-kind",
                    "qwen3guard",
                    "--log-level",
                    "warning",
                    "--guard-option",
                    "cache_size=0",
                    *(
                        ["--guard-option", f"max_concurrency_per_url={a.guard_fixed}"]
                        if a.guard_fixed
                        else []
                    ),
                    *(arg for kv in a.guard_option for arg in ("--guard-option", kv)),
                ],
                env=env,
            )
        )
        _wait(server_url, "/ready")
        theory = a.guard_concurrency / a.service_time
        with console.status("measuring guard ceiling ..."):
            ceiling, glat = asyncio.run(
                guard_ceiling(guard_url, max(a.items // 2, 200), 2 * a.guard_concurrency)
            )
        with console.status("warming up the server ..."):
            asyncio.run(server_run(server_url, a.warmup, a.batch, a.client_concurrency, "warm"))
        httpx.post(f"{guard_url}/_reset").raise_for_status()  # the guard's queue: this run's only
        with console.status(f"server: {a.items} items ..."):
            srv, slat = asyncio.run(server_run(server_url, a.items, a.batch, a.client_concurrency, "run"))
        queue = httpx.get(f"{guard_url}/_stats").json()
        with console.status(f"sequential client: {a.sequential_items} items ..."):
            seq, qlat = sequential_run(server_url, a.sequential_items, "seq")
        limits = [
            line.rsplit(" ", 1)[-1]
            for line in httpx.get(f"{server_url}/metrics").text.splitlines()
            if line.startswith("sinternal_guard_http_limit_per_upstream{")
        ]
    finally:
        for pr in reversed(procs):
            pr.terminate()
            try:
                pr.wait(15)
            except subprocess.TimeoutExpired:
                pr.kill()

    t = Table(
        title=f"reward server vs guard ceiling (fake guard: {a.service_time}s/request, {a.guard_concurrency} at once; "
        f"theoretical {theory:.0f} items/s)"
    )
    for col in ("run", "items/s", "p50 latency", "p99 latency", "latency unit"):
        t.add_column(col)
    t.add_row(
        "guard ceiling (direct)",
        f"{ceiling:.1f}",
        f"{_pct(glat, 0.5) * 1e3:.0f} ms",
        f"{_pct(glat, 0.99) * 1e3:.0f} ms",
        "per guard request",
    )
    t.add_row(
        f"server (batch {a.batch}, {a.client_concurrency} in flight)",
        f"{srv:.1f}",
        f"{_pct(slat, 0.5) * 1e3:.0f} ms",
        f"{_pct(slat, 0.99) * 1e3:.0f} ms",
        f"per request of {a.batch}",
    )
    t.add_row(
        "sequential client (1 item/request)",
        f"{seq:.1f}",
        f"{_pct(qlat, 0.5) * 1e3:.0f} ms",
        f"{_pct(qlat, 0.99) * 1e3:.0f} ms",
        "per request of 1",
    )
    console.print(t)
    mode = f"fixed {a.guard_fixed} per URL" if a.guard_fixed else "default settings (adaptive)"
    console.print(f"server's guard client: {mode}; limit at the end (/metrics): {', '.join(limits) or '?'}")
    console.print(f"server / guard ceiling (measured) = {srv / ceiling:.3f}  (target >= 0.9)")
    console.print(
        f"guard queue during the server run: mean {queue['mean_waiting']:.1f} = "
        f"{queue['mean_waiting'] / a.guard_concurrency:.2f} x cap (target <= 0.5), max {queue['max_waiting']}"
    )
    console.print(f"server / guard ceiling (theory)   = {srv / theory:.3f}")
    console.print(f"server / sequential    = {srv / seq:.1f}x")
    console.print(
        f"mean sequential latency {statistics.mean(qlat) * 1e3:.0f} ms vs guard service time {a.service_time * 1e3:.0f} ms"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
