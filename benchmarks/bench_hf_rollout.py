"""Throughput of the ``hf`` CPU rollout: concurrent requests coalesced into padded ``generate``
calls vs the same server serving one request per call (``max_batch_size=1``), in one run.

    python benchmarks/bench_hf_rollout.py [--requests 32] [--max-tokens 32] [--hidden 64] [--layers 2]
        [--temperature 0]

Both configurations get the same prompts (verl's agent loop sends all prompts x n at once),
greedy unless ``--temperature`` (sampling: per-request seeded noise), ``ignore_eos`` so every request generates exactly ``--max-tokens`` tokens. The baseline
for the ratio is ``max_batch_size=1``. The model is the tiny random Qwen3 from
``sinternal_verl.cpu.tiny`` (sizes configurable).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import tempfile
import time
from pathlib import Path

from omegaconf import OmegaConf
from rich.console import Console
from rich.table import Table

from sinternal_verl.cpu.hf_rollout import HFRolloutServer
from sinternal_verl.cpu.tiny import build_tiny_model


def _server(model_dir: Path, max_batch_size: int, batch_wait_s: float, max_tokens: int) -> HFRolloutServer:
    rollout = OmegaConf.create(
        {"name": "hf", "prompt_length": 256, "response_length": max_tokens, "max_model_len": None,
         "engine_kwargs": {"hf": {"max_batch_size": max_batch_size, "batch_wait_s": batch_wait_s}}}
    )  # fmt: skip
    return HFRolloutServer(config=rollout, model_config=OmegaConf.create({"path": str(model_dir)}))


async def _serve_all(
    srv: HFRolloutServer, prompts: list[list[int]], max_tokens: int, temperature: float = 0.0
) -> float:
    params = {"temperature": temperature, "max_tokens": max_tokens, "ignore_eos": True, "logprobs": True}
    t0 = time.perf_counter()
    outs = await asyncio.gather(
        *[
            srv.generate(prompt_ids=p, sampling_params=dict(params), request_id=str(i))
            for i, p in enumerate(prompts)
        ]
    )
    elapsed = time.perf_counter() - t0
    assert all(len(o.token_ids) == max_tokens for o in outs)
    return elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=32)
    ap.add_argument("--max-tokens", type=int, default=32)
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--batch-wait-s", type=float, default=0.02)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--temperature", type=float, default=0.0, help="0: greedy; above: sampling")
    ap.add_argument(
        "--repeat", type=int, default=3, help="runs per config, interleaved; the median is reported"
    )
    args = ap.parse_args()

    console = Console()
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = build_tiny_model(Path(tmp) / "m", hidden=args.hidden, layers=args.layers)
        prompts = [
            [1] + [rng.randrange(3, 500) for _ in range(rng.randrange(8, 48))] for _ in range(args.requests)
        ]
        configs = (("one request per call (baseline)", 1), ("coalesced batches", args.requests))
        servers = {mbs: _server(model_dir, mbs, args.batch_wait_s, args.max_tokens) for _, mbs in configs}
        times: dict[int, list[float]] = {mbs: [] for _, mbs in configs}
        calls: dict[int, int] = {}
        for srv in servers.values():
            asyncio.run(_serve_all(srv, prompts[:2], args.max_tokens))  # warm-up
        for _ in range(args.repeat):  # interleaved, so load from other processes hits both alike
            for mbs, srv in servers.items():
                srv.stats.update(requests=0, generate_calls=0)
                times[mbs].append(asyncio.run(_serve_all(srv, prompts, args.max_tokens, args.temperature)))
                calls[mbs] = srv.stats["generate_calls"]
        rows = [(label, statistics.median(times[mbs]), calls[mbs]) for label, mbs in configs]
    base = rows[0][1]
    table = Table(title=f"hf rollout, {args.requests} concurrent requests x {args.max_tokens} tokens "
                        f"(hidden {args.hidden}, {args.layers} layers), median of {args.repeat}")  # fmt: skip
    for col in ("config", "median wall s", "generate calls", "tokens/s", "speed-up vs baseline"):
        table.add_column(col)
    for label, elapsed, calls in rows:
        tps = args.requests * args.max_tokens / elapsed
        table.add_row(label, f"{elapsed:.2f}", str(calls), f"{tps:.0f}", f"{base / elapsed:.2f}x")
    console.print(table)


if __name__ == "__main__":
    main()
