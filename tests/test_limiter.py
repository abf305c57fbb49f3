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
    """Answers to the requests sent before the last cut (skipped), then one window."""
    feed(lim, rtt, lim._skip + window(lim))


def drain_window(lim: AdaptiveLimit, rtt: float) -> None:
    """Answers to the requests sent before the drain's cut (skipped), then its window: at
    most one limit's worth of answers."""
    feed(lim, rtt, lim._skip + max(2, min(lim.window_min, lim.limit)))


def past_slow_start(rtt: float = 0.1, **kw) -> AdaptiveLimit:
    """A limit that left slow start at ``limit`` ~ 20 with its floor at ``rtt``."""
    lim = AdaptiveLimit(initial=4, window_min=4, **kw)
    feed(lim, rtt, 16)  # four windows at the floor: 4 -> 20, one per answer
    assert lim.slow_start and lim.limit == 20
    feed(lim, 1.5 * rtt, 4)  # a queue: hold the limit for one round trip of answers
    held = lim.limit
    feed(lim, 1.5 * rtt, lim._hold)  # the held round trip shows it too
    assert not lim.slow_start and lim.limit == int(held * (1 + lim.tolerance) / 1.5)
    return lim


# ---------------------------------------------------------------- slow start
def test_slow_start_adds_one_per_answer_while_latency_stays_at_its_floor():
    lim = AdaptiveLimit(initial=4, maximum=64, window_min=8)
    feed(lim, 0.1, 4)
    assert lim.limit == 8  # doubles per round trip (4 answers at 4 in flight)
    feed(lim, 0.1, 8)
    assert lim.limit == 16 and lim.floor == pytest.approx(0.1) and lim.slow_start
    feed(lim, 0.1, 100)
    assert lim.limit == 64  # capped at the maximum


def test_slow_start_holds_on_a_queue_and_ignores_a_stall_shorter_than_a_round_trip():
    lim = AdaptiveLimit(initial=4, window_min=4)
    feed(lim, 0.1, 16)
    assert lim.limit == 20
    feed(lim, 0.3, 4)  # one window 3x slower: a stall of our own, or a queue
    held = lim.limit
    assert lim._hold == held - 1  # judge a round trip of answers (those in flight)...
    feed(lim, 0.1, lim._hold)  # ...under the held limit: at the floor, so it was a stall
    assert lim.limit == held and lim.slow_start and lim.decreases == 0
    feed(lim, 0.1, 4)
    assert lim.limit == held + 4  # growing again


def test_slow_start_exit_cuts_by_the_gradient_so_the_queue_it_built_drains():
    lim = AdaptiveLimit(initial=4, window_min=4, tolerance=0.1)
    feed(lim, 0.1, 16)
    feed(lim, 0.2, 4)
    held = lim.limit
    feed(lim, 0.2, lim._hold)  # held round trip at 2x the floor: a queue as large as what we send
    assert not lim.slow_start and lim.decreases == 1
    assert lim.limit == int(held * 1.1 / 2.0)  # limit x (1 + tolerance) / rho
    assert lim._skip == held - 1  # the answers to requests sent before the cut carry the old queue


# ---------------------------------------------------------------- the gradient step
def test_gradient_grows_by_the_tolerance_plus_a_sqrt_headroom_without_a_queue():
    lim = past_slow_start(tolerance=0.1, headroom=0.5)
    limit = lim._limit
    one_window(lim, 0.1)
    assert lim._limit == pytest.approx(limit * 1.1 + 0.5 * math.sqrt(limit))


