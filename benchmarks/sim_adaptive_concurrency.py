"""Deterministic event simulation of adaptive concurrency, to rank limiter variants.

Why: ``bench_adaptive_concurrency.py`` measures the real thing, but its 4-worker rows move by
0.05-0.15 between consecutive runs, so ranking a small change takes a dozen 4-minute runs and
still guesses. This runs the *real* :class:`AdaptiveLimit` (built by ``HTTPClientConfig``
from default settings or ``--set``) and the fake guard's own slot schedule
(``FakeOpenAIState.reserve``) in simulated time: the same inputs give the same numbers, a
case takes a fraction of a second, and many seeds (drain phases, service jitter) give a
distribution instead of one noisy draw. It is a model: what it shows is a lead to confirm
with the benchmark, not a result.

The model is ``sinternal_verl.testing.guard_sim`` (the tests use it too): client event loops
and the guard's HTTP server with CPU costs per request, the guard's C slots, the transport's
loop around the limit, warm-up steps and a measured step dispatched to every client at once.
Printed per case over ``--seeds`` seeds: the measured step's
throughput / ceiling (median, min), / the same run of a limiter-less blast (fixed 2 x C in
flight over all clients), the guard's mean wait queue / C (Little's law over the step) and
the spread of the clients' finishing times in round trips. Seeds move the wall-clock phase of
the drain boundaries, the jitter draws and, with ``--start-skew S``, how late each client starts
its first step (the real benchmark's worker processes are a fraction of a round trip apart,
which at cap 512 is what its step 2 pays for); with ``--step-skew S``, how late each starts
*every* step, drawn anew per step (on a loaded host whose opening burst lands behind the
others' in the guard's queue is a lottery each step; 0.05 s puts 4 workers at cap 512 three
steps in at about the real benchmark's figure). With ``--slow-factor F`` the guard's service
time is multiplied by F once half of the measured step is answered (a replica that slows down,
the real benchmark's last case on one guard) and ``x ceiling`` is the rate after that against
the new ceiling (use a larger ``--n``: at cap 512 half of 4096 requests is four round trips).

``PYTHONPATH=$PWD python benchmarks/sim_adaptive_concurrency.py`` (20 seeds: about 15 s);
``--set limit_tolerance=0.2`` simulates other settings; ``--trace S`` prints each case's limits every S
simulated seconds for one seed, and the measured step's throughput over time. ``--shares``
asks whether the clients' shares follow their floors: per case, over all seeds' clients, the
correlation of each client's floor (over the clients' mean) with its share of the answers while
every client was still busy (over the mean share), and the spread of both.
"""

from __future__ import annotations

import argparse
import collections
import functools
import math
import statistics

from bench_adaptive_concurrency import _overrides  # the same --set, checked by GuardConfig

from sinternal_verl.guards.http import HTTPClientConfig
from sinternal_verl.guards.limiter import FixedLimit
from sinternal_verl.testing.guard_sim import Model, simulate


def _config(overrides: dict) -> HTTPClientConfig:
    return HTTPClientConfig(urls=("http://127.0.0.1:1",), **overrides)


def _rates(answers: list[tuple[float, int]], every: float, ceiling: float) -> list[float]:
    counts = collections.Counter(int(t / every) for t, _ in answers)
    return [counts[i] / every / ceiling for i in range(max(counts) + 1)] if counts else []


