"""Adaptive concurrency at default settings: guard throughput over guard caps and reward workers.

One run. For each guard cap C (32, 128, 512) the fake guard runs in its own process with a
service time S = C / ceiling, so its ceiling stays ``--ceiling`` requests/s whatever C is.
For 1 and 4 reward workers (separate processes, one client each, no coordination):

  adaptive = ``OpenAIGuardClient`` built from ``GuardConfig(urls=...)`` alone (default
             settings: adaptive per-URL limit), after a warm-up (the client lives across
             training steps; the warm-up's own rate is printed as ``cold``). The warm-up
             starts for every worker at once, as verl hands each reward worker its chunk of
             a step at the same moment; ``--staggered`` starts each as soon as its process
             is up instead (clients joining a busy guard one by one); ``--warm-steps K``
             measures the step after K warm-up steps (the limits of a long run)
  blast    = the same guard client without the limiter (``concurrency: fixed``), 2 x C
             requests in flight over all workers: the guard always saturated, i.e. what this
             machine can push through this guard, measured in the same run

Each case runs ``--repeats`` interleaved blast/adaptive pairs and keeps the medians (the
machine's load drifts between runs). Printed per case: throughput / ceiling, adaptive / blast,
the guard's wait queue (requests waiting beyond its cap: time average and peak), when the
first and the last worker finished their equal shares, and each limiter's trajectory
(``--trace S``: also a grid every S seconds of each worker's limit, requests in flight, window
latency and drains, the view a diagnosis needs). Then one
more case: two replicas of cap 64 (each 640/s) and 4 workers; halfway through, replica B
becomes 2x slower (its ceiling halves): throughput per half against the ideal, the share B
gets, and the per-URL limits over time.

Targets (issue 11): adaptive >= 0.9 x ceiling (or within 5% of the blast where the blast is
lower), guard wait queue on average <= C / 2. Figures are noisy on a shared 2-core machine;
ratios to baselines measured in the same run are what count.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import multiprocessing as mp
import os
import sys
import time

import httpx

sys.path.insert(0, os.path.dirname(__file__))

from _guard_proc import guard_process


def _items(n: int, tag: str):
    from sinternal_verl.guards import ModerationItem

    return [
        ModerationItem(f"[{tag}] request {i}: how do I bake bread?", f"Answer {i}: mix, knead, bake.")
        for i in range(n)
    ]


async def _sampler(http, t0: float, out: list, period: float) -> None:
    while True:
        s = http.stats()
        out.append(
            (
                time.monotonic() - t0,
                {
                    k: v
                    for k, v in s.items()
                    if k.startswith(("limit/", "requests/", "in_flight/", "latency_s/", "drains/"))
                },
                s["successes"],
            )
        )
        await asyncio.sleep(period)


async def _worker_main(
    mode: str,
    urls: list[str],
    n: int,
    warm: int,
    tag: str,
    fixed: int,
    barrier,
    go,
    period: float,
    overrides: dict,
    together: bool,
    warm_steps: int,
):
    from sinternal_verl.guards import GuardConfig, build_guard
    from sinternal_verl.guards.client import OpenAIGuardClient
    from sinternal_verl.guards.http import HTTPClientConfig, OpenAIHTTPClient

    trajectory: list = []
    t_start = time.monotonic()
    if mode == "adaptive":
        # default settings (adaptive limits), or the settings of --set for comparing variants
        guard = build_guard(GuardConfig(urls=tuple(urls), **overrides))
    else:  # the same guard client with a fixed bound that keeps the guard saturated
        http = OpenAIHTTPClient(
            HTTPClientConfig(urls=tuple(urls), concurrency="fixed", max_concurrency_per_url=fixed)
        )
        which = {k: v for k, v in overrides.items() if k in ("kind", "model")}  # the same guard
        guard = OpenAIGuardClient(GuardConfig(urls=tuple(urls), **which), http=http)
    http = guard.http

    async def run(items):
        verdicts = await guard.moderate(items)
        assert all(v.parse_ok for v in verdicts)

    sampler = asyncio.create_task(_sampler(http, t_start, trajectory, period))
    cold = 0.0
    steps = []  # (start, end) of each warm-up step; monotonic time is one clock for every process
    for step in range(warm_steps):
        if together or step:  # a step starts for every worker at once, as verl dispatches one
            await asyncio.to_thread(barrier.wait)
        c0 = time.monotonic()
        await run(_items(warm, f"{tag}-warm{step}"))
        steps.append((c0, time.monotonic()))
        cold = cold or warm / (steps[-1][1] - c0)
    await asyncio.to_thread(barrier.wait)
    await asyncio.to_thread(go.wait)
    t0 = time.monotonic()
    await run(_items(n, tag))
    t1 = time.monotonic()
    sampler.cancel()
    await http.aclose()
    return {
        "t0": t0,
        "t1": t1,
        "start": t_start,
        "cold": cold,
        "steps": steps,
        "trajectory": trajectory,
        "stats": http.stats(),
    }


def _worker(args, queue) -> None:
    queue.put(asyncio.run(_worker_main(*args)))


def run_case(
    mode: str,
    urls: list[str],
    workers: int,
    n: int,
    warm: int,
    fixed: int,
    period: float,
    during=None,
    overrides: dict | None = None,
    together: bool = True,
    warm_steps: int = 1,
    fake_guard: bool = True,
) -> dict:
    """Start ``workers`` processes, warm them up, reset the guards' stats, release them
    together; ``during(t0)`` runs in this process while they work (e.g. slow a replica).
    ``together``: the warm-up starts for all workers at once too (verl hands every reward
    worker its chunk of a step at the same moment); otherwise each warms up as soon as its
    process is up, a second or so apart, like clients that join a busy guard one by one.
    ``warm_steps``: warm-up steps before the measured one (each after all workers finished
    the last, as verl's steps are), so the measured step sees the limits a long run has.
    ``fake_guard``: the guards are ``fake_openai`` processes (their stats are reset before the
    measured step and read after it); a real server has neither endpoint."""
    ctx = mp.get_context("spawn")
    barrier, go, queue = ctx.Barrier(workers + 1), ctx.Event(), ctx.Queue()
    procs = [
        ctx.Process(
            target=_worker,
            args=(
                (
                    mode,
                    urls,
                    n // workers,
                    warm // workers,
                    f"{mode}{k}-{time.time()}",
                    max(1, fixed // workers),
                    barrier,
                    go,
                    period,
                    # each worker is told how many share the guard, as verl's reward manager
                    # tells its workers (reward.num_workers -> guard_limit_counts_clients)
                    {"limit_counts_clients": workers, **(overrides or {})},
                    together,
                    warm_steps,
                ),
                queue,
            ),
        )
        for k in range(workers)
    ]
    for p in procs:
        p.start()
    for step in range(warm_steps):
        if together or step:
            barrier.wait()
    barrier.wait()
    for u in urls if fake_guard else ():
        httpx.post(f"{u}/_reset").raise_for_status()
    t0 = time.monotonic()
    go.set()
    if during is not None:
        during(t0)
    results = [queue.get(timeout=600) for _ in procs]
    guard_stats = [httpx.get(f"{u}/_stats").json() for u in urls] if fake_guard else []
    for p in procs:
        p.join(30)
    start, end = min(r["t0"] for r in results), max(r["t1"] for r in results)
    # each warm-up step's rate over every worker, as the measured step's: a run's first steps
    # (slow start, then the limits it left) next to the one measured
    warm_rates = [
        (warm // workers)
        * workers
        / (max(r["steps"][k][1] for r in results) - min(r["steps"][k][0] for r in results))
        for k in range(warm_steps)
    ]
    return {
        "rate": (n // workers) * workers / (end - start),
        "warm_rates": warm_rates,
        "results": results,
        "guard": guard_stats,
        "cold": sum(r["cold"] for r in results),
        "t0": start,
        "t1": end,
    }


def _sample_at(result: dict, t: float) -> tuple:
    """A worker's trajectory sample (seconds since its start, stats, successes) nearest to
    ``t`` on the host's monotonic clock."""
    return min(result["trajectory"], key=lambda x: abs(result["start"] + x[0] - t))


def _trajectory(result: dict, url: str, points: int = 12) -> str:
    traj = [(t, s.get(f"limit/{url}")) for t, s, _ in result["trajectory"]]
    if not traj:
        return "-"
    step = max(1, len(traj) // points)
    return " ".join(f"{lim}" for _, lim in traj[::step]) + f" (every {step * PERIOD:.1f}s from cold start)"


def _trace(case: dict, url: str, step: float) -> list[str]:
    """A grid of the measured phase (from one second before it, i.e. the end of the warm-up):
    every ``step`` seconds, each worker's limit, requests in flight and last window latency
    (``D``: it began a drain in that interval), and the answers per second over all workers.
    What the diagnosis of a row reads: who started the step with how much, who cut, who
    finished last and how it grew alone."""
    t0 = case["t0"]
    # each worker's sample times on the measured phase's clock, once (not per grid row)
    workers = [(r["trajectory"], [r["start"] + x[0] - t0 for x in r["trajectory"]]) for r in case["results"]]
    lines = []
    t = -1.0
    while t < case["t1"] - t0 + step / 2:
        cells, total = [], 0.0
        for tr, times in workers:
            i, j = bisect.bisect_left(times, t), bisect.bisect_left(times, t + step)
            if i >= len(tr) - 1:  # this worker is done (its sampler stops when it finishes)
                cells.append(f"{'-':>23}")
                continue
            j = min(j, len(tr) - 1)
            s0, s1 = tr[i][1], tr[j][1]
            total += (tr[j][2] - tr[i][2]) / step
            drained = s1.get(f"drains/{url}", 0) > s0.get(f"drains/{url}", 0)
            cells.append(
                f"L{s0[f'limit/{url}']:5d} f{s0.get(f'in_flight/{url}', 0):5d} "
                f"{s0.get(f'latency_s/{url}', 0.0) * 1e3:6.0f}ms{'D' if drained else ' '}"
            )
        lines.append(f"  {t:5.1f}s " + " ".join(cells) + f" | {total:6.0f}/s")
        t += step
    return lines


def _limits_over_time(result: dict, url: str, t0: float) -> tuple[list[float], list[int]]:
    """A worker's sampled limit for ``url``: seconds from ``t0`` (the host's monotonic
    clock) and the limits, for plotting."""
    times = [result["start"] + t - t0 for t, _, _ in result["trajectory"]]
    return times, [s.get(f"limit/{url}") for _, s, _ in result["trajectory"]]


def _plot_cases(rows: list, ceiling: float, out: str) -> list[str]:
    """``limits.png``: each case's median adaptive run, every worker's limit over time (t = 0:
    the measured step starts; before it, the warm-up), beside the cap split equally;
    ``throughput.png``: each case against the ceiling and the blast, with the 0.9 target."""
    # here, not at the top: the worker processes (spawned) import this module too
    from sinternal_verl.eval.plots import _plt  # matplotlib on the Agg backend

    plt = _plt()
    os.makedirs(out, exist_ok=True)
    ncols = max(len({w for _, _, w, *_ in rows}), 1)
    nrows = (len(rows) + ncols - 1) // ncols
    fig, axes = plt.subplots(nrows, ncols, figsize=(5.5 * ncols, 3.2 * nrows), squeeze=False)
    for ax, (cap, service, w, ours, _blast, url) in zip(axes.flat, rows, strict=False):
        for k, r in enumerate(ours["results"]):
            ax.plot(*_limits_over_time(r, url, ours["t0"]), lw=1, label=f"worker {k}")
        ax.axhline(cap / w, color="grey", ls="--", lw=1, label="cap / workers")
        ax.axvline(0.0, color="black", lw=0.8)
        ax.set_title(
            f"cap {cap} x {service * 1e3:.0f} ms, {w} worker(s): {ours['rate'] / ceiling:.2f} x ceiling"
        )
        ax.set_xlabel("s from the measured step's start")
        ax.set_ylabel("limit")
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(rows) :]:
        ax.axis("off")
    fig.tight_layout()
    paths = [os.path.join(out, "limits.png")]
    fig.savefig(paths[0], dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(max(6.0, 1.1 * len(rows)), 3.8))
    names = [f"{cap} x {w}" for cap, _, w, *_ in rows]
    x = range(len(rows))
    ax.bar([i - 0.2 for i in x], [o["rate"] / ceiling for _, _, _, o, _, _ in rows], 0.4, label="x ceiling")
    ax.bar([i + 0.2 for i in x], [o["rate"] / b["rate"] for _, _, _, o, b, _ in rows], 0.4, label="x blast")
    ax.axhline(0.9, color="red", ls="--", lw=1, label="target 0.9 x ceiling")
    ax.set_xticks(list(x), names)
    ax.set_xlabel("guard cap x reward workers")
    ax.set_ylim(0, 1.1)
    ax.legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    paths.append(os.path.join(out, "throughput.png"))
    fig.savefig(paths[1], dpi=110)
    plt.close(fig)
    return paths


def _plot_slowing(case: dict, urls: dict, t_slow: float, out: str) -> str:
    """``slowing.png``: every worker's limit per replica over time, the slowdown marked."""
    from sinternal_verl.eval.plots import _plt

    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 3.8))
    for k, r in enumerate(case["results"]):
        for (name, u), style in zip(urls.items(), ("-", ":"), strict=True):
            ax.plot(
                *_limits_over_time(r, u, case["t0"]),
                style,
                lw=1,
                color=f"C{k}",
                label=f"worker {k}, {name}",
            )
    ax.axvline(t_slow - case["t0"], color="black", ls="--", lw=1, label="B 2x slower")
    ax.set_xlabel("s from the measured step's start")
    ax.set_ylabel("limit")
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    path = os.path.join(out, "slowing.png")
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