def test_a_latency_rise_costs_a_cut_proportional_to_it_not_a_halving():
    lim = past_slow_start(tolerance=0.1, headroom=0.5, backoff=0.5)
    one_window(lim, 0.1)
    one_window(lim, 0.1)
    before = lim._limit
    one_window(lim, 0.15)  # one slow window alone: a stall of our own, not yet a cut
    assert lim._limit > before and lim.decreases == 1  # (the slow-start exit)
    before = lim._limit
    one_window(lim, 0.15)  # the second in a row: 1.5x the floor
    expected = before * 1.1 / 1.5 + 0.5 * math.sqrt(before)
    assert lim._limit == pytest.approx(expected) and lim.decreases == 2
    assert lim._limit > before * 0.5
    before = lim._limit
    one_window(lim, 1.0)  # 10x the floor: the cut is clamped at ``backoff``
    one_window(lim, 1.0)
    assert lim.limit <= int(before * 0.5 + 0.5 * math.sqrt(before)) + 1


def test_an_app_limited_client_does_not_grow():
    lim = past_slow_start()
    before = lim.limit
    feed(lim, 0.1, lim._skip + window(lim), in_flight=2)  # only 2 in flight: not what holds us back
    assert lim.limit == before
    one_window(lim, 0.1)
    assert lim.limit > before


def test_overload_backs_off_at_once_and_once_per_window():
    lim = AdaptiveLimit(initial=64, minimum=2, backoff=0.5)
    lim.on_overload(in_flight=64)  # a 429/503/timeout: no window needed
    assert lim.limit == 32 and lim.decreases == 1 and not lim.slow_start
    for _ in range(63):  # the other 63 requests of that window answer 429 too
        lim.on_overload(in_flight=64)
    assert lim.limit == 32 and lim.decreases == 1
    lim.on_overload(in_flight=32)  # a request sent after the decrease: a new signal
    assert lim.limit == 16 and lim.decreases == 2
    for _ in range(100):
        lim.on_overload(in_flight=1)
    assert lim.limit == 2  # never below the minimum
    assert lim.floor is None  # overloads say nothing about latency


# ---------------------------------------------------------------- the floor
def test_the_floor_falls_with_a_lower_window_and_a_higher_one_never_raises_it():
    lim = past_slow_start(rtt=0.2)
    one_window(lim, 0.1)
    assert lim.floor == pytest.approx(0.1)
    one_window(lim, 0.12)
    assert lim.floor == pytest.approx(0.1)


def test_a_drain_lowers_the_limit_for_one_window_and_takes_its_latency_as_the_floor():
    lim = past_slow_start(rtt=0.1, backoff=0.5)
    one_window(lim, 0.1)
    saved = lim._limit
    lim.drain(in_flight=lim.limit)
    assert lim.draining and lim.limit == int(saved * 0.5) and lim.drains == 1
    lim.drain(in_flight=lim.limit)  # during a drain: ignored
    assert lim.drains == 1
    # answers to requests sent before the drain are skipped, then one window of window_min
    feed(lim, 0.5, lim._skip)
    feed(lim, 0.08, lim.window_min)  # the others drained too: the true floor, lower than learnt
    assert lim.draining and lim.floor == pytest.approx(0.08)  # lower by over the tolerance:
    drain_window(lim, 0.08)  # one more cut, and the latency stays: that was the floor
    assert not lim.draining and lim._limit == saved and lim.floor == pytest.approx(0.08)
    assert lim.relearns == 0


def test_a_drain_that_finds_the_upstream_slower_relearns_the_floor():
    lim = past_slow_start(rtt=0.1)
    one_window(lim, 0.1)
    for _ in range(6):  # the upstream becomes 2x slower for good: cut against a stale floor
        one_window(lim, 0.2)
    cut = lim.limit
    assert cut < 20
    lim.drain(in_flight=lim.limit)
    drain_window(lim, 0.2)  # above the floor: cut once more to tell a queue from a slower upstream
    assert lim.draining and lim.limit == cut // 4 and lim.floor == pytest.approx(0.1)
    drain_window(lim, 0.2)  # as slow at a quarter of the limit: the upstream's own latency
    assert lim.floor == pytest.approx(0.2) and lim.relearns == 1 and lim.limit == cut
    for _ in range(8):
        one_window(lim, 0.2)
    assert lim.limit > 2 * cut  # no queue against the new floor: growing again


