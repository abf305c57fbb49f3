"""The concurrency limiter's arithmetic, driven with explicit latency values (no clocks), and
a deterministic simulation of several independent clients sharing one guard."""

from __future__ import annotations

import math

import pytest

from sinternal_verl.guards.limiter import AdaptiveLimit, FixedLimit


def feed(lim: AdaptiveLimit, rtt: float, n: int, in_flight: int | None = None) -> None:
    """``n`` answers of latency ``rtt``, each with the limit in flight (a busy client)."""
    for _ in range(n):
        lim.on_sample(rtt, lim.limit if in_flight is None else in_flight)


def window(lim: AdaptiveLimit) -> int:
    return max(lim.window_min, lim.limit)


def one_window(lim: AdaptiveLimit, rtt: float) -> None:
    """Answers to the requests sent under the previous limit (skipped), then one window."""
    feed(lim, rtt, lim._skip + window(lim))


def test_slow_start_doubles_per_window_while_latency_stays_at_its_floor():
    lim = AdaptiveLimit(initial=4, minimum=1, maximum=64, window_min=8)
    feed(lim, 0.1, 7)
    assert lim.limit == 4  # a window is 8 answers
    feed(lim, 0.1, 1)
    assert lim.limit == 8 and lim.floor == pytest.approx(0.1) and lim.latency == pytest.approx(0.1)
    # answers to the 4 requests sent under the old limit are skipped, then a window of 8
    feed(lim, 0.1, 3 + 8)
    assert lim.limit == 16
    for expected in (32, 64, 64):  # capped at the maximum
        feed(lim, 0.1, lim.limit + window(lim))
        assert lim.limit == expected


def test_slow_start_ends_when_doubling_buys_no_throughput():
    # a full upstream: latency grows with what we send (in flight / latency stays 100/s)
    lim = AdaptiveLimit(initial=8, tolerance=10.0, window_min=8)  # tolerance out of the way
    one_window(lim, 0.08)  # 8 in flight / 0.08 s = 100/s
    assert lim.limit == 16
    one_window(lim, 0.16)  # 16 / 0.16 s: still 100/s: the doubling only queued
    assert lim.limit == 8 and lim.decreases == 0
    one_window(lim, 0.08)
    assert lim.limit == int(8 + math.sqrt(8))  # additive from here


def test_latency_rise_backs_off_multiplicatively_then_grows_additively():
    lim = AdaptiveLimit(initial=100, minimum=1, maximum=1000, tolerance=0.5, backoff=0.6, window_min=8)
    feed(lim, 0.1, window(lim))  # floor 0.1, grows to 200 (slow start)
    assert lim.limit == 200
    feed(lim, 0.1, 99)  # skip the old requests
    feed(lim, 0.16, window(lim))  # 1.6 x the floor > 1 + tolerance
    assert lim.limit == 120 and lim.decreases == 1 and lim.floor == pytest.approx(0.1)
    # the answers to the 199 requests that were out at the decrease carry the old queue:
    # however slow, they do not decrease again
    feed(lim, 0.5, 199)
    assert lim.limit == 120 and lim.decreases == 1
    # past the first congestion growth is additive, by sqrt(limit) per window
    feed(lim, 0.1, window(lim))
    assert lim.limit == int(120 + math.sqrt(120))


def test_latency_within_tolerance_is_not_a_back_off():
    lim = AdaptiveLimit(initial=16, tolerance=0.5)
    feed(lim, 0.1, window(lim))
    feed(lim, 0.1, 15)
    before = lim.limit
    feed(lim, 0.149, window(lim))  # 1.49 x the floor
    assert lim.limit > before and lim.decreases == 0


def test_a_stalled_tail_is_not_a_queue_but_a_shifted_window_is():
    lim = AdaptiveLimit(initial=16, tolerance=0.5, quantile=0.25)
    one_window(lim, 0.1)  # floor 0.1
    before = lim.limit
    # a fifth of the answers stalled in our own event loop (a heavy tail): not congestion
    for k in range(lim._skip + window(lim)):
        lim.on_sample(0.5 if k % 5 == 0 else 0.11, lim.limit)
    assert lim.limit > before and lim.decreases == 0
    # a queue at the server delays every answer: a back-off
    one_window(lim, 0.2)
    assert lim.decreases == 1


def test_overload_backs_off_at_once_and_once_per_window():
    lim = AdaptiveLimit(initial=64, minimum=2, backoff=0.5)
    lim.on_overload(in_flight=64)  # a 429/503/timeout: no window needed
    assert lim.limit == 32 and lim.decreases == 1
    for _ in range(63):  # the other 63 requests of that window answer 429 too
        lim.on_overload(in_flight=64)
    assert lim.limit == 32 and lim.decreases == 1
    lim.on_overload(in_flight=32)  # a request sent after the decrease: a new signal
    assert lim.limit == 16 and lim.decreases == 2
    for _ in range(100):
        lim.on_overload(in_flight=1)
    assert lim.limit == 2  # never below the minimum
    assert lim.floor is None  # overloads say nothing about latency