PERIOD = 0.1


def _overrides(pairs: list[str]) -> dict:
    """``["limit_noise_z=0", ...]`` -> settings, checked now by ``GuardConfig`` (a typo fails
    here, not in four worker processes)."""
    from sinternal_verl.guards import GuardConfig

    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise SystemExit(f"--set takes KEY=VALUE, got {pair!r}")
        out[key.strip()] = value.strip()
    cfg = GuardConfig(urls=("http://127.0.0.1:1",), **out)
    return {k: getattr(cfg, k) for k in out}


def main() -> None:
    global PERIOD
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--caps", type=int, nargs="+", default=[32, 128, 512])
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 4])
    ap.add_argument(
        "--ceiling", type=float, default=1280.0, help="guard requests/s (service time = cap / ceiling)"
    )
    ap.add_argument("-n", type=int, default=4096, help="requests per measured run (all workers)")
    ap.add_argument("--warmup", type=int, default=4096, help="requests per warm-up (all workers)")
    ap.add_argument(
        "--warm-steps",
        type=int,
        default=1,
        help="warm-up steps of --warmup requests before the measured one (the adaptive runs; each step "
        "starts for every worker at once): 3 shows the limits of a long run instead of a fresh one",
    )
    ap.add_argument(
        "--slow-n", type=int, default=8192, help="requests in the slowing-replica case (0: skip it)"
    )
    ap.add_argument(
        "--service-jitter",
        type=float,
        default=0.0,
        help="each guard request's service time uniform in S x [1 - j, 1 + j] (mean S); 0: every "
        "request takes S and the guard's batches run in lockstep",
    )
    ap.add_argument(
        "--service-sigma",
        type=float,
        default=0.0,
        help="each guard request's service time lognormal, S x exp(s Z - s^2 / 2) (mean S): a heavy tail, "
        "like prompts whose lengths span orders of magnitude",
    )
    ap.add_argument(
        "--service-growth",
        type=float,
        default=0.0,
        help="each guard request's service time x (1 + g x busy slots / cap) at its start: an engine whose "
        "step gets longer with its batch (latency rises before anything waits; the full-batch ceiling "
        "falls to about ceiling / (1 + g), so read x blast)",
    )
    ap.add_argument(
        "--staggered",
        action="store_true",
        help="each worker starts its warm-up as soon as its process is up (a second or so apart: "
        "clients joining a busy guard one by one) instead of all at once as verl dispatches a step",
    )
    ap.add_argument(
        "--trace",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="also print, for each case's median adaptive run, every SECONDS of its measured phase: "
        "each worker's limit (L), requests in flight (f), window latency and D where it began a drain, "
        "and answers/s in all",
    )
    ap.add_argument("--period", type=float, default=PERIOD, help="seconds between limiter samples")
    ap.add_argument(
        "--plot",
        metavar="DIR",
        default="",
        help="also write limits.png (every worker's limit over time, per case), throughput.png and slowing.png there",
    )
    ap.add_argument(
        "--repeats", type=int, default=2, help="interleaved blast/adaptive pairs per case (medians kept)"
    )
    ap.add_argument(
        "--set",
        nargs="+",
        default=[],
        metavar="KEY=VALUE",
        help="guard settings for the adaptive clients instead of the defaults, e.g. limit_noise_z=0 "
        "limit_tolerance=0.05 (to compare limiter variants in one run's conditions)",
    )
    a = ap.parse_args()
    PERIOD = a.period
    together = not a.staggered
    overrides = _overrides(a.set)
    dist = {  # every guard's
        "service_jitter": a.service_jitter,
        "service_sigma": a.service_sigma,
        "service_growth": a.service_growth,
    }
    rows = []
    for cap in a.caps:
        service = cap / a.ceiling
        with guard_process(service, cap, **dist) as url:
            for w in a.workers:
                blasts, ours_runs = [], []
                for _ in range(a.repeats):  # interleaved: the machine's load drifts
                    blasts.append(
                        run_case("blast", [url], w, a.n, a.warmup // 2, 2 * cap, a.period, together=together)
                    )
                    ours_runs.append(
                        run_case(
                            "adaptive",
                            [url],
                            w,
                            a.n,
                            a.warmup,
                            0,
                            a.period,
                            overrides=overrides,
                            together=together,
                            warm_steps=a.warm_steps,
                        )
                    )
                blast = sorted(blasts, key=lambda c: c["rate"])[len(blasts) // 2]
                ours = sorted(ours_runs, key=lambda c: c["rate"])[len(ours_runs) // 2]
                ours["queue_mean"] = sum(c["guard"][0]["mean_waiting"] for c in ours_runs) / len(ours_runs)
                ours["queue_max"] = max(c["guard"][0]["max_waiting"] for c in ours_runs)
                rows.append((cap, service, w, ours, blast, url))
                print(
                    f"cap {cap:4d} x {service * 1e3:5.1f} ms, {w} worker(s): adaptive "
                    f"{[round(c['rate']) for c in ours_runs]}/s, blast {[round(c['rate']) for c in blasts]}/s; "
                    f"guard queue mean {ours['queue_mean']:.1f} max {ours['queue_max']}; its warm-up steps x ceiling "
                    + " ".join(f"{r / a.ceiling:.2f}" for r in ours["warm_rates"]),
                    flush=True,
                )

    print(
        f"\nguard ceiling {a.ceiling:.0f}/s at every cap (service time = cap / ceiling); n = {a.n} per run, "
        f"medians of {a.repeats} interleaved runs (queue: mean over the runs); "
        f"{a.warm_steps} warm-up step(s), {'staggered' if a.staggered else 'together'}; service jitter {a.service_jitter}, sigma {a.service_sigma}, growth {a.service_growth}; load avg {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; adaptive settings: "
        + (" ".join(f"{k}={v}" for k, v in overrides.items()) or "the defaults")
    )
    print(
        f"{'cap':>5}{'svc ms':>8}{'workers':>8}{'adaptive/s':>11}{'x ceil':>8}{'blast/s':>9}{'x blast':>9}"
        f"{'cold x ceil':>12}{'queue mean':>11}{'/cap':>6}{'q max':>7}{'ends s':>12}{'final limits':>18}"
    )
    ok = True
    for cap, service, w, ours, blast, url in rows:
        g = {"mean_waiting": ours["queue_mean"], "max_waiting": ours["queue_max"]}
        x_ceil, x_blast, qfrac = (
            ours["rate"] / a.ceiling,
            ours["rate"] / blast["rate"],
            g["mean_waiting"] / cap,
        )
        limits = ",".join(str(r["stats"][f"limit/{url}"]) for r in ours["results"])
        # when the first and the last worker finished their equal shares: the gap is what an
        # unfair split costs (the step waits for the slowest reward worker)
        ends = sorted(r["t1"] - ours["t0"] for r in ours["results"])
        ends_s = f"{ends[0]:.2f}/{ends[-1]:.2f}" if len(ends) > 1 else f"{ends[0]:.2f}"
        ok &= (x_ceil >= 0.9 or x_blast >= 0.95) and qfrac <= 0.5
        print(
            f"{cap:>5}{service * 1e3:>8.1f}{w:>8}{ours['rate']:>11.0f}{x_ceil:>8.3f}{blast['rate']:>9.0f}{x_blast:>9.3f}"
            f"{ours['cold'] / a.ceiling:>12.3f}{g['mean_waiting']:>11.1f}{qfrac:>6.2f}{g['max_waiting']:>7}{ends_s:>12}"
            f"{limits:>18}"
        )
    print(
        "targets: adaptive >= 0.9 x ceiling (or >= 0.95 x blast), guard queue mean <= cap / 2: "
        + ("met" if ok else "NOT met")
    )
    print("\nlimiter trajectories (per worker, limit of its one URL):")
    for cap, _service, w, ours, _blast, url in rows:
        for k, r in enumerate(ours["results"]):
            print(f"  cap {cap:4d}, {w} worker(s), worker {k}: {_trajectory(r, url)}")
    if a.trace > 0:
        for cap, _service, w, ours, _blast, url in rows:
            print(f"\ntrace, cap {cap}, {w} worker(s), median run (t = 0: the measured phase starts):")
            print("\n".join(_trace(ours, url, a.trace)))

    if a.plot:
        print("\nplots: " + ", ".join(_plot_cases(rows, a.ceiling, a.plot)))

    # ------------------------------------------------------------ a replica slows down halfway
    if a.slow_n <= 0:
        return
    cap, service, workers = 64, 64 / (a.ceiling / 2), 4
    with (
        guard_process(service, cap, **dist) as url_a,
        guard_process(service, cap, **dist) as url_b,
    ):
        duration = a.slow_n / a.ceiling
        slowed = {}

        def slow_b_halfway(t0: float) -> None:
            time.sleep(duration / 2)
            httpx.post(
                f"{url_b}/_control", json={"mode": "ok", "service_time_s": 2 * service}
            ).raise_for_status()
            slowed["t"] = time.monotonic()

        case = run_case(
            "adaptive",
            [url_a, url_b],
            workers,
            a.slow_n,
            a.warmup,
            0,
            a.period,
            during=slow_b_halfway,
            overrides=overrides,
            together=together,
        )
    t_slow = slowed["t"]
    before = after = 0.0
    b_after = all_after = 0
    for r in case["results"]:
        s0, s1, s2 = (_sample_at(r, t) for t in (case["t0"], t_slow, case["t1"]))
        before += s1[2] - s0[2]
        after += s2[2] - s1[2]
        b_after += s2[1][f"requests/{url_b}"] - s1[1][f"requests/{url_b}"]
        all_after += sum(s2[1][f"requests/{u}"] - s1[1][f"requests/{u}"] for u in (url_a, url_b))
    rate_before, rate_after = before / (t_slow - case["t0"]), after / (case["t1"] - t_slow)
    ideal_after = a.ceiling / 2 + a.ceiling / 4
    print(
        f"\ntwo replicas, cap {cap} x {service * 1e3:.0f} ms each ({a.ceiling / 2:.0f}/s each), {workers} workers, "
        f"{a.slow_n} requests; replica B 2x slower from {t_slow - case['t0']:.1f}s:"
    )
    print(f"  before: {rate_before:.0f}/s = {rate_before / a.ceiling:.3f} x ceiling {a.ceiling:.0f}/s")
    print(
        f"  after:  {rate_after:.0f}/s = {rate_after / ideal_after:.3f} x ceiling {ideal_after:.0f}/s; "
        f"B's share of requests {b_after / max(1, all_after):.2f} (its share of the capacity: 0.33)"
    )
    # Recovery over time: B's share of the requests answered in each interval after it
    # slowed, the rate against the new ideal, and the drains (every worker, B's URL) begun in
    # it. The limiter re-learns B's floor at a drain, so this shows how long B was starved.
    every = 0.5
    edges = [t_slow + k * every for k in range(int((case["t1"] - t_slow) / every) + 1)]
    if len(edges) > 1:
        shares, rates, drains = [], [], []
        for lo, hi in zip(edges, edges[1:], strict=False):
            b_n = all_n = d_n = 0
            for r in case["results"]:
                s_lo, s_hi = _sample_at(r, lo)[1], _sample_at(r, hi)[1]
                b_n += s_hi[f"requests/{url_b}"] - s_lo[f"requests/{url_b}"]
                all_n += sum(s_hi[f"requests/{u}"] - s_lo[f"requests/{u}"] for u in (url_a, url_b))
                d_n += s_hi.get(f"drains/{url_b}", 0) - s_lo.get(f"drains/{url_b}", 0)
            shares.append(f"{b_n / max(1, all_n):.2f}")
            rates.append(f"{all_n / every / ideal_after:.2f}")
            drains.append(str(d_n))
        print(f"  every {every}s after the slowdown: B's share {' '.join(shares)}")
        print(f"    x ceiling {' '.join(rates)}; drains of B begun {' '.join(drains)}")
    for name, u, g in (("A", url_a, case["guard"][0]), ("B", url_b, case["guard"][1])):
        print(
            f"  replica {name}: queue mean {g['mean_waiting']:.1f} max {g['max_waiting']}; "
            f"limits worker 0: {_trajectory(case['results'][0], u, 16)}"
        )
    if a.plot:
        print(f"  plot: {_plot_slowing(case, {'A': url_a, 'B': url_b}, t_slow, a.plot)}")


if __name__ == "__main__":
    main()