@pytest.mark.parametrize(
    "second",
    [
        0.15,  # the queue shrank with the second cut: a queue, not the upstream's latency
        0.4,  # it grew: other clients restored their limits; nothing to learn
    ],
)
def test_a_drain_that_finds_a_queue_keeps_the_floor(second):
    # The clients together kept more than twice the upstream's capacity in flight (one
    # learnt an inflated floor, say): halving every limit leaves a queue. Raising the floor to
    # it would let every client keep that queue for good, and the next drain would find it
    # again: the floor only rises when a second cut leaves the latency where it was.
    lim = past_slow_start(rtt=0.1)
    one_window(lim, 0.1)
    saved = lim._limit
    lim.drain(in_flight=lim.limit)
    drain_window(lim, 0.25)
    assert lim.draining
    drain_window(lim, second)
    assert not lim.draining and lim._limit == saved
    assert lim.floor == pytest.approx(0.1) and lim.relearns == 0


def test_a_drain_that_finds_the_floor_lower_keeps_cutting_while_it_falls():
    # A client that started while others kept a queue learnt a floor 3x the true one and
    # grew against it, keeping that queue itself. At its drain, each cut lowers the latency
    # further: the drain goes on until a cut no longer does, and one drain finds the floor.
    lim = past_slow_start(rtt=0.3, backoff=0.5)
    one_window(lim, 0.3)
    saved = lim._limit
    lim.drain(in_flight=lim.limit)
    drain_window(lim, 0.2)  # lower: the floor falls, and the drain goes on
    assert lim.draining and lim.floor == pytest.approx(0.2) and lim.limit == int(saved / 4)
    drain_window(lim, 0.1)
    assert lim.draining and lim.floor == pytest.approx(0.1)
    drain_window(lim, 0.097)  # within the tolerance of the last: found
    assert not lim.draining and lim._limit == saved and lim.floor == pytest.approx(0.097)
    assert lim.relearns == 0


def test_a_drain_before_any_floor_takes_its_window_as_the_floor():
    # An overload can end slow start before its first window: no floor yet. The transport
    # does not drain then (no floor, no period), but a direct call must not fail.
    lim = AdaptiveLimit(initial=8, window_min=4)
    lim.on_overload(in_flight=8)
    assert lim.floor is None and lim.drain_period() is None
    saved = lim._limit
    lim.drain(in_flight=0)
    drain_window(lim, 0.1)
    assert not lim.draining and lim.floor == pytest.approx(0.1) and lim._limit == saved


def test_a_stall_during_a_drain_is_not_a_slower_upstream():
    lim = past_slow_start(rtt=0.1)
    one_window(lim, 0.1)
    lim.drain(in_flight=lim.limit)
    feed(lim, 0.1, lim._skip)
    for k in range(lim.window_min):  # most answers of the drain window caught in a stall of ours
        lim.on_sample(0.1 if k < 3 else 0.3, lim.limit)
    assert not lim.draining and lim.relearns == 0 and lim.floor == pytest.approx(0.1)
    assert not lim.slow_start


def test_a_drain_lasts_about_one_round_trip_whatever_the_limit():
    # The drain window is at most one limit's worth of answers (one round trip), so a small
    # client does not still measure when a large one has restored its limit and its queue.
    lim = AdaptiveLimit(initial=8, window_min=16)
    feed(lim, 0.1, 16)  # one slow-start window: floor 0.1, limit 8 -> 24
    lim.on_overload(in_flight=1)  # out of slow start at 12
    assert not lim.slow_start and lim.limit == 12
    lim.drain(in_flight=lim.limit)
    assert lim.draining and lim.limit == 6
    feed(lim, 0.1, lim._skip)  # the answers to requests sent before the drain
    feed(lim, 0.1, 5)
    assert lim.draining
    feed(lim, 0.1, 1)  # six answers at the drained limit of six, not window_min (16): done
    assert not lim.draining and lim.limit == 12


