"""Cost per decode step of the ``hf`` rollout's per-request seeded sampling at real vocabulary sizes.

    python benchmarks/bench_seeded_sampling.py [--batch 8 64] [--vocab 512 32000 151936] [--steps 50]

The ``hf`` rollout samples with :class:`~sinternal_verl.cpu.hf_rollout.SeededGumbel`: one torch
generator per request (a request's sample must not depend on what it was batched with), so each
decode step draws ``batch`` rows of ``vocab`` uniforms one row at a time, plus two logs. The
baseline, measured in the same run on the same logits, is what ``generate(do_sample=True)`` does
per step: a softmax and one ``torch.multinomial`` from the global generator. The tests' tiny
models have a vocabulary of 512; Qwen3's is 151936, so this is where the per-row loop would show.
Printed: milliseconds per step (median of ``--repeat`` interleaved runs) and the ratio.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from rich.console import Console
from rich.table import Table

from sinternal_verl.cpu.hf_rollout import SeededGumbel


def _seeded_step(proc: SeededGumbel, ids: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    return proc(ids, logits).argmax(dim=-1)


def _global_step(logits: torch.Tensor) -> torch.Tensor:
    return torch.multinomial(torch.softmax(logits, dim=-1), num_samples=1).squeeze(1)


def _time(fn, steps: int, *fn_args) -> float:
    t0 = time.perf_counter()
    for _ in range(steps):
        fn(*fn_args)
    return (time.perf_counter() - t0) / steps * 1e3


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, nargs="+", default=[8, 64])
    ap.add_argument("--vocab", type=int, nargs="+", default=[512, 32000, 151936])
    ap.add_argument("--steps", type=int, default=50, help="decode steps per timing")
    ap.add_argument("--repeat", type=int, default=3, help="interleaved timings per case; the median is kept")
    ap.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: torch's default)")
    args = ap.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)

    table = Table(
        title=f"one decode step's sampling, ms (median of {args.repeat} x {args.steps} steps, "
        f"{torch.get_num_threads()} torch threads)"
    )
    for col in ("batch", "vocab", "seeded Gumbel (per-row generators)", "softmax + multinomial", "ratio"):
        table.add_column(col, justify="right")
    for batch in args.batch:
        for vocab in args.vocab:
            logits = torch.randn(batch, vocab, generator=torch.Generator().manual_seed(0))
            ids = torch.zeros(batch, 1, dtype=torch.long)
            proc = SeededGumbel(list(range(batch)))
            seeded, plain = [], []
            for _ in range(args.repeat):  # interleaved, so other load hits both alike
                seeded.append(_time(_seeded_step, args.steps, proc, ids, logits))
                plain.append(_time(_global_step, args.steps, logits))
            s, p = statistics.median(seeded), statistics.median(plain)
            table.add_row(str(batch), str(vocab), f"{s:.3f}", f"{p:.3f}", f"{s / p:.2f}x")
    Console().print(table)


if __name__ == "__main__":
    main()
