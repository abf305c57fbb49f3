"""Guard client throughput against a loopback guard with a known ceiling (separate process).

In one run, against one fake guard process (service time S, concurrency cap C):
  ceiling  = C / S requests/s (the best any client can do)
  ours     = OpenAIGuardClient.moderate over N distinct items (aiohttp transport, parse, stats),
             at default settings (adaptive per-URL limit), after a warm-up of N items
  transport= OpenAIHTTPClient.post_json alone (no guard layer, fixed bound C x 1.5), to show
             the guard layer's and the limiter's cost
  baseline = httpx.AsyncClient with that fixed bound (the usual async client)
Prints requests/s, ratios to the ceiling and to the baseline, and client CPU per request.
Target (issue 2): ours >= 0.9 x ceiling at C=128, S=0.1 s.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))

from _guard_proc import guard_process  # noqa: E402

MODEL = "Qwen/Qwen3Guard-Gen-4B"


def items(n: int, tag: str):
    from sinternal_verl.guards import ModerationItem

    return [
        ModerationItem(f"[{tag}] request {i}: how do I bake bread?", f"Answer {i}: mix, knead, bake.")
        for i in range(n)
    ]


async def run_ours(url: str, n: int, conc: int, tag: str) -> tuple[float, float]:
    from sinternal_verl.guards import GuardConfig, build_guard

    g = build_guard(GuardConfig(urls=(url,), cache_size=0))
    await g.moderate(items(n, tag + "warm"))
    todo = items(n, tag)
    c0, t0 = time.process_time(), time.perf_counter()
    verdicts = await g.moderate(todo)
    dt, cpu = time.perf_counter() - t0, time.process_time() - c0
    assert all(v.parse_ok for v in verdicts)
    await g.aclose()
    return n / dt, cpu / n


async def run_transport(url: str, n: int, conc: int, tag: str) -> tuple[float, float]:
    from sinternal_verl.guards import qwen3guard
    from sinternal_verl.guards.http import HTTPClientConfig, OpenAIHTTPClient

    client = OpenAIHTTPClient(
        HTTPClientConfig(urls=(url,), concurrency="fixed", max_concurrency_per_url=conc)
    )
    payloads = [qwen3guard.build_payload(it, MODEL, 128, False) for it in items(n + conc, tag)]
    await asyncio.gather(*[client.post_json("/v1/chat/completions", p) for p in payloads[:conc]])
    c0, t0 = time.process_time(), time.perf_counter()
    await asyncio.gather(*[client.post_json("/v1/chat/completions", p) for p in payloads[conc:]])
    dt, cpu = time.perf_counter() - t0, time.process_time() - c0
    await client.aclose()
    return n / dt, cpu / n


async def run_httpx(url: str, n: int, conc: int, tag: str) -> tuple[float, float]:
    import httpx

    from sinternal_verl.guards import qwen3guard

    sem = asyncio.Semaphore(conc)
    limits = httpx.Limits(max_connections=conc, max_keepalive_connections=conc)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as client:

        async def one(p):
            async with sem:
                r = await client.post("/v1/chat/completions", json=p)
                r.raise_for_status()
                return qwen3guard.parse(r.json()["choices"][0]["message"]["content"], True)

        payloads = [qwen3guard.build_payload(it, MODEL, 128, False) for it in items(n + conc, tag)]
        await asyncio.gather(*[one(p) for p in payloads[:conc]])
        c0, t0 = time.process_time(), time.perf_counter()
        await asyncio.gather(*[one(p) for p in payloads[conc:]])
        dt, cpu = time.perf_counter() - t0, time.process_time() - c0
    return n / dt, cpu / n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=4096, help="items per measured run")
    ap.add_argument("--service-time", type=float, default=0.1)
    ap.add_argument("--cap", type=int, default=128, help="guard concurrency cap")
    ap.add_argument(
        "--client-concurrency",
        type=int,
        default=None,
        help="fixed per-URL bound of the transport and httpx runs (default: 1.5 x cap)",
    )
    ap.add_argument("--repeats", type=int, default=2)
    a = ap.parse_args()
    conc = a.client_concurrency or int(1.5 * a.cap)
    ceiling = a.cap / a.service_time
    with guard_process(a.service_time, a.cap) as url:
        results: dict[str, list[tuple[float, float]]] = {"ours": [], "transport": [], "httpx": []}
        for r in range(a.repeats):
            results["ours"].append(asyncio.run(run_ours(url, a.n, conc, f"o{r}")))
            results["transport"].append(asyncio.run(run_transport(url, a.n, conc, f"t{r}")))
            # httpx is slow enough at this concurrency that a quarter of the items suffices
            results["httpx"].append(asyncio.run(run_httpx(url, max(2 * conc, a.n // 4), conc, f"h{r}")))
    best = {k: max(v) for k, v in results.items()}
    print(
        f"ceiling {ceiling:.0f} req/s (cap {a.cap} / {a.service_time}s), N={a.n}, ours adaptive, fixed bound {conc}, "
        f"best of {a.repeats}, load avg {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
    )
    for k, (rps, cpu) in best.items():
        print(
            f"  {k:9s} {rps:7.0f} req/s  {rps / ceiling:5.3f} x ceiling  client CPU {cpu * 1e6:5.0f} us/req"
        )
    print(
        f"  ours / httpx baseline = {best['ours'][0] / best['httpx'][0]:.2f}x;  "
        f"ours / ceiling = {best['ours'][0] / ceiling:.3f} (target >= 0.9)"
    )


if __name__ == "__main__":
    main()
