"""Agreement with human labels and scoring time: our strict boxed math reward vs HF
math-verify (``parse`` + ``verify``, gold parsed too) vs verl's ``math_dapo`` and
``math_reward``, all in one run on ``sinternal_verl/assets/math_labelled.jsonl``.

    python benchmarks/bench_math_reward.py [--symbolic-timeout 5] [--repeat 1]

Each system scores one unrelated warm-up pair first (imports, our worker start-up; ours is
reported separately), then every labelled case once per repeat. Times are wall-clock per
call (perf_counter). The baseline for the ratios is math-verify, measured in the same run.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import statistics
import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Callable

from rich.console import Console
from rich.progress import track
from rich.table import Table


@dataclass
class Result:
    name: str
    times: list[float] = field(default_factory=list)
    hits: list[bool] = field(default_factory=list)
    patho_time: float = 0.0

    def row(self) -> list[str]:
        n = len(self.hits)
        t = sorted(self.times)
        return [self.name, f"{sum(self.hits)}/{n} ({100 * sum(self.hits) / n:.1f}%)", f"{sum(t):.3f}",
                f"{sum(t) - self.patho_time:.3f}", f"{1e3 * statistics.mean(t):.3f}",
                f"{1e3 * statistics.median(t):.3f}", f"{1e3 * t[int(0.99 * (len(t) - 1))]:.1f}",
                f"{1e3 * t[-1]:.1f}"]


def load(path: Path | None) -> list[dict]:
    text = path.read_text() if path else resources.files("sinternal_verl.assets").joinpath(
        "math_labelled.jsonl").read_text()
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def systems(timeout: float) -> dict[str, Callable[[str, str], bool]]:
    from math_verify import parse, verify
    from verl.utils.reward_score import math_dapo, math_reward

    from sinternal_verl.rewards.math import compute_math_score

    def ours(resp: str, gt: str) -> bool:
        return compute_math_score(resp, gt, symbolic_timeout_s=timeout)["acc"] == 1.0

    def hf_math_verify(resp: str, gt: str) -> bool:
        gold = parse("\\boxed{" + gt + "}", parsing_timeout=int(timeout))  # verl's convention
        pred = parse(resp, parsing_timeout=int(timeout))
        return bool(gold and pred and verify(gold, pred, timeout_seconds=int(timeout)))

    def verl_math_dapo(resp: str, gt: str) -> bool:
        return bool(math_dapo.compute_score(resp, gt)["acc"])

    def verl_math_reward(resp: str, gt: str) -> bool:
        with contextlib.redirect_stdout(io.StringIO()):  # it prints every exception
            return math_reward.compute_score(resp, gt) == 1.0

    return {"ours": ours, "math-verify": hf_math_verify, "verl math_dapo": verl_math_dapo,
            "verl math_reward": verl_math_reward}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--labelled", type=Path, default=None, help="jsonl with response/ground_truth/label")
    ap.add_argument("--symbolic-timeout", type=float, default=5.0,
                    help="seconds per symbolic comparison, ours and math-verify alike (its default is 5)")
    ap.add_argument("--repeat", type=int, default=1, help="score the set this many times per system")
    args = ap.parse_args(argv)
    console = Console(width=None if Console().is_terminal else 130)
    rows = load(args.labelled)
    patho = {i for i, r in enumerate(rows) if "pathological" in r["note"]}
    fns = systems(args.symbolic_timeout)

    from sinternal_verl.rewards.math import get_pool, shutdown_pools
    from sinternal_verl.rewards.math.config import MathRewardConfig

    cfg = MathRewardConfig()
    t0 = time.perf_counter()
    get_pool(cfg.symbolic_workers, cfg.symbolic_max_memory_mb, cfg.symbolic_startup_timeout_s,
             cfg.symbolic_cache_size, cfg.symbolic_warmup).warmup()
    startup = time.perf_counter() - t0

    results: dict[str, Result] = {}
    misses: dict[str, list[str]] = {}
    try:
        for name, fn in fns.items():
            fn("<think>warm up</think> \\boxed{\\frac{3}{\\sqrt{3}}}", "\\sqrt{3}")
            res = results[name] = Result(name)
            misses[name] = []
            for _ in range(args.repeat):
                for i, r in enumerate(track(rows, description=f"{name:>16}", console=console, transient=True)):
                    t = time.perf_counter()
                    ok = fn(r["response"], r["ground_truth"])
                    dt = time.perf_counter() - t
                    res.times.append(dt)
                    res.hits.append(ok == bool(r["label"]))
                    if i in patho:
                        res.patho_time += dt
                    if ok != bool(r["label"]) and _ == 0:
                        misses[name].append(r["note"])
    finally:
        shutdown_pools()

    table = Table(title=f"math reward on {len(rows)} labelled cases x {args.repeat} "
                        f"(symbolic time limit {args.symbolic_timeout}s; {len(patho)} pathological)")
    for col in ("system", "agreement", "total s", "total s excl. patho", "mean ms", "p50 ms", "p99 ms",
                "max ms"):
        table.add_column(col, justify="right" if col != "system" else "left")
    for res in results.values():
        table.add_row(*res.row())
    console.print(table)
    console.print(f"ours: symbolic worker start-up (once per process, not in the totals): {startup:.2f}s")
    base = results["math-verify"]
    for name, res in results.items():
        if name == "math-verify":
            continue
        tot, tot_x = sum(res.times), sum(res.times) - res.patho_time
        console.print(f"math-verify / {name}: total time x{sum(base.times) / tot:.1f}, "
                      f"excl. pathological x{(sum(base.times) - base.patho_time) / tot_x:.1f}, "
                      f"agreement {sum(res.hits) - sum(base.hits):+d} cases")
    for name, notes in misses.items():
        console.print(f"[bold]{name}[/] disagrees with the label on {len(notes)}: "
                      + "; ".join(notes[:40]) + (" ..." if len(notes) > 40 else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