@pytest.mark.parametrize("floor, period", [(0.025, 1.0), (0.1, 4.0), (0.4, 16.0), (3.0, 128.0)])
def test_the_drain_period_is_a_number_of_round_trips_rounded_up_to_a_power_of_two_seconds(floor, period):
    lim = AdaptiveLimit(drain_every_rtts=32)
    assert lim.drain_period() is None  # no floor yet
    feed(lim, floor, lim.window_min)
    assert lim.floor == pytest.approx(floor) and lim.drain_period() == period
    assert AdaptiveLimit(drain_every_rtts=0).drain_period() is None
    with pytest.raises(ValueError, match="drain_every_rtts"):
        AdaptiveLimit(drain_every_rtts=-1)


def test_drains_fall_due_at_period_boundaries_and_a_missed_one_is_skipped():
    lim = AdaptiveLimit(drain_every_rtts=32)
    feed(lim, 0.1, lim.window_min)  # floor 0.1 s: a drain every 4 s
    assert not lim.drain_due(1000.05)  # the first call only sets the mark
    assert not lim.drain_due(1003.9)  # same period
    assert lim.drain_due(1004.05)  # a boundary 50 ms ago, under two round trips
    assert not lim.drain_due(1004.1)  # once per boundary
    # Idle across a boundary (between training steps): the first answer after it comes
    # from the burst every client starts at once. Draining into it alone would measure
    # the burst's queue, so the boundary is skipped; the next one counts.
    assert not lim.drain_due(1013.0)
    assert lim.drain_due(1016.1)


def test_clients_with_different_floors_drain_at_shared_moments():
    # A client whose floor is inflated (2x) picks a period twice as long; each of its drains
    # falls on a boundary of the other's period, so when it drains, everyone does.
    fast, slow = AdaptiveLimit(), AdaptiveLimit()
    feed(fast, 0.1, fast.window_min)
    feed(slow, 0.2, slow.window_min)
    assert (fast.drain_period(), slow.drain_period()) == (4.0, 8.0)
    moments = {id(fast): [], id(slow): []}
    for k in range(1, 4000):  # 40 s of answers every 10 ms
        now = 2000.0 + k * 0.01
        for lim in (fast, slow):
            if lim.drain_due(now):
                moments[id(lim)].append(math.floor(now / lim.drain_period()) * lim.drain_period())
    assert len(moments[id(fast)]) == 9 and len(moments[id(slow)]) == 4  # 2004, 2008, ... 2036
    assert set(moments[id(slow)]) <= set(moments[id(fast)])


def test_a_drain_is_ignored_in_slow_start():
    lim = AdaptiveLimit()
    lim.drain(in_flight=4)
    assert not lim.draining and lim.drains == 0


def test_latency_that_stays_high_at_the_minimum_is_the_new_floor():
    lim = past_slow_start(rtt=0.1, minimum=1)
    while lim.limit > 1:
        one_window(lim, 0.4)
    one_window(lim, 0.4)
    assert lim.floor == pytest.approx(0.4) and lim.relearns == 1 and lim.slow_start


def test_limits_stay_within_bounds():
    lim = AdaptiveLimit(initial=3, minimum=3, maximum=5, window_min=1)
    for rtt in (0.1, 0.1, 0.1, 0.1, 1.0, 1.0, 1.0, 0.1, 0.1, 5.0):
        feed(lim, rtt, 5)
        lim.drain(5)
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
        {"tolerance": 1.0},
        {"headroom": -0.1},
        {"backoff": 1.0},
        {"backoff": 0.0},
        {"window_min": 0},
        {"quantile": 1.0},
        {"quantile": -0.1},
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
    assert lim.drains == lim.relearns == 0
    with pytest.raises(ValueError):
        FixedLimit(0)


