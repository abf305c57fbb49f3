"""Verification, the symbolic worker's time limit and failure paths, and the score dict."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from sinternal_verl.rewards.math import (
    MathRewardConfig,
    SymbolicWorkerError,
    compute_math_score,
    compute_math_score_async,
    compute_score,
    verify,
)
from sinternal_verl.rewards.math.symbolic import SymbolicPool, SymbolicWorker, get_pool
from sinternal_verl.settings import ConfigError

TOWER = "9^{9^{9^9}}+1"  # not a pure power: the exact path cannot refuse it, sympy must be stopped
#: the tower check would refuse TOWER before sympy; these tests need it to reach sympy
NO_TOWER_CHECK = {"symbolic_max_power_digits": 0}
KEYS = {
    "score",
    "acc",
    "pred",
    "math_no_answer",
    "math_truncated",
    "math_timeout",
    "math_symbolic",
    "math_error",
}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a killed child that nobody reaped yet is a zombie: dead for our purposes
    with open(f"/proc/{pid}/stat") as f:
        return f.read().split(")")[-1].split()[0] != "Z"


def test_plain_numbers_never_reach_sympy():
    for p, g in [
        ("0.5", "\\frac{1}{2}"),
        ("1,000", "1000"),
        ("1.5e3", "1500"),
        ("-\\frac{2}{4}", "-0.5"),
        ("2\\frac{1}{2}", "2.5"),
        ("7", "8"),
        ("1e999999999", "1"),
    ]:
        v = verify(p, g)
        assert v.symbolic_calls == 0, (p, g)
    assert verify("7", "8").correct is False


@pytest.mark.parametrize("fast", [True, False], ids=["in-process", "worker"])
def test_symbolic_equivalence_and_difference(fast):
    """The in-process evaluator and the sympy worker give the same verdicts."""
    cfg = MathRewardConfig(numeric_fast_path=fast)
    assert verify("\\frac{\\sqrt{2}}{2}", "\\frac{1}{\\sqrt2}", cfg).correct
    v = verify("2\\pi/3", "\\frac{2\\pi}{3}", cfg)
    assert v.correct and (v.numeric_calls, v.symbolic_calls) == ((1, 0) if fast else (0, 1))
    assert not verify("\\frac{\\pi}{3}", "\\frac{2\\pi}{3}", cfg).correct
    assert verify("0.1+0.2", "0.3", cfg).correct  # decimals are exact rationals there
    assert verify("3+4i", "4i+3", cfg).correct
    # probed at points of both signs: not an identity
    assert not verify("\\sqrt{x^2}", "x", cfg).correct
    assert verify("\\frac{x^2-1}{x-1}", "x+1", cfg).correct
    assert verify("2x+4y-3=0", "y=-\\frac{1}{2}x+\\frac{3}{4}", cfg).correct
    assert not verify("-x>1", "x<1", cfg).correct
    m = "\\begin{pmatrix}1 & 2 \\\\ 3 & 4\\end{pmatrix} + \\begin{pmatrix}5 & 6 \\\\ 7 & 8\\end{pmatrix}"
    assert verify(m, "\\begin{pmatrix}6 & 8 \\\\ 10 & 12\\end{pmatrix}", cfg).correct
    assert not verify(m, "\\begin{pmatrix}6 & 8 \\\\ 10 & 13\\end{pmatrix}", cfg).correct


def test_outside_the_evaluators_subset_the_worker_decides():
    v = verify("\\ln e^2", "2")  # \\ln e^2: ln(e)^2 or ln(e^2)? the evaluator does not guess
    assert v.correct and v.symbolic_calls == 1 and v.numeric_calls == 0
    v = verify("1/2x", "\\frac{x}{2}")
    assert v.numeric_calls == 0


def test_symbolic_can_be_turned_off():
    cfg = MathRewardConfig(symbolic=False)
    v = verify("\\frac{\\sqrt{2}}{2}", "\\frac{1}{\\sqrt2}", cfg)
    assert not v.correct and v.symbolic_calls == 0


def test_words_and_choices_are_not_sent_to_sympy():
    assert verify("(B)", "B").correct and verify("B", "C").correct is False
    v = verify("\\text{yes}", "x+1")
    assert not v.correct and v.symbolic_calls == 0


def test_pathological_tower_times_out_and_worker_is_replaced():
    cfg = MathRewardConfig(symbolic_timeout_s=0.5, symbolic_cache_size=0)
    pool = get_pool(cfg.symbolic_workers, cfg.symbolic_max_memory_mb, cfg.symbolic_startup_timeout_s, 0, True)
    pool.warmup()
    before = {w.pid for w in pool.workers}
    out = compute_math_score(
        f"\\boxed{{{TOWER}}}", "3", symbolic_timeout_s=0.5, symbolic_cache_size=0, **NO_TOWER_CHECK
    )
    assert out["math_timeout"] == 1.0 and out["acc"] == 0.0 and out["score"] == 0.0
    assert sum(not _alive(pid) for pid in before) == 1  # the stuck one was killed, not left running
    # the pool recovers: a replacement starts in the background; comparisons keep working
    for _ in range(len(pool.workers) + 1):
        assert verify("\\sqrt{4}", "2", cfg).correct
    deadline = time.monotonic() + 120
    while pool._idle.qsize() < len(pool.workers) and time.monotonic() < deadline:
        time.sleep(0.05)
    after = {w.pid for w in pool.workers}
    assert len(after - before) == 1 and all(_alive(pid) for pid in after)


def test_timeout_in_worker_threads_and_asyncio():
    """signal.alarm does not work off the main thread; our limit must."""
    cfg = dict(symbolic_timeout_s=0.5, symbolic_cache_size=0, symbolic_workers=2, **NO_TOWER_CHECK)
    with ThreadPoolExecutor(4) as ex:
        futs = [ex.submit(compute_math_score, f"\\boxed{{{TOWER}}}", "3", **cfg) for _ in range(2)]
        futs += [
            ex.submit(
                compute_math_score,
                "\\boxed{\\frac{\\sqrt{2}}{2}}",
                "\\frac{1}{\\sqrt{2}}",
                **{**cfg, "symbolic_timeout_s": 10.0},
            )
            for _ in range(4)
        ]
        outs = [f.result(timeout=60) for f in futs]
    assert [o["math_timeout"] for o in outs[:2]] == [1.0, 1.0]
    assert all(o["acc"] == 1.0 and o["math_timeout"] == 0.0 for o in outs[2:])

    async def main():
        return await asyncio.gather(
            compute_math_score_async(f"\\boxed{{{TOWER}}}", "3", **cfg),
            compute_math_score_async(
                "\\boxed{2\\pi/3}", "\\frac{2\\pi}{3}", **{**cfg, "symbolic_timeout_s": 10.0}
            ),
        )

    a, b = asyncio.run(main())
    assert a["math_timeout"] == 1.0 and b["acc"] == 1.0, (sorted(a.items()), sorted(b.items()))


def test_total_budget_caps_many_comparisons():
    # a 3-tuple of towers: the per-call budget stops after the first timeout
    out = compute_math_score(
        f"\\boxed{{({TOWER}, {TOWER}, {TOWER})}}",
        "(1,2,3)",
        symbolic_timeout_s=0.4,
        symbolic_budget_s=0.4,
        symbolic_cache_size=0,
        **NO_TOWER_CHECK,
    )
    assert out["math_timeout"] == 1.0 and out["acc"] == 0.0


def test_worker_killed_mid_request_is_reported_as_error():
    w = SymbolicWorker(warmup=False)
    try:
        w.start()
        pid = w.pid
        threading.Timer(0.3, os.kill, (pid, signal.SIGKILL)).start()
        res = w.compare(TOWER, "3", timeout_s=30)
        assert res.error and res.error.startswith("worker died") and not res.equal and not res.timed_out
        assert w.proc is None
        assert w.compare("\\sqrt{9}", "3", timeout_s=30).equal  # restarts
        assert w.starts == 2
    finally:
        w.kill()


def test_worker_that_cannot_start_raises_a_clear_error():
    pool = SymbolicPool(workers=1, startup_timeout_s=0.001)
    with pytest.raises(SymbolicWorkerError, match="did not become ready"):
        pool.compare("\\sqrt{2}", "x", 1.0)
    pool.close()
    with pytest.raises(SymbolicWorkerError, match="closed"):
        pool.compare("\\sqrt{3}", "y", 1.0)


def test_cache_answers_repeats_without_the_worker():
    pool = SymbolicPool(workers=1, cache_size=8, warmup=False)
    try:
        assert pool.compare("\\sqrt{8}", "2\\sqrt{2}", 10).equal
        pool.workers[0].kill()
        assert pool.compare("2\\sqrt{2}", "\\sqrt{8}", 10).equal  # symmetric key, served from cache
        assert pool.workers[0].proc is None
    finally:
        pool.close()


def test_score_dict_shape_and_configurable_values():
    right = compute_math_score("<think>x</think> \\boxed{5}", "5", correct_score=2.0, incorrect_score=-1.0)
    wrong = compute_math_score("<think>x</think> \\boxed{6}", "5", correct_score=2.0, incorrect_score=-1.0)
    none = compute_math_score("<think>\\boxed{5}", "5", correct_score=2.0, incorrect_score=-1.0)
    for out in (right, wrong, none):
        assert set(out) == KEYS
        assert all(isinstance(v, float) for k, v in out.items() if k != "pred")
    assert (right["score"], right["acc"], right["pred"]) == (2.0, 1.0, "5")
    assert (wrong["score"], wrong["acc"]) == (-1.0, 0.0)
    assert (none["score"], none["math_no_answer"], none["math_truncated"], none["pred"]) == (
        -1.0,
        1.0,
        1.0,
        "",
    )


def test_ground_truth_list_and_verl_signature():
    assert compute_math_score("\\boxed{6}", ["5", "6"])["acc"] == 1.0
    assert compute_score("math", "\\boxed{\\frac{1}{2}}", "$0.5$", extra_info={})["acc"] == 1.0


@pytest.mark.parametrize("gt", ["", "  ", "$$", None, []])
def test_empty_ground_truth_is_an_error_not_a_zero(gt):
    with pytest.raises(ValueError, match="empty ground truth"):
        compute_math_score("\\boxed{5}", gt)


def test_bad_options_are_rejected():
    # was TypeError before the settings mechanism; ConfigError names the nearest key
    with pytest.raises(ConfigError, match="did you mean 'correct_score'"):
        compute_math_score("\\boxed{5}", "5", corect_score=1.0)
    with pytest.raises(ValueError):
        MathRewardConfig.from_kwargs(symbolic_timeout_s=0)
    assert compute_math_score("\\boxed{5}", "5", config=MathRewardConfig(correct_score=3.0))["score"] == 3.0


def test_units_are_configurable():
    assert compute_math_score("\\boxed{5 widgets}", "5")["acc"] == 0.0
    assert compute_math_score("\\boxed{5 widgets}", "5", units=["widgets"])["acc"] == 1.0


def test_worker_outlives_the_thread_that_started_it():
    """Regression: PR_SET_PDEATHSIG killed workers when their starting executor thread exited."""
    pool = SymbolicPool(workers=1, warmup=False)
    try:
        t = threading.Thread(target=pool.warmup)
        t.start()
        t.join()
        pid = pool.workers[0].pid
        assert pool.compare("\\sqrt{25}", "5", 30).equal
        assert pool.workers[0].pid == pid and _alive(pid)
    finally:
        pool.close()


def test_cpu_backstop_ends_a_runaway_worker_nobody_kills():
    """If the parent dies mid-request nobody kills the worker: the kernel CPU limit does."""
    w = SymbolicWorker(warmup=False)
    try:
        w.start()
        proc = w.proc
        proc.stdin.write((json.dumps({"id": 1, "a": TOWER, "b": "3", "cpu_s": 1}) + "\n").encode())
        assert proc.wait(timeout=60) == -signal.SIGXCPU
    finally:
        w.kill()


def test_huge_integer_power_is_refused_without_sympy():
    v = verify("9^{9^{9^9}}", "3")
    assert not v.correct and v.symbolic_calls == 0 and not v.timed_out
    assert verify("2^{10}", "1024").symbolic_calls == 0


def test_embedded_power_towers_never_reach_sympy():
    v = verify(TOWER, "3")
    assert not v.correct and v.symbolic_calls == 0 and not v.timed_out
    assert verify("2^{10}+x", "x+1024").correct  # small powers still go to sympy
    assert verify("10^{3}+1", "1001").correct
