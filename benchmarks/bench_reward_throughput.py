"""Reward throughput of the ``sinternal`` manager against a loopback guard with a known ceiling.

In one run, against one guard process (fixed service time, concurrency cap):
  ceiling  = cap / service_time (the best any client can do)
  ours     = verl's reward loop path: load_reward_manager -> SInternalRewardManager.run_single
             once per trajectory, all concurrently (what RewardLoopWorker does)
  baseline = verl's ``naive`` manager with a synchronous ``requests`` reward function
             (the common pattern: one blocking HTTP call per trajectory in verl's executor)
Prints trajectories/s and the ratios ours/ceiling and ours/baseline. ``ours`` runs at default
settings (adaptive per-URL concurrency; the limit it found is printed) after a warm-up batch,
as in training, where the manager's guard client lives across steps; ``--client-concurrency N``
measures the old hand-tuned fixed bound instead.
Targets (issues 2, 11): ours >= 0.9 x ceiling and >= 10 x baseline at cap 128, 100 ms, 1024
trajectories, at default settings.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import textwrap
import time

sys.path.insert(0, os.path.dirname(__file__))

from _guard_proc import guard_process  # noqa: E402


def make_rows(n: int, tag: str) -> list[dict]:
    return [
        {
            "data_source": "safety_bench",
            "prompt_type": "harmful" if i % 2 else "benign",
            "prompt": f"[{tag}] request number {i}: how do I bake bread?",
            "response": f"<think>step {i}</think>\n\nAnswer {i}: "
            + ("I can't help with that." if i % 3 == 0 else "mix, knead, bake."),
        }
        for i in range(n)
    ]


def run_manager(config, tokenizer, rows, close: bool = False) -> float:
    """Time ``run_single`` over all rows at once, as verl's RewardLoopWorker calls it. The
    one-row DataProto slices verl hands to ``run_single`` are cut before the clock starts:
    that is verl's work, the same for every manager."""
    import asyncio

    from verl.trainer.ppo.reward import load_reward_manager

    from sinternal_verl.demo import build_batch

    manager = load_reward_manager(config, tokenizer)
    batch = build_batch(rows, tokenizer)
    slices = [batch[i : i + 1] for i in range(len(batch))]

    async def score_all():
        return await asyncio.gather(*(manager.run_single(s) for s in slices))

    t0 = time.perf_counter()
    outs = manager.loop.run_until_complete(score_all())
    elapsed = time.perf_counter() - t0
    assert len(outs) == len(rows) and all("reward_score" in o for o in outs)
    limit = ""
    if hasattr(manager, "router"):  # ours: the guard client, shared per configuration
        limit = ",".join(
            f"{v:.0f}" for k, v in manager.router.guard.http.stats().items() if k.startswith("limit/")
        )
    if close:  # close pooled connections before the process exits
        manager.loop.run_until_complete(manager.router.guard.aclose())
    return elapsed, limit


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cap", type=int, default=128, help="guard concurrency cap")
    p.add_argument("--service-time", type=float, default=0.1, help="guard seconds per request")
    p.add_argument("-n", type=int, default=1024, help="distinct trajectories")
    p.add_argument("--max-in-flight", type=int, default=None, help="manager's max_trajectories_in_flight")
    p.add_argument(
        "--gc-threshold", type=int, default=None, help="manager's gc_threshold (0: Python's default)"
    )
    p.add_argument(
        "--client-concurrency",
        type=int,
        default=None,
        help="a fixed guard_max_concurrency_per_url (default: none, the adaptive limit)",
    )
    p.add_argument("--warmup", type=int, default=2048, help="trajectories in the warm-up batch")
    p.add_argument("--baseline-n", type=int, default=128, help="trajectories for the slow baseline")
    a = p.parse_args()

    import sinternal_verl.plugin  # noqa: F401
    from sinternal_verl.cpu.tiny import build_tokenizer
    from sinternal_verl.demo import reward_config

    tokenizer = build_tokenizer(extra_texts=[r["prompt"] + r["response"] for r in make_rows(64, "x")])
    ceiling = a.cap / a.service_time
    with guard_process(a.service_time, a.cap) as url:
        settings = {"guard_urls": url, "guard_cache_size": 0}
        if a.client_concurrency:
            settings["guard_max_concurrency_per_url"] = a.client_concurrency
        if a.max_in_flight is not None:
            settings["max_trajectories_in_flight"] = a.max_in_flight
        if a.gc_threshold is not None:
            settings["gc_threshold"] = a.gc_threshold
        ours_cfg = reward_config(settings)
        # warm-up: open the pooled connections, first-call imports
        run_manager(ours_cfg, tokenizer, make_rows(a.warmup, "warm-up"))
        ours_s, limit = run_manager(ours_cfg, tokenizer, make_rows(a.n, "ours"), close=True)
        ours = a.n / ours_s

        with tempfile.TemporaryDirectory() as tmp:
            fn = os.path.join(tmp, "requests_reward.py")
            with open(fn, "w") as f:
                f.write(
                    textwrap.dedent(f"""
                    import requests
                    def compute_score(data_source, solution_str, ground_truth, extra_info=None, **kw):
                        r = requests.post("{url}/v1/chat/completions", json={{"model": "Qwen/Qwen3Guard-Gen-4B",
                            "messages": [{{"role": "user", "content": extra_info.get("prompt", "")}},
                                         {{"role": "assistant", "content": solution_str}}],
                            "temperature": 0.0, "max_tokens": 128}}, timeout=60)
                        text = r.json()["choices"][0]["message"]["content"]
                        return {{"score": float("Safety: Safe" in text)}}
                """)
                )
            base_cfg = reward_config({})
            base_cfg.reward.reward_manager.name = "naive"
            base_cfg.reward.custom_reward_function = {"path": fn, "name": "compute_score"}
            base_s, _ = run_manager(base_cfg, tokenizer, make_rows(a.baseline_n, "baseline"))
            base = a.baseline_n / base_s

    print(
        f"guard: cap {a.cap} concurrent, {a.service_time * 1000:.0f} ms/request -> ceiling {ceiling:.0f} req/s"
    )
    mode = (
        f"fixed guard_max_concurrency_per_url={a.client_concurrency}"
        if a.client_concurrency
        else "default settings"
    )
    print(
        f"ours: {mode} (per-URL limit at the end: {limit}), {a.n} distinct trajectories in one verl batch "
        f"after a warm-up batch of {a.warmup}; load avg {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
    )
    print(f"{'path':<48}{'n':>6}{'seconds':>10}{'traj/s':>10}")
    print(f"{'sinternal manager (ours)':<48}{a.n:>6}{ours_s:>10.2f}{ours:>10.0f}")
    print(f"{'naive manager + sync requests fn (baseline)':<48}{a.baseline_n:>6}{base_s:>10.2f}{base:>10.0f}")
    print(f"ours / ceiling  = {ours / ceiling:.3f}   (target >= 0.9)")
    print(f"ours / baseline = {ours / base:.1f}x  (target >= 10x)")


if __name__ == "__main__":
    main()