# ---------------------------------------------------------------- several clients, one guard
def simulate(cap: int, joins: list[int], rounds: int, drain_every: int = 50, slower: tuple = ()):
    """A guard serving ``cap`` requests at once, ``service`` each; a queue beyond that.
    One round is one round trip: each active client gets its limit's worth of answers, all
    with the latency the guard's total load implies (``service * total / cap`` when queued).
    Client ``k`` starts at round ``joins[k]``; every ``drain_every`` rounds all clients drain
    (the transport's wall-clock epochs); ``slower = (round, factor)`` slows the guard's
    service from then on (a replica getting slower). Returns per-round (total, limits)."""
    clients = [AdaptiveLimit() for _ in joins]
    history = []
    for r in range(rounds):
        service = slower[1] if slower and r >= slower[0] else 1.0
        active = [c for c, j in zip(clients, joins) if r >= j]
        total = sum(c.limit for c in active)
        rtt = service * max(1.0, total / cap)
        for c in active:
            feed(c, rtt, c.limit)
        if r % drain_every == drain_every - 1:
            for c in active:
                c.drain(c.limit)
        history.append((total, [c.limit if r >= j else 0 for c, j in zip(clients, joins)]))
    return history


def judge(history, cap: int, start: int, end: int | None = None):
    part = history[start:end]
    utilisation = sum(min(1.0, total / cap) for total, _ in part) / len(part)
    mean_queue = sum(max(0, total - cap) for total, _ in part) / len(part)
    n = len(part[0][1])
    mean_limits = [sum(h[1][k] for h in part) / len(part) for k in range(n)]
    return utilisation, mean_queue, mean_limits


@pytest.mark.parametrize(
    "cap, joins",
    [
        (128, [0, 0]),  # two reward workers started together
        (32, [0, 0, 0, 0]),  # four workers on a small guard
        (128, [0, 100]),  # a second worker joins a guard the first one already fills
        (512, [0, 100]),
        (128, [0, 0, 50, 150]),
        (512, [0, 3, 6, 9]),  # four workers starting a few round trips apart on a large guard
    ],
)
def test_independent_clients_converge_to_a_fair_share_of_one_guard(cap, joins):
    # A late joiner first learns a floor inflated by the others' queue; the drains, which
    # all clients make at the same moments, show everyone the true floor.
    history = simulate(cap, joins, rounds=3000)
    utilisation, mean_queue, mean_limits = judge(history, cap, 1000)
    assert max(mean_limits) / min(mean_limits) <= 1.1, mean_limits  # a fair share
    assert utilisation >= 0.95  # the guard stays busy (drains included)
    assert mean_queue <= cap / 2  # and its wait queue bounded: at most half its cap on average


def test_staggered_starts_on_a_large_guard_do_not_leave_a_standing_queue():
    # issue 11's failure: 4 workers at cap 512, the late ones learnt a floor inflated by the
    # early ones' slow-start overshoot; one ended at limit_max with the guard queue at 1.2 x cap.
    history = simulate(512, [0, 3, 6, 9], rounds=300)
    utilisation, mean_queue, mean_limits = judge(history, 512, 60)
    assert utilisation >= 0.95 and mean_queue <= 512 / 2
    assert max(total for total, _ in history[60:]) <= 2 * 512
    assert max(mean_limits) < 1024 / 2


def test_a_guard_that_gets_slower_keeps_being_used():
    # The replica's service time doubles at round 620: latency doubles with no queue. The
    # limits are cut against the old floor until the next drain re-measures it; then they
    # grow back to fill the slower guard.
    cap = 64
    history = simulate(cap, [0, 0, 0, 0], rounds=1200, slower=(620, 2.0))
    before, _, _ = judge(history, cap, 300, 620)
    after, queue_after, limits_after = judge(history, cap, 700)
    assert before >= 0.95 and after >= 0.95 and queue_after <= cap / 2
    assert max(limits_after) / min(limits_after) <= 1.1


def test_a_lone_client_finds_the_guard_capacity_it_was_not_told():
    for cap in (32, 128, 512):
        history = simulate(cap, [0], rounds=600)
        utilisation, mean_queue, _ = judge(history, cap, 300)
        assert utilisation >= 0.95 and mean_queue <= cap / 2