def _deviations(answers: list[tuple[float, int]], floors: list[float]) -> list[tuple[float, float]]:
    """Per client of one measured step: (its floor / the clients' mean floor - 1, its answers
    while every client was busy / the mean - 1). Busy: until the first client's last answer."""
    last: dict[int, float] = {}
    for t, c in answers:
        last[c] = t
    busy_until = min(last.values())
    counts = collections.Counter(c for t, c in answers if t <= busy_until)
    mean_count = statistics.fmean(counts[c] for c in range(len(floors)))
    mean_floor = statistics.fmean(floors)
    return [(f / mean_floor - 1.0, counts[c] / mean_count - 1.0) for c, f in enumerate(floors)]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--caps", type=int, nargs="+", default=[32, 128, 512])
    p.add_argument("--workers", type=int, nargs="+", default=[1, 4])
    p.add_argument("--n", type=int, default=4096, help="requests per measured step (all workers)")
    p.add_argument("--warm", type=int, default=4096, help="requests in a warm-up step")
    p.add_argument("--warm-steps", type=int, default=1, help="warm-up steps before the measured one")
    p.add_argument("--ceiling", type=float, default=1280.0, help="guard requests/s; S = cap / ceiling")
    p.add_argument("--seeds", type=int, default=20)
    p.add_argument("--jitter", type=float, default=0.0, help="guard service-time jitter (fraction)")
    p.add_argument("--sigma", type=float, default=0.0, help="guard service time lognormal with this sigma")
    p.add_argument(
        "--growth", type=float, default=0.0, help="guard service time x (1 + g x busy slots / cap)"
    )
    p.add_argument(
        "--start-skew", type=float, default=0.0, help="each client starts its first step up to S seconds late"
    )
    p.add_argument(
        "--step-skew", type=float, default=0.0, help="each client starts every step up to S seconds late"
    )
    p.add_argument(
        "--slow-factor",
        type=float,
        default=1.0,
        help="the guard gets F x slower halfway through the measured step",
    )
    p.add_argument("--client-send", type=float, default=Model.client_send)
    p.add_argument("--client-recv", type=float, default=Model.client_recv)
    p.add_argument("--guard-cpu", type=float, default=Model.guard_cpu)
    p.add_argument("--gap", type=float, default=Model.gap, help="seconds between steps")
    p.add_argument(
        "--cores", type=int, default=Model.cores, help="cores the clients and the guard share (0: one each)"
    )
    p.add_argument(
        "--counts",
        type=float,
        default=None,
        metavar="S",
        help="the clients read the guard's running/waiting counts every S seconds in all (each of W "
        "every W x S), as limit_signal=server_counts does (default: limit_counts_every_s where that "
        "is the signal, as it is by default; 0 with --set limit_signal=latency)",
    )
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="limiter setting")
    p.add_argument(
        "--trace", type=float, default=0.0, help="print the limits every S seconds (of --trace-seed)"
    )
    p.add_argument("--trace-seed", type=int, default=0)
    p.add_argument("--per-seed", action="store_true", help="print each seed's x ceiling / queue x cap")
    p.add_argument(
        "--shares",
        action="store_true",
        help="print how the clients' shares of a step follow their floors (correlation, spreads)",
    )
    args = p.parse_args()
    model = Model(
        client_send=args.client_send,
        client_recv=args.client_recv,
        guard_cpu=args.guard_cpu,
        gap=args.gap,
        jitter=args.jitter,
        sigma=args.sigma,
        growth=args.growth,
        start_skew=args.start_skew,
        step_skew=args.step_skew,
        slow_factor=args.slow_factor,
        cores=args.cores,
        poll=0.0,
    )
    overrides = _overrides(args.set)
    if args.counts:  # what the transport does with limit_signal=server_counts, every S seconds
        overrides = {"limit_signal": "server_counts", "limit_counts_every_s": args.counts, **overrides}
    cfg = _config(overrides)
    if args.counts is None and cfg.limit_signal == "server_counts":
        args.counts = cfg.limit_counts_every_s
    print(
        f"model: send {model.client_send * 1e6:.0f} us + recv {model.client_recv * 1e6:.0f} us per request per "
        f"client loop, guard {model.guard_cpu * 1e6:.0f} us per request, jitter {model.jitter}, sigma {model.sigma}, growth {model.growth}, start skew {model.start_skew}s, step skew {model.step_skew}s, slow x{model.slow_factor}, gap {model.gap}s, cores {model.cores or 'one per process'}; "
        + (f"the job reads the guard's counts every {args.counts}s; " if args.counts else "")
        + f"ceiling {args.ceiling:.0f}/s, n {args.n}, warm-up {args.warm}, {args.seeds} seeds; settings {args.set or 'default'}"
    )
    print(
        f"{'cap x W':>9} | {'x ceiling med (min)':>20} | {'x blast':>7} | {'queue/cap':>9} | {'ends apart (RTTs)':>17} | met"
    )
    met = total = 0
    for cap in args.caps:
        for w in args.workers:
            rates, queues, spreads, blasts, devs = [], [], [], [], []
            # each client is told how many share the guard, as verl's reward manager tells its
            # workers (unless --set says otherwise); the job reads the guard every S seconds in
            # all, each of its clients every clients x S
            per_w = _config({"limit_counts_clients": w, **overrides})
            make_limit = per_w.new_limit
            model.poll = (args.counts or 0.0) * per_w.counts_clients
            blast = functools.partial(FixedLimit, max(1, 2 * cap // w))
            common = {"n": args.n, "warm": args.warm, "warm_steps": args.warm_steps, "ceiling": args.ceiling}
            for seed in range(args.seeds):
                trace = args.trace if seed == args.trace_seed else 0.0
                if trace:
                    print(
                        f"  trace: cap {cap} x {w}, seed {seed}; per client: limit/in flight, latency/floor ms, D draining"
                    )
                made = []

                def recording(made=made, make_limit=make_limit):
                    made.append(make_limit())
                    return made[-1]

                r = simulate(cap, w, recording, model=model, seed=seed, trace_every=trace, **common)
                if args.shares and w > 1:
                    devs += _deviations(r.answers, [lim.floor for lim in made])
                if trace:
                    print("  the measured step's answers per second / ceiling, every trace interval:")
                    print("  " + " ".join(f"{x:.2f}" for x in _rates(r.answers, trace, args.ceiling)))
                b = simulate(cap, w, blast, model=model, seed=seed, **common)
                rates.append(r.rate if r.rate_after is None else r.rate_after)
                queues.append(r.queue)
                spreads.append(r.spread_rtts)
                blasts.append(b.rate if b.rate_after is None else b.rate_after)
            if args.per_seed:
                print(
                    f"  cap {cap} x {w} per seed: "
                    + " ".join(
                        f"{i}:{r:.2f}/{q:.2f}" for i, (r, q) in enumerate(zip(rates, queues, strict=True))
                    )
                )
            if devs:
                floor_devs, share_devs = zip(*devs, strict=True)
                try:
                    corr = f"{statistics.correlation(floor_devs, share_devs):.2f}"
                except statistics.StatisticsError:  # every floor (or share) alike
                    corr = "none"
                print(
                    f"  cap {cap} x {w} shares: correlation with the floor {corr}; "
                    f"spread (sd) of the floors {statistics.pstdev(floor_devs):.2%}, of the shares {statistics.pstdev(share_devs):.2%}"
                )
            ok = sum(
                (r >= 0.9 or r >= 0.95 * b) and q <= 0.5
                for r, b, q in zip(rates, blasts, queues, strict=True)
            )
            met += ok
            total += len(rates)
            print(
                f"{cap:>5} x {w} | {statistics.median(rates):>12.3f} ({min(rates):.3f}) | "
                f"{statistics.median(r / b for r, b in zip(rates, blasts, strict=True)):>7.3f} | "
                f"{statistics.median(queues):>9.2f} | {statistics.median(spreads):>17.2f} | {ok}/{len(rates)}"
            )
    print(f"seeds meeting both targets: {met}/{total} ({math.floor(100 * met / total)} %)")


if __name__ == "__main__":
    main()
