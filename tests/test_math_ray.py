"""The time limit holds inside a Ray actor (where signal.alarm-based limits do not), and
the actor's symbolic workers go away with it."""

from __future__ import annotations

import os
import time

import pytest

ray = pytest.importorskip("ray")

TOWER = "9^{9^{9^9}}+1"


@pytest.mark.slow
def test_math_reward_inside_a_ray_actor():
    pids: list[int] = []
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    try:

        @ray.remote(num_cpus=0)
        class Scorer:
            def score(self, response: str, gt: str, **cfg):
                from sinternal_verl.rewards.math import compute_math_score

                return compute_math_score(response, gt, **cfg)

            async def score_async(self, response: str, gt: str, **cfg):
                # verl's reward workers are async actors: scoring runs off their event loop
                from sinternal_verl.rewards.math import compute_math_score_async

                return await compute_math_score_async(response, gt, **cfg)

            def worker_pids(self):
                from sinternal_verl.rewards.math import symbolic

                return [w.pid for p in symbolic._POOLS.values() for w in p.workers if w.pid]

        actor = Scorer.remote()
        cfg = {"symbolic_timeout_s": 1.0, "symbolic_startup_timeout_s": 120.0, "symbolic_max_power_digits": 0}
        # A hang guard, not a timing check: each call may wait for a worker to start (sympy's
        # import, bounded by the startup timeout) and the first one for the actor and both
        # workers. On a loaded 2-core machine the first call had not answered after 120 s.
        hang = 600
        hung = ray.get(
            actor.score_async.remote(f"<think>t</think> \\boxed{{{TOWER}}}", "3", **cfg), timeout=hang
        )
        good = ray.get(
            actor.score.remote(
                "<think>t</think> \\boxed{\\frac{\\sqrt{2}}{2}}",
                "\\frac{1}{\\sqrt2}",
                **{**cfg, "symbolic_timeout_s": 30.0, "numeric_fast_path": False},
            ),
            timeout=hang,
        )  # the worker, not the in-process evaluator, must answer here
        assert hung["math_timeout"] == 1.0 and hung["acc"] == 0.0
        assert good["acc"] == 1.0 and good["math_symbolic"] == 1.0
        pids = ray.get(actor.worker_pids.remote())
        assert pids
    finally:
        ray.shutdown()
    # the actor is gone: its workers see stdin EOF and exit (no orphans left spinning)
    deadline = time.monotonic() + 60
    while (
        any(os.path.exists(f"/proc/{pid}") and _state(pid) != "Z" for pid in pids)
        and time.monotonic() < deadline
    ):
        time.sleep(0.2)
    assert not [pid for pid in pids if os.path.exists(f"/proc/{pid}") and _state(pid) != "Z"]


def _state(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0]
    except OSError:
        return "Z"
