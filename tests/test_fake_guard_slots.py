"""The fake guard's slot model (``FakeOpenAIState.reserve``): the arithmetic behind every
benchmark ceiling, driven with numbers (no clocks, no server)."""

import math

import pytest

from sinternal_verl.testing.fake_openai import FakeOpenAIState


def test_requests_wait_for_the_earliest_free_slot():
    state = FakeOpenAIState(service_time_s=1.0, max_concurrency=2)
    assert state.reserve(0.0) == (0.0, 1.0)
    assert state.reserve(0.2) == (0.2, 1.2)
    # both slots busy: the third waits for the one that frees first, the fourth for the next
    assert state.reserve(0.5) == (1.0, 2.0)
    assert state.reserve(0.5) == (1.2, 2.2)
    # a slot free before arrival: it starts at once
    assert state.reserve(5.0) == (5.0, 6.0)


def test_the_running_count_is_the_schedule_s_at_most_the_cap():
    # What /metrics reports as vllm:num_requests_running. Counting request handlers instead
    # read 5 on 4 slots once on a loaded host: a slot's next request woke before the one it
    # follows had left.
    state = FakeOpenAIState(1.0, 2)
    for _ in range(3):  # two start at 0, the third at 1 in the first slot to free
        state.reserve(0.0)
    assert [state.running(t) for t in (0.5, 1.5, 2.5)] == [2, 1, 0]
    assert FakeOpenAIState(1.0, None).running(0.5) == 0  # no cap: the handlers in flight


def test_no_cap_starts_everything_at_once():
    state = FakeOpenAIState(service_time_s=0.5)
    assert [state.reserve(0.0) for _ in range(3)] == [(0.0, 0.5)] * 3


def test_jitter_spreads_service_times_around_the_same_mean():
    """With jitter the batch is not in lockstep, but the ceiling C / S stays: the mean
    service time is S; and it is seeded, so two guards draw the same times."""
    a = FakeOpenAIState(service_time_s=0.4, max_concurrency=512, service_jitter=0.2)
    b = FakeOpenAIState(service_time_s=0.4, max_concurrency=512, service_jitter=0.2)
    times = [a.service() for _ in range(10_000)]
    assert times[:100] == [b.service() for _ in range(100)]
    assert min(times) >= 0.4 * 0.8 and max(times) <= 0.4 * 1.2
    assert max(times) - min(times) > 0.4 * 0.35  # it does spread
    assert sum(times) / len(times) == pytest.approx(0.4, rel=0.01)
    start, finish = a.reserve(3.0)
    assert start == 3.0 and 0.32 <= finish - start <= 0.48
    assert FakeOpenAIState(service_time_s=0.4).service() == 0.4  # no jitter: exactly S


def test_lognormal_service_times_have_a_heavy_tail_and_the_same_mean():
    a = FakeOpenAIState(service_time_s=0.1, max_concurrency=128, service_sigma=1.0, seed=3)
    b = FakeOpenAIState(service_time_s=0.1, max_concurrency=128, service_sigma=1.0, seed=3)
    times = [a.service() for _ in range(50_000)]
    assert times[:100] == [b.service() for _ in range(100)]  # seeded
    assert sum(times) / len(times) == pytest.approx(0.1, rel=0.05)  # the ceiling stays C / S
    times.sort()
    assert times[len(times) // 2] == pytest.approx(0.1 * math.exp(-0.5), rel=0.05)  # median below the mean
    assert times[int(0.99 * len(times))] > 5 * 0.1  # one in a hundred over five times the mean
    with pytest.raises(ValueError, match="service_sigma"):
        FakeOpenAIState(service_time_s=0.1, service_sigma=-1.0)
    with pytest.raises(ValueError, match="set one"):
        FakeOpenAIState(service_time_s=0.1, service_jitter=0.2, service_sigma=0.5)


@pytest.mark.parametrize("jitter", [-0.1, 1.0])
def test_jitter_out_of_range_is_refused(jitter):
    with pytest.raises(ValueError, match="service_jitter"):
        FakeOpenAIState(service_time_s=0.4, service_jitter=jitter)


def test_growth_lengthens_a_request_by_the_slots_busy_at_its_start():
    """An engine whose step gets longer with its batch: x (1 + g * busy / C). Latency then
    rises with load before anything waits, and a full batch serves fewer per second."""
    state = FakeOpenAIState(service_time_s=1.0, max_concurrency=4, service_growth=1.0)
    assert state.reserve(0.0) == (0.0, 1.0)  # alone
    assert state.reserve(0.0) == (0.0, 1.25)  # one other busy
    assert state.reserve(0.0) == (0.0, 1.5)
    assert state.reserve(0.0) == (0.0, 1.75)
    # full: waits for the first slot to free (at 1.0); three others still busy then
    assert state.reserve(0.5) == (1.0, 2.75)
    # a slot whose request finished before this one starts is not busy
    assert state.reserve(10.0) == (10.0, 11.0)
    with pytest.raises(ValueError, match="service_growth must be >= 0"):
        FakeOpenAIState(service_time_s=1.0, max_concurrency=4, service_growth=-0.5)
    with pytest.raises(ValueError, match="needs max_concurrency"):
        FakeOpenAIState(service_time_s=1.0, service_growth=0.5)
