"""Chaos and load: the reward server at 10x its concurrency limit in front of a flapping guard.

Three processes on loopback: the fake OpenAI-compatible guard (``sinternal_verl.testing.fake_openai``,
faults switched over its ``/_control`` route), the reward server (``sinternal-verl serve``) and
this load generator. While ``clients`` concurrent loops (10x the server's
``--max-concurrent-requests``) each send ``requests`` scoring requests, the guard flaps
through, in order: HTTP 500s, 429s with Retry-After, garbage verdicts, hangs (longer than
the guard client's timeout), then it is killed and restarted on the same port.

Every logical request is retried by its client (backoff, Retry-After honoured) until it is
answered 200 or its attempts run out. Printed: requests sent (HTTP attempts) / answered /
429 / 5xx / lost (never answered) / wrong scores (an answer that differs from the fake
guard's visible rule) / item errors (``error`` set: explicit, never a number), and the
recovery time after the guard restart (first answered request, and ``/ready``). Then every
status the clients saw is checked against the server's ``/metrics`` counters: every
failure must be counted. Targets: 0 lost, 0 wrong, every count matching.

Bounded in count (requests, faults per phase) and time (``--deadline``).
Usage: ``python benchmarks/bench_chaos.py [--clients-per-slot 10 --requests 5 ...]``.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import random
import re
import subprocess
import sys
import time

import httpx

from sinternal_verl.testing.server import free_port

HARMFUL = "How do I hack into a bank?"


class GuardProcess:
    """The fake guard as a separate process that can be killed and restarted on its port."""

    def __init__(self, service_time_s: float, max_concurrency: int):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.args = ["--service-time", str(service_time_s), "--max-concurrency", str(max_concurrency)]
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "sinternal_verl.testing.fake_openai",
                "--port",
                str(self.port),
                *self.args,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        _wait(self.url + "/v1/models", self.proc)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(10)

    async def fault(self, mode: str, count: int, delay_s: float = 0.0) -> None:
        async with httpx.AsyncClient() as c:
            (
                await c.post(f"{self.url}/_control", json={"mode": mode, "count": count, "delay_s": delay_s})
            ).raise_for_status()


def _wait(url: str, proc: subprocess.Popen, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process for {url} exited with {proc.returncode}")
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise TimeoutError(url)


def batch(client: int, req: int, k: int) -> list[dict]:
    items = []
    for j in range(k):
        uid = f"c{client}-r{req}-k{j}"
        unsafe = (client + req + j) % 2 == 0
        response = (
            f"[unsafe] steal their password {uid}" if unsafe else f"Sorry, I can't help with that. {uid}"
        )
        items.append(
            {
                "id": uid,
                "prompt": f"{HARMFUL} {uid}",
                "response": response,
                "task": "safety",
                "prompt_type": "harmful",
            }
        )
    return items


def expected(item: dict) -> float:
    return 0.0 if "[unsafe]" in item["response"] else 1.0


class Tally:
    def __init__(self) -> None:
        self.status: collections.Counter = collections.Counter()
        self.transport = 0
        self.answered = 0
        self.lost = 0
        self.logical = 0
        self.wrong = 0
        self.item_errors = 0
        self.answered_at: list[float] = []


async def client_loop(
    cid: int, a, url: str, tally: Tally, http: httpx.AsyncClient, marks: dict[str, float]
) -> None:
    """Requests until the flaps are over and ``tail`` more were sent after the guard restart
    (at least ``requests``, at most ``max_requests``)."""
    after_restart = 0
    for r in range(a.max_requests):
        if r >= a.requests and "restart" in marks and after_restart >= a.tail:
            break
        after_restart += "restart" in marks
        items = batch(cid, r, a.items)
        for attempt in range(a.attempts):
            try:
                resp = await http.post(f"{url}/v1/score", json={"items": items})
            except httpx.TransportError:
                tally.transport += 1
                await asyncio.sleep(random.uniform(0, a.backoff_max_s))
                continue
            tally.status[resp.status_code] += 1
            if resp.status_code == 200:
                tally.answered += 1
                tally.answered_at.append(time.monotonic())
                for item, res in zip(items, resp.json()["results"]):
                    if res["error"] is not None:
                        tally.item_errors += 1
                    elif res["id"] != item["id"] or res["score"] != expected(item):
                        tally.wrong += 1
                break
            retry_after = float(resp.headers.get("retry-after") or 0)
            wait = min(a.backoff_max_s, a.backoff_base_s * 2 ** min(attempt, 6))
            await asyncio.sleep(min(retry_after, a.backoff_max_s) + random.uniform(0, wait))
        else:
            tally.lost += 1
        tally.logical += 1


async def chaos(guard: GuardProcess, a, marks: dict[str, float]) -> None:
    """The flap schedule: each fault for ``faults`` guard requests, then kill and restart."""
    await asyncio.sleep(a.phase_s)
    for mode, delay in (("500", 0.0), ("429", 0.0), ("garbage", 0.0), ("slow", a.hang_s)):
        marks[mode] = time.monotonic()
        await guard.fault(mode, a.faults, delay)
        await asyncio.sleep(a.phase_s)
    marks["kill"] = time.monotonic()
    guard.kill()
    await asyncio.sleep(a.down_s)
    await asyncio.to_thread(guard.start)
    marks["restart"] = time.monotonic()


async def ready_after(url: str, since_key: str, marks: dict[str, float], bound: int = 1200) -> float | None:
    async with httpx.AsyncClient(timeout=5) as c:
        while since_key not in marks:
            await asyncio.sleep(0.05)
        for _ in range(bound):
            try:
                if (await c.get(f"{url}/ready")).status_code == 200:
                    return time.monotonic() - marks[since_key]
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.05)
    return None


def scrape(text: str, route: str = "/v1/score") -> dict[str, float]:
    out: dict[str, float] = {}
    for m in re.finditer(
        r'^sinternal_server_requests_total\{route="([^"]+)",status="(\d+)"\} (\S+)$', text, re.MULTILINE
    ):
        if m.group(1) == route:
            out[m.group(2)] = float(m.group(3))
    for name in ("rejected_total", "guard_unavailable_total", "deadline_exceeded_total", "exceptions_total"):
        m = re.search(rf"^sinternal_server_{name}(?:\{{[^}}]*\}})? (\S+)$", text, re.MULTILINE)
        out[name] = float(m.group(1)) if m else 0.0
    m = re.search(
        r'^sinternal_server_items_total\{outcome="error",route="/v1/score"\} (\S+)$', text, re.MULTILINE
    )
    out["item_errors"] = float(m.group(1)) if m else 0.0
    return out


async def main_async(a) -> int:
    guard = GuardProcess(a.service_time, a.guard_concurrency)
    guard.start()
    sport = free_port()
    url = f"http://127.0.0.1:{sport}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SINTERNAL_")}
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sinternal_verl.cli",
            "serve",
            "--port",
            str(sport),
            "--log-level",
            "error",
            "--guard-url",
            guard.url,
            "--guard-kind",
            "qwen3guard",
            "--max-concurrent-requests",
            str(a.concurrency),
            "--max-queued-requests",
            str(a.queue),
            "--request-timeout-s",
            str(a.request_timeout_s),
            "--retry-after-s",
            "1",
            "--guard-option",
            "cache_size=0",
            "--guard-option",
            f"timeout_s={a.guard_timeout_s}",
            "--guard-option",
            "max_retries=2",
            "--guard-option",
            "backoff_base_s=0.05",
            "--guard-option",
            "backoff_max_s=0.5",
        ],
        env=env,
    )
    try:
        _wait(url + "/health", server)
        tally, marks = Tally(), {}
        clients = a.clients_per_slot * a.concurrency
        t0 = time.monotonic()
        limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
        async with httpx.AsyncClient(timeout=a.client_timeout_s, limits=limits) as http:
            load = asyncio.gather(*(client_loop(c, a, url, tally, http, marks) for c in range(clients)))
            flaps = asyncio.ensure_future(chaos(guard, a, marks))
            ready = asyncio.ensure_future(ready_after(url, "restart", marks))
            await asyncio.wait_for(load, timeout=a.deadline)
            await asyncio.wait_for(flaps, timeout=a.deadline)
            ready_s = await asyncio.wait_for(ready, timeout=a.deadline)
        wall = time.monotonic() - t0
        metrics = scrape(httpx.get(f"{url}/metrics", timeout=10).text)
    finally:
        server.terminate()
        server.wait(60)
        if guard.proc and guard.proc.poll() is None:
            guard.kill()

    logical = tally.logical
    sent = sum(tally.status.values()) + tally.transport
    five = sum(v for k, v in tally.status.items() if 500 <= k < 600)
    after = [t for t in tally.answered_at if t >= marks.get("restart", float("inf"))]
    recovery = (min(after) - marks["restart"]) if after else None
    print(
        f"reward server chaos: {clients} clients ({a.clients_per_slot}x the {a.concurrency} slots), "
        f"{logical} requests x {a.items} items; guard flaps 500/429/garbage/hang x{a.faults}, "
        f"then down {a.down_s}s"
    )
    print(f"  logical requests       {logical}")
    print(f"  HTTP requests sent     {sent}")
    print(f"  answered (200)         {tally.answered}")
    print(f"  429                    {tally.status.get(429, 0)}")
    print(
        f"  5xx                    {five}  {dict(sorted((k, v) for k, v in tally.status.items() if k >= 500))}"
    )
    print(f"  transport errors       {tally.transport}")
    print(f"  lost                   {tally.lost}")
    print(f"  wrong scores           {tally.wrong}")
    print(f"  item errors (explicit) {tally.item_errors}")
    print(
        f"  recovery after restart first answer {recovery if recovery is None else f'{recovery:.2f}s'}, "
        f"/ready {ready_s if ready_s is None else f'{ready_s:.2f}s'}"
    )
    print(f"  wall time              {wall:.1f}s")

    checks = {str(code): n for code, n in tally.status.items()}
    mismatches = [
        f"status {code}: clients saw {n}, /metrics {metrics.get(code, 0):.0f}"
        for code, n in sorted(checks.items())
        if metrics.get(code, 0) != n
    ]
    mismatches += [
        f"status {code}: /metrics counted {v:.0f} the clients never saw"
        for code, v in metrics.items()
        if code.isdigit() and code not in checks and v
    ]
    if metrics["rejected_total"] != tally.status.get(429, 0):
        mismatches.append(
            f"429: clients saw {tally.status.get(429, 0)}, rejected_total {metrics['rejected_total']:.0f}"
        )
    if metrics["item_errors"] != tally.item_errors:
        mismatches.append(
            f"item errors: clients saw {tally.item_errors}, /metrics {metrics['item_errors']:.0f}"
        )
    print(
        f"  /metrics: 503 causes guard_unavailable={metrics['guard_unavailable_total']:.0f} "
        f"deadline={metrics['deadline_exceeded_total']:.0f}, exceptions={metrics['exceptions_total']:.0f}"
    )
    print(
        "  every failure counted in /metrics: "
        + ("yes" if not mismatches else "NO\n    " + "\n    ".join(mismatches))
    )
    ok = tally.lost == 0 and tally.wrong == 0 and not mismatches and tally.transport == 0
    print("targets (0 lost, 0 wrong, all counted): " + ("met" if ok else "MISSED"))
    return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--concurrency", type=int, default=4, help="server --max-concurrent-requests")
    p.add_argument(
        "--clients-per-slot", type=int, default=10, help="concurrent clients per server slot (10x)"
    )
    p.add_argument("--queue", type=int, default=8, help="server --max-queued-requests")
    p.add_argument("--requests", type=int, default=6, help="requests per client, at least")
    p.add_argument("--tail", type=int, default=3, help="requests per client after the guard restart")
    p.add_argument("--max-requests", type=int, default=200, help="requests per client, at most")
    p.add_argument("--items", type=int, default=4, help="items per request")
    p.add_argument("--service-time", type=float, default=0.02, help="fake guard seconds per request")
    p.add_argument("--guard-concurrency", type=int, default=8, help="fake guard requests served at once")
    p.add_argument("--guard-timeout-s", type=float, default=1.0, help="the server's guard client timeout")
    p.add_argument("--request-timeout-s", type=float, default=20.0, help="server request deadline")
    p.add_argument("--faults", type=int, default=20, help="guard requests hit by each fault")
    p.add_argument("--hang-s", type=float, default=3.0, help="how long a hung guard request stalls")
    p.add_argument("--phase-s", type=float, default=1.5, help="seconds between flaps")
    p.add_argument("--down-s", type=float, default=3.0, help="seconds the guard stays killed")
    p.add_argument("--attempts", type=int, default=60, help="HTTP attempts per logical request")
    p.add_argument("--backoff-base-s", type=float, default=0.05)
    p.add_argument("--backoff-max-s", type=float, default=1.0)
    p.add_argument("--client-timeout-s", type=float, default=60.0)
    p.add_argument("--deadline", type=float, default=600.0, help="bound on the whole run")
    return asyncio.run(main_async(p.parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
