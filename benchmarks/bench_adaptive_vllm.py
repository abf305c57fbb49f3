"""Adaptive concurrency against a real vLLM guard (the CPU build), not the fake one.

Why: ``bench_adaptive_concurrency.py`` drives ``fake_openai``, whose service time does not
depend on how many requests it serves at once and whose cap is exact. A real continuous-
batching engine differs on both: each decode step gets longer with the batch, so latency
rises before the batch is full, and between a request finishing and the client's next one
arriving a slot idles unless something waits. So the limiter's latency model is checked here
against the real engine, with vLLM's own queue as the judge (``vllm:num_requests_waiting``
and ``vllm:num_requests_running`` from its ``/metrics``, sampled during the measured step).

One vLLM server (``--max-num-seqs C``) serves the tiny guard that the real-vLLM test tier
trains (``sinternal_verl.testing.tiny_guard``; seconds on CPU, no downloads), under the
default guard model's name. For each number of reward workers (separate processes, one
client each, the same runner as the fake-guard benchmark) and each mode, one measured step
of ``-n`` moderation requests after a warm-up step:

  adaptive   ``GuardConfig(urls=...)`` alone: the default settings
  fixed K    the same client with ``concurrency: fixed``, K requests in flight over all
             workers, for K in ``--fixed`` x C (default 1 and 4 x C): the hand-tuned knob
             and, at its best, the most this machine pushes through this server

Printed per row: requests/s, x the best fixed bound of the same run, the engine's mean
waiting queue and running batch, and the adaptive clients' final limits. Every client, the
engine and its API server share the machine's cores (on a 2-core box that is part of what is
measured); ratios within one run are what count. Needs the vLLM venv (``make vllm-venv``):
``SINTERNAL_VLLM_PYTHON`` or ``--vllm-python``.

``PYTHONPATH=$PWD python benchmarks/bench_adaptive_vllm.py`` (about 8 min on 2 cores: 40 s
start-up, then 3 interleaved runs of each mode). ``--url URL --max-num-seqs C [--model NAME]``
measures an existing guard deployment instead (the check a user with a GPU guard wants before
trusting the defaults); ``--set KEY=VALUE`` adds an adaptive row with other settings.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
from pathlib import Path

import httpx

sys.path.insert(0, os.path.dirname(__file__))

from bench_adaptive_concurrency import PERIOD, _overrides, run_case

from sinternal_verl.guards.server_counts import parse_server_counts
from sinternal_verl.testing.vllm_server import ENV_VLLM_PYTHON, VLLMServer, VLLMServerSpec

#: the engine's gauges read from its Prometheus ``/metrics``
GAUGES = ("vllm:num_requests_waiting", "vllm:num_requests_running")


def read_gauges(url: str) -> dict[str, float]:
    """The engine's gauges now, summed over engines and label sets, read by the parser the
    ``server_counts`` limit signal uses; NaN when the server has no such gauges (not a vLLM)."""
    r = httpx.get(f"{url}/metrics", timeout=5)
    counts = parse_server_counts(r.text) if r.status_code == 200 else None
    if counts is None:
        return dict.fromkeys(GAUGES, float("nan"))
    running, waiting = counts
    return {"vllm:num_requests_waiting": float(waiting), "vllm:num_requests_running": float(running)}


class GaugeSampler:
    """Samples the engine's gauges every ``period`` seconds in a thread from ``start()`` to
    ``stop()``: the mean over the samples is the time average (they are evenly spaced)."""

    def __init__(self, url: str, period: float):
        self.url, self.period = url, period
        self.samples: list[dict[str, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append(read_gauges(self.url))
            self._stop.wait(self.period)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop sampling; nothing to stop if it never started (the workers failed first)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def mean(self, name: str) -> float:
        return statistics.fmean(s[name] for s in self.samples) if self.samples else float("nan")


def measure(
    url: str, mode: str, workers: int, n: int, warm: int, fixed: int, period: float, overrides: dict
) -> dict:
    """One case: ``run_case`` (warm-up step, then the measured step for every worker at
    once) with the engine's gauges sampled every ``period`` seconds over the measured step
    only. The workers sample their own limiters at the fake-guard benchmark's ``PERIOD``
    (an in-process read, free), not at ``period`` (a ``/metrics`` render, which costs the
    engine's API server CPU)."""
    sampler = GaugeSampler(url, period)

    def during(_t0: float) -> None:  # runs in this process from the measured step's start
        sampler.start()

    try:
        case = run_case(
            mode, [url], workers, n, warm, fixed, PERIOD, during=during, overrides=overrides, fake_guard=False
        )
    finally:  # the sampler thread stops whatever happened to the workers
        sampler.stop()
    case["waiting"] = sampler.mean("vllm:num_requests_waiting")
    case["running"] = sampler.mean("vllm:num_requests_running")
    return case


def run_modes(url: str, cap: int, a, which: dict, variants: list) -> list:
    """Every mode for every worker count against ``url``, interleaved ``a.repeats`` times;
    one row per (workers, mode): the median run."""
    rows = []
    for w in a.workers:
        # (label, runner mode, fixed bound over all workers, guard settings)
        modes = [("adaptive", "adaptive", 0, {})]
        modes += [("adaptive " + " ".join(p), "adaptive", 0, o) for p, o in variants]
        modes += [(f"fixed {f}", "blast", f, {}) for f in (max(w, round(k * cap)) for k in a.fixed)]
        runs: dict[str, list] = {label: [] for label, *_ in modes}
        for _ in range(a.repeats):  # interleaved: the machine's load drifts
            for label, mode, fixed, overrides in modes:
                c = measure(url, mode, w, a.n, a.warmup, fixed, a.period, {**which, **overrides})
                runs[label].append(c)
                print(f"  {w} worker(s), {label}: {c['rate']:.0f}/s", flush=True)
        for label, cases in runs.items():
            c = sorted(cases, key=lambda c: c["rate"])[len(cases) // 2]  # the median run
            limits = ",".join(str(r["stats"].get(f"limit/{url}", "-")) for r in c["results"])
            rows.append((w, label, c, limits))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--max-num-seqs", type=int, default=16, help="the engine's batch cap C")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 4])
    ap.add_argument("-n", type=int, default=1200, help="requests per measured step (all workers)")
    ap.add_argument("--warmup", type=int, default=600, help="requests in the warm-up step (all workers)")
    ap.add_argument("--fixed", type=float, nargs="+", default=[1, 4], help="fixed bounds, x C")
    ap.add_argument(
        "--period",
        type=float,
        default=1.0,
        help="seconds between the engine's gauge samples (rendering /metrics costs the API server CPU: at 0.1 s it "
        "took most of the throughput on 2 cores)",
    )
    ap.add_argument("--repeats", type=int, default=3, help="interleaved runs per mode (the median is kept)")
    ap.add_argument(
        "--set",
        nargs="+",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="one more adaptive row with these guard settings, e.g. --set limit_tolerance=0.5 (repeatable)",
    )
    ap.add_argument(
        "--url",
        default="",
        help="an existing vLLM guard server to measure (your deployment) instead of starting the tiny one; "
        "give its --max-num-seqs too",
    )
    ap.add_argument("--model", default="", help="with --url: the served model name (default: the kind's)")
    ap.add_argument("--vllm-python", default=os.environ.get(ENV_VLLM_PYTHON, ".venv-vllm/bin/python"))
    ap.add_argument("--model-dir", default="", help="a trained tiny guard to reuse (default: train one)")
    a = ap.parse_args()
    cap = a.max_num_seqs
    variants = [(pairs, _overrides(pairs)) for pairs in a.set]
    which = {"model": a.model} if a.model else {}
    if a.url:
        what = f"{a.url} ({a.model or 'the default guard model'})"
        rows = run_modes(a.url.rstrip("/"), cap, a, which, variants)
    else:
        if not Path(a.vllm_python).exists():
            raise SystemExit(
                f"no vLLM python at {a.vllm_python!r}: run `make vllm-venv` or pass --vllm-python"
            )
        what = "vLLM (CPU build) serving the tiny guard"
        with tempfile.TemporaryDirectory() as tmp:
            model_dir = a.model_dir
            if not model_dir:
                from sinternal_verl.testing.tiny_guard import train_tiny_guard

                print("training the tiny guard ...", flush=True)
                model_dir = str(train_tiny_guard(Path(tmp) / "guard"))
            spec = VLLMServerSpec(
                python=a.vllm_python,
                model_dir=model_dir,
                served_names=("Qwen/Qwen3Guard-Gen-4B",),  # the default guard model: clients at defaults
                extra_args=("--max-num-seqs", str(cap)),
            )
            with VLLMServer(spec, Path(tmp) / "vllm.log") as srv:
                print(f"vLLM up in {srv.startup_s:.0f}s at {srv.url}, --max-num-seqs {cap}", flush=True)
                rows = run_modes(srv.url, cap, a, which, variants)
    print(
        f"\n{what}, --max-num-seqs {cap}; n = {a.n} per measured step after a warm-up of {a.warmup}; "
        f"medians of {a.repeats} interleaved runs; load avg {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
    )
    width = max(len(label) for _, label, _, _ in rows) + 2
    print(
        f"{'workers':>8}{'mode':>{width}}{'req/s':>8}{'x best fixed':>14}{'waiting':>9}{'/C':>6}{'running':>9}"
        f"{'final limits':>16}"
    )
    for w in a.workers:
        best = max(c["rate"] for ww, label, c, _ in rows if ww == w and label.startswith("fixed"))
        for ww, label, c, limits in rows:
            if ww != w:
                continue
            print(
                f"{w:>8}{label:>{width}}{c['rate']:>8.0f}{c['rate'] / best:>14.3f}{c['waiting']:>9.1f}"
                f"{c['waiting'] / cap:>6.2f}{c['running']:>9.1f}{'' if label.startswith('fixed') else limits:>16}"
            )


if __name__ == "__main__":
    main()