def test_app_limited_client_does_not_grow():
    lim = AdaptiveLimit(initial=64)
    feed(lim, 0.1, 64, in_flight=10)  # only 10 in flight: the limit is not what holds us back
    assert lim.limit == 64
    feed(lim, 0.1, 64, in_flight=64)
    assert lim.limit == 128


def test_floor_only_falls_and_is_relearnt_at_the_minimum():
    lim = AdaptiveLimit(initial=8, minimum=1, backoff=0.5, window_min=4)
    one_window(lim, 0.2)
    one_window(lim, 0.1)
    assert lim.floor == pytest.approx(0.1)
    one_window(lim, 0.12)
    assert lim.floor == pytest.approx(0.1)  # a higher window never raises it
    # the upstream becomes 3x slower for good: back off down to the minimum, then re-learn
    while lim.limit > 1:
        one_window(lim, 0.3)
    assert lim.relearns == 1 and lim.floor is None
    one_window(lim, 0.3)
    assert lim.floor == pytest.approx(0.3) and lim.limit == 2  # slow start again at the new floor


def test_limits_stay_within_bounds():
    lim = AdaptiveLimit(initial=3, minimum=3, maximum=5, window_min=1)
    for rtt in (0.1, 0.1, 0.1, 0.1, 1.0, 1.0, 1.0, 0.1, 0.1, 5.0):
        feed(lim, rtt, 5)
        assert 3 <= lim.limit <= 5


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan"), float("inf")])
def test_bad_latency_samples_are_rejected(bad):
    with pytest.raises(ValueError, match="latency sample"):
        AdaptiveLimit().on_sample(bad, 1)


@pytest.mark.parametrize(
    "kw",
    [
        {"initial": 0},
        {"minimum": 5, "initial": 4},
        {"initial": 10, "maximum": 8},
        {"tolerance": 0},
        {"backoff": 1.0},
        {"backoff": 0.0},
        {"window_min": 0},
        {"quantile": 1.0},
        {"quantile": -0.1},
        {"startup_gain": 1.0},
    ],
)
def test_bad_settings_are_rejected(kw):
    with pytest.raises(ValueError):
        AdaptiveLimit(**kw)


def test_fixed_limit_ignores_every_signal():
    lim = FixedLimit(7)
    lim.on_sample(10.0, 7)
    lim.on_overload(7)
    assert lim.limit == lim.minimum == lim.maximum == 7 and lim.floor is None
    with pytest.raises(ValueError):
        FixedLimit(0)


# ---------------------------------------------------------------- several clients, one guard
def simulate(cap: int, joins: list[int], rounds: int, service: float = 1.0):
    """A guard serving ``cap`` requests at once, ``service`` each; a queue beyond that.
    One round is one round trip: each active client gets ``limit`` answers, all with the
    latency the guard's total load implies (``service * total / cap`` when queued). Client
    ``k`` starts at round ``joins[k]``. Returns per-round (total in flight, limits)."""
    clients = [AdaptiveLimit() for _ in joins]
    history = []
    for r in range(rounds):
        active = [c for c, j in zip(clients, joins) if r >= j]
        total = sum(c.limit for c in active)
        rtt = service * max(1.0, total / cap)
        for c in active:
            feed(c, rtt, c.limit)
        history.append((total, [c.limit if r >= j else 0 for c, j in zip(clients, joins)]))
    return history


@pytest.mark.parametrize(
    "cap, joins",
    [
        (128, [0, 0]),  # two reward workers started together
        (32, [0, 0, 0, 0]),  # four workers on a small guard
        (128, [0, 100]),  # a second worker joins a guard the first one already fills
        (512, [0, 100]),
        (128, [0, 0, 50, 150]),
    ],
)
def test_independent_clients_converge_to_a_fair_share_of_one_guard(cap, joins):
    # Late joiners first learn a floor inflated by the others' queue and take more; the
    # queue drains after each synchronised back-off, their floor falls and the shares swing
    # around the fair one, so the share is judged over a long run (after round 1000).
    history = simulate(cap, joins, rounds=4000)
    tail = history[1000:]
    mean_limits = [sum(h[1][k] for h in tail) / len(tail) for k in range(len(joins))]
    utilisation = sum(min(1.0, total / cap) for total, _ in tail) / len(tail)
    mean_queue = sum(max(0, total - cap) for total, _ in tail) / len(tail)
    assert max(mean_limits) / min(mean_limits) <= 1.25, mean_limits  # a fair share (late joiners: within 25%)
    assert utilisation >= 0.95  # the guard stays busy
    assert mean_queue <= cap / 2  # and its wait queue bounded: at most half its cap on average


def test_a_lone_client_finds_the_guard_capacity_it_was_not_told():
    for cap in (32, 128, 512):
        tail = simulate(cap, [0], rounds=600)[-300:]
        assert min(total for total, _ in tail) >= 0.85 * cap
        assert sum(total for total, _ in tail) / len(tail) <= 1.5 * cap
