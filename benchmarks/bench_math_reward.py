"""Math reward against outside ground truth: agreement, false positives and total time of our
strict boxed reward vs HF math-verify vs verl's graders (``math_dapo``, ``math_reward``,
``prime_math``), all in one run, on two labelled sets:

* ``math_equivalence.jsonl``: our broad suite (cases written by us across the equivalence
  classes of the issue and of math-verify's, Qwen2.5-Math's and verl's graders; both labels);
* ``math_outside_mathverify.jsonl``: math-verify's own published test pairs (tests/test_all.py,
  tests/test_yujianll.py), converted to boxed answers after ``</think>``, with their labels.

    python benchmarks/bench_math_reward.py [--symbolic-timeout 5] [--repeat 1] [--skip prime_math]

Every system first scores a warm-up set of *other* cases (``math_labelled.jsonl`` without its
pathological towers: imports, lazy sympy loading, our worker start-up); then each suite once
per repeat. Times are wall-clock per call (perf_counter); the baseline of every ratio is
math-verify in the same run. A false positive is a 1 where the label is 0 (a wrong answer
rewarded). The targets of issue 10 are printed with MET / NOT MET.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources

from rich.console import Console
from rich.table import Table

SUITES = {"ours": "math_equivalence.jsonl", "outside": "math_outside_mathverify.jsonl"}


@dataclass
class Result:
    times: list[float] = field(default_factory=list)
    agree: int = 0
    fp: int = 0
    fn: int = 0
    n: int = 0
    misses: list[str] = field(default_factory=list)


def load(name: str) -> list[dict]:
    text = resources.files("sinternal_verl.assets").joinpath(name).read_text()
    return [json.loads(line) for line in text.splitlines() if line.strip()]


#: per call of ours: did it reach the sympy worker (filled while "ours" runs)
SYMBOLIC: list[bool] = []


def systems(timeout: float, skip: set[str]) -> dict[str, Callable[[str, str], bool]]:
    from math_verify import parse, verify
    from verl.utils.reward_score import math_dapo, math_reward

    from sinternal_verl.rewards.math import compute_math_score

    def ours(resp: str, gt: str) -> bool:
        out = compute_math_score(resp, gt, symbolic_timeout_s=timeout)
        SYMBOLIC.append(out["math_symbolic"] == 1.0)
        return out["acc"] == 1.0

    def hf_math_verify(resp: str, gt: str) -> bool:
        gold = parse("\\boxed{" + gt + "}", parsing_timeout=int(timeout))  # verl's convention
        pred = parse(resp, parsing_timeout=int(timeout))
        return bool(gold and pred and verify(gold, pred, timeout_seconds=int(timeout)))

    def verl_math_dapo(resp: str, gt: str) -> bool:
        return bool(math_dapo.compute_score(resp, gt)["acc"])

    def verl_math_reward(resp: str, gt: str) -> bool:
        with contextlib.redirect_stdout(io.StringIO()):  # it prints every exception
            return math_reward.compute_score(resp, gt) == 1.0

    out = {
        "ours": ours,
        "math-verify": hf_math_verify,
        "verl math_dapo": verl_math_dapo,
        "verl math_reward": verl_math_reward,
    }
    if "prime_math" not in skip:
        try:
            from verl.utils.reward_score import prime_math

            def verl_prime_math(resp: str, gt: str) -> bool:
                with contextlib.redirect_stdout(io.StringIO()):
                    try:
                        return bool(prime_math.compute_score(resp, gt)[0])
                    except Exception:  # noqa: BLE001 - its failures are its "no"
                        return False

            out["verl prime_math"] = verl_prime_math
        except ImportError:
            pass
    return out


def run(fn: Callable[[str, str], bool], rows: list[dict], repeat: int) -> Result:
    res = Result()
    for k in range(repeat):
        for r in rows:
            t = time.perf_counter()
            ok = fn(r["response"], r["ground_truth"])
            res.times.append(time.perf_counter() - t)
            if k:
                continue
            res.n += 1
            label = bool(r["label"])
            res.agree += ok == label
            res.fp += ok and not label
            res.fn += label and not ok
            if ok != label:
                res.misses.append(f"{'FP' if ok else 'FN'} {r['note']}")
    return res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--symbolic-timeout",
        type=float,
        default=5.0,
        help="seconds per symbolic comparison, ours and math-verify alike (its default is 5)",
    )
    ap.add_argument("--repeat", type=int, default=1, help="score each suite this many times per system")
    ap.add_argument("--skip", nargs="*", default=[], help="systems to leave out (e.g. prime_math)")
    ap.add_argument("--show-misses", type=int, default=30, help="disagreements listed per system and suite")
    args = ap.parse_args(argv)
    console = Console(width=None if Console().is_terminal else 160)
    suites = {k: load(v) for k, v in SUITES.items()}
    warm = [r for r in load("math_labelled.jsonl") if "pathological" not in r["note"]]

    from sinternal_verl.rewards.math import MathRewardConfig, shutdown_pools, warm_up

    t0 = time.perf_counter()
    warm_up(MathRewardConfig(symbolic_timeout_s=args.symbolic_timeout), wait=True)
    startup = time.perf_counter() - t0

    fns = systems(args.symbolic_timeout, set(args.skip))
    results: dict[tuple[str, str], Result] = {}
    used_worker: dict[str, list[bool]] = {}
    try:
        for name, fn in fns.items():
            run(fn, warm, 1)
            for suite, rows in suites.items():
                SYMBOLIC.clear()
                results[(name, suite)] = run(fn, rows, args.repeat)
                if name == "ours":
                    used_worker[suite] = SYMBOLIC[: len(rows)]
    finally:
        shutdown_pools()

    for suite, rows in suites.items():
        pos = sum(r["label"] for r in rows)
        table = Table(
            title=f"{SUITES[suite]}: {len(rows)} cases ({pos} equal, {len(rows) - pos} not) "
            f"x {args.repeat}, symbolic limit {args.symbolic_timeout}s"
        )
        for col in (
            "system",
            "agreement",
            "false pos.",
            "false neg.",
            "total s",
            "mean ms",
            "max ms",
            "time vs math-verify",
        ):
            table.add_column(col, justify="left" if col == "system" else "right")
        base = sum(results[("math-verify", suite)].times)
        for name in fns:
            r = results[(name, suite)]
            tot = sum(r.times)
            table.add_row(
                name,
                f"{r.agree}/{r.n} ({100 * r.agree / r.n:.1f}%)",
                str(r.fp),
                str(r.fn),
                f"{tot:.3f}",
                f"{1e3 * tot / len(r.times):.2f}",
                f"{1e3 * max(r.times):.1f}",
                f"{base / tot:.1f}x less",
            )
        console.print(table)
    console.print(
        f"ours: symbolic workers started and warmed before scoring (once per process, not in the "
        f"totals): {startup:.2f}s"
    )

    for suite, rows in suites.items():
        flags = used_worker[suite]
        idx = [i for i, f in enumerate(flags) if f]
        o, m = results[("ours", suite)], results[("math-verify", suite)]
        if idx:
            ours_ms = 1e3 * sum(o.times[i] for i in idx) / len(idx)
            mv_ms = 1e3 * sum(m.times[i] for i in idx) / len(idx)
            console.print(
                f"{suite}: {len(idx)} of {len(rows)} cases reached our sympy worker; per call on those: "
                f"ours {ours_ms:.1f} ms, math-verify {mv_ms:.1f} ms on the same cases"
            )
        else:
            console.print(f"{suite}: no case reached our sympy worker")

    ours, mv = results[("ours", "ours")], results[("math-verify", "ours")]
    ratio = sum(mv.times) / sum(ours.times)
    fps = sum(results[("ours", s)].fp for s in suites)
    targets = [
        (f"agreement on our suite >= math-verify's ({ours.agree} vs {mv.agree})", ours.agree >= mv.agree),
        (f"0 false positives, both suites (ours: {fps})", fps == 0),
        (f">= 10x less total time than math-verify on our suite ({ratio:.1f}x)", ratio >= 10),
    ]
    for text, ok in targets:
        console.print(f"target: {text}: " + ("[green]MET[/]" if ok else "[red]NOT MET[/]"))
    for suite in suites:
        for name in fns:
            r = results[(name, suite)]
            if r.misses:
                shown = r.misses[: args.show_misses]
                console.print(
                    f"[bold]{name}[/] on {suite}: {len(r.misses)} disagreements: "
                    + "; ".join(shown)
                    + (" ..." if len(r.misses) > len(shown) else "")
                )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
