"""A deterministic event simulation of guard clients with their concurrency limits.

The real :class:`~sinternal_verl.guards.limiter.AdaptiveLimit` (or any limit with its
interface) and the fake guard's own slot schedule (``FakeOpenAIState.reserve``), in simulated
time: the same inputs give the same numbers, and a case takes a fraction of a second. Tests
use it to check the limiter end to end without clocks; ``benchmarks/sim_adaptive_concurrency.py``
uses it to rank variants, which the real benchmark's run-to-run noise cannot.

The model, per request (each step in time order over all processes):

* a client process is one event loop: sending costs it ``Model.client_send`` seconds of CPU
  and handling an answer ``Model.client_recv``; its requests wait for that loop (so a
  start-of-step burst of hundreds of sends is spread over time, as in the real client);
* the guard process spends ``Model.guard_cpu`` per request before it reaches a slot (the HTTP
  server), one request at a time; then ``reserve`` gives its slot's start and finish (C
  slots, FIFO, service time S = C / ceiling, uniform in ``S * [1 - jitter, 1 + jitter]`` or
  lognormal with ``sigma``);
* with ``Model.cores``, those CPU charges share that many cores, as the real benchmark's four
  clients and guard share two (without it each process has a core of its own, and a variant
  can gain there what the real benchmark does not show);
* the transport's loop around the limit, as in ``OpenAIHTTPClient._request``: a request takes
  a ticket (``on_send``) and is sent while fewer than ``limit`` are in flight; at an answer,
  ``on_sample(rtt, in_flight, ticket)``, then ``drain_due(wall clock)`` / ``drain``, then the
  freed room goes to the next request.

A run is ``warm_steps`` warm-up steps and a measured step, each handing every client
``n / workers`` requests at the same moment (as verl's ``RewardLoopManager`` dispatches a
step), ``Model.gap`` seconds apart. It is a model: what it shows is a lead to confirm with
the real benchmark, not a result.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .fake_openai import FakeOpenAIState

__all__ = ["Model", "StepResult", "simulate"]


# event kinds, in the order they are handled when two fall on the same instant
_ANSWER, _PROCESSED, _ARRIVE, _ADMIT, _POLL = range(5)


@dataclass
class Model:
    """What the simulation charges. The CPU costs are rough figures of the benchmark's
    processes on a 2-core machine (``bench_guard_client.py`` measures the real client's)."""

    client_send: float = 150e-6  #: seconds of a client's event loop per request sent
    client_recv: float = 150e-6  #: seconds of a client's event loop per answer handled
    guard_cpu: float = 300e-6  #: seconds of the guard's HTTP server per request, in turn
    gap: float = 0.5  #: seconds between steps
    jitter: float = 0.0  #: service time uniform in ``S * [1 - jitter, 1 + jitter]``
    sigma: float = 0.0  #: service time lognormal, ``S * exp(sigma Z - sigma^2 / 2)``
    growth: float = 0.0  #: service time ``x (1 + growth * busy slots / C)``: a batch slows its steps
    #: each client starts its first step up to this many seconds late (uniform, per seed): worker
    #: processes that come up, or get the CPU, at different moments, so slow start leaves their
    #: limits unequal (the real benchmark's 4 workers on 2 cores: up to 1.75 x apart)
    start_skew: float = 0.0
    #: each client starts *every* step up to this many seconds late (uniform, drawn per step):
    #: verl dispatches a step to every reward worker at once, but on a loaded host each
    #: process sends its opening burst when it gets the CPU, so whose burst lands behind the
    #: others' in the guard's queue is a lottery drawn anew every step
    step_skew: float = 0.0
    #: once half of the measured step is answered, the guard's service time is multiplied by
    #: this (a replica that another job starts sharing): its ceiling falls by the same factor,
    #: while its number of slots, hence the limit that saturates it, stays
    slow_factor: float = 1.0
    #: cores the processes share (0: each process has its own). The real benchmark runs 4
    #: clients and the guard on 2 cores, so a start-of-step burst of one process delays the
    #: others' work: every CPU charge above takes a free core or waits for the first to free,
    #: in the order the charges are made (no preemption)
    cores: int = 0
    #: seconds between a busy client's readings of the guard's own counts (0: none). A limit
    #: with ``observe_upstream(running, waiting)`` is handed the requests in the guard's slots
    #: and those waiting for one, as a vLLM server's ``/metrics`` gauges
    #: (``vllm:num_requests_running``, ``vllm:num_requests_waiting``) would say; the clients'
    #: first readings are spread over one period
    poll: float = 0.0


@dataclass
class _Client:
    limit: Any
    pending: int = 0
    in_flight: int = 0
    cpu_free: float = 0.0
    done_at: float = 0.0
    polling: bool = False
    #: the transport's ``tail_armed``: a step's last requests go beyond the limit once
    tail_armed: bool = True


@dataclass
class StepResult:
    """The measured step. ``rate``: requests per second over the guard's ceiling, from the
    step's dispatch to its last answer; ``queue``: the guard's mean wait queue (requests
    waiting for a slot, Little's law over the step) over its cap; ``spread_rtts``: first
    and last client's finishing times apart, in service times; ``limits``: at the end;
    ``answers``: (seconds into the step, client) of every answer, in order; with
    ``Model.slow_factor``, ``rate_after``: requests per second after the guard slowed down over
    its new ceiling (``None`` without a slowdown)."""

    rate: float
    queue: float
    spread_rtts: float
    limits: list[int]
    answers: list[tuple[float, int]]
    rate_after: float | None = None


def simulate(
    cap: int,
    workers: int,
    make_limit: Callable[[], Any],
    *,
    n: int = 4096,
    warm: int = 4096,
    warm_steps: int = 1,
    ceiling: float = 1280.0,
    model: Model | None = None,
    seed: int = 0,
    trace_every: float = 0.0,
) -> StepResult:
    """``warm_steps`` steps of ``warm`` requests, then a measured step of ``n``, each split
    evenly over ``workers`` clients (``make_limit()`` gives each its limit) against a guard
    of ``cap`` slots and service time ``cap / ceiling``. ``seed`` sets the service-time draws
    and the wall clock's phase against the drain boundaries; ``trace_every`` prints each
    client's state that often (simulated seconds)."""
    model = model or Model()
    service = cap / ceiling
    guard = FakeOpenAIState(
        service, cap, model.jitter, seed=seed, service_sigma=model.sigma, service_growth=model.growth
    )
    rng = random.Random(seed)
    wall0 = rng.uniform(0, 1024)
    skews = [rng.uniform(0, model.start_skew) for _ in range(workers)]
    clients = [_Client(make_limit()) for _ in range(workers)]
    events: list = []
    seq = 0
    guard_free = 0.0
    core_free = [0.0] * model.cores  # when each shared core is next free
    waits = 0.0
    answers: list[tuple[float, int]] = []

    def push(t: float, kind: int, data: tuple) -> None:
        nonlocal seq
        seq += 1
        heapq.heappush(events, (t, kind, seq, data))

    def run_on_cpu(ready: float, cost: float) -> tuple[float, float]:
        """A CPU charge of ``cost`` seconds that its process can start at ``ready``: when it
        starts and ends on the shared cores (``Model.cores``). It takes the core that became
        free last by ``ready`` (a process's consecutive charges stay on one core, and a core
        free earlier stays for another process's charge made later for an earlier moment),
        else the core that frees first, and waits for it."""
        if core_free:
            idle = [i for i, t in enumerate(core_free) if t <= ready]
            if idle:
                i = max(idle, key=core_free.__getitem__)
            else:
                i = min(range(len(core_free)), key=core_free.__getitem__)
                ready = core_free[i]
            core_free[i] = ready + cost
        return ready, ready + cost

    def send_more(k: int, now: float, answered: bool = False) -> None:
        """Send while the limit has room; after an answer, also a batch's last requests
        beyond it (the transport's ``_release``: at most the limit's ``tail_room`` left)."""
        c = clients[k]
        tail = getattr(c.limit, "tail_room", 0) if answered and c.tail_armed else 0
        bound = c.limit.limit + tail  # in flight and pending together (``_release``)
        release = bool(tail and c.pending and c.in_flight + c.pending <= bound)
        if release:
            c.tail_armed = False
        elif not answered and c.pending and c.in_flight < c.limit.limit:
            c.tail_armed = True  # a step's first requests find room: a new burst
        while c.pending and (c.in_flight < c.limit.limit or release):
            c.pending -= 1
            c.in_flight += 1
            # the request's clock starts when its loop takes it up
            t0, c.cpu_free = run_on_cpu(max(now, c.cpu_free), model.client_send)
            push(c.cpu_free, _ARRIVE, (k, t0, c.limit.on_send()))

    slowed_at: list[float] = []  # when the guard slowed down (the measured step only)

    admitted: list[tuple[float, float]] = []  # (start, finish) in a slot, with ``Model.poll``

    def start_polling(k: int, now: float) -> None:
        c = clients[k]
        if model.poll and hasattr(c.limit, "observe_upstream") and not c.polling:
            c.polling = True
            push(now + model.poll * (k + 1) / (len(clients) + 1), _POLL, (k,))

    def run_step(start: float, per_client: int, skew: list[float], slow_after: int = 0) -> float:
        nonlocal guard_free, waits
        for k, c in enumerate(clients):
            c.pending = per_client
            c.cpu_free = max(c.cpu_free, start + skew[k])
            send_more(k, start)
            start_polling(k, start)
        now = next_trace = last = start
        while events:
            now, kind, _, data = heapq.heappop(events)
            if kind == _ARRIVE:  # the guard's HTTP server takes the requests one at a time
                guard_free = run_on_cpu(max(now, guard_free), model.guard_cpu)[1]
                push(guard_free, _ADMIT, data)
            elif kind == _ADMIT:
                begin, finish = guard.reserve(now)
                waits += begin - now
                if model.poll:
                    admitted.append((begin, finish))
                push(finish, _ANSWER, data)
            elif kind == _POLL:  # a busy client reads the guard's counts
                c = clients[data[0]]
                admitted[:] = [x for x in admitted if x[1] > now]
                running = sum(1 for begin, _ in admitted if begin <= now)
                c.limit.observe_upstream(running, len(admitted) - running)
                if c.pending or c.in_flight:
                    push(now + model.poll, _POLL, data)
                else:
                    c.polling = False
            elif kind == _ANSWER:  # back at the client: its loop handles it when free
                c = clients[data[0]]
                c.cpu_free = run_on_cpu(max(now, c.cpu_free), model.client_recv)[1]
                push(c.cpu_free, _PROCESSED, data)
            else:
                k, t0, ticket = data
                c = clients[k]
                lim = c.limit
                lim.on_sample(now - t0, c.in_flight, ticket)
                if lim.adaptive and lim.drain_due(wall0 + now):
                    lim.drain()
                c.in_flight -= 1
                answers.append((now, k))
                last = now
                if len(answers) == slow_after:  # answers holds the measured step's only
                    guard.service_time_s *= model.slow_factor
                    slowed_at.append(now)
                send_more(k, now, answered=True)
                if not c.pending and not c.in_flight:
                    c.done_at = now
            if trace_every and now >= next_trace:
                print(f"  t={now - start:6.2f}s  " + "  ".join(state_line(c) for c in clients))
                next_trace = now + trace_every
        return last  # not a reading's time: the step ends at its last answer

    step_rng = random.Random(f"{seed}:steps")  # its own stream: other draws stay as they were

    def skew(step: int) -> list[float]:
        first = skews if step == 0 else [0.0] * workers
        if not model.step_skew:
            return first
        return [s + step_rng.uniform(0, model.step_skew) for s in first]

    t0 = 0.0
    for step in range(warm_steps):
        t0 = run_step(t0, warm // workers, skew(step)) + model.gap
    waits = 0.0
    answers.clear()
    total = n // workers * workers
    slow_after = total // 2 if model.slow_factor != 1.0 else 0
    end = run_step(t0, n // workers, skew(warm_steps), slow_after)
    span = end - t0
    done = [c.done_at - t0 for c in clients]
    rate_after = None
    if slowed_at:
        rate_after = (total - slow_after) / (end - slowed_at[0]) / (ceiling / model.slow_factor)
    return StepResult(
        rate=total / span / ceiling,
        queue=waits / span / cap,
        spread_rtts=(max(done) - min(done)) / service,
        limits=[c.limit.limit for c in clients],
        answers=[(t - t0, k) for t, k in answers],
        rate_after=rate_after,
    )


def state_line(c: _Client) -> str:
    """One client: limit/in flight, last window latency/floor in ms, D while draining."""
    lim = c.limit

    def ms(v: float | None) -> str:
        return "-" if v is None else f"{v * 1e3:.0f}"

    drain = "D" if getattr(lim, "draining", False) else " "
    return f"{lim.limit:4d}/{c.in_flight:<4d} {ms(lim.latency):>4}/{ms(lim.floor):<4}{drain}"
