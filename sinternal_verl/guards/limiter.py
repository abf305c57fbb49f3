"""Concurrency limits per upstream URL: adaptive (latency-driven) or fixed.

Why adaptive: the number of requests a guard deployment can serve at once (vLLM
``--max-num-seqs`` x replicas, shared with other jobs) is unknown to the trainer and changes
while it runs. Too few requests in flight starve the guard; too many only queue inside it,
latency climbs towards the timeout and retries pile on. The limit is therefore *measured*,
the way TCP measures a congestion window.

The design follows the established delay-based controllers (Envoy's adaptive-concurrency
gradient controller, Netflix ``concurrency-limits`` Gradient2, FAST TCP, TCP slow start with
HyStart's delay exit), reduced to what this transport needs:

* **Signal: latency over its floor.** ``rho = window latency / floor``. With ``L`` requests
  in flight and a queue in front of the server, Vegas' estimate of the queue we cause is
  ``L * (1 - 1/rho)``. A window's latency is its *mean*: a queue of ``q`` requests in front
  of ``C`` busy slots adds ``q / C`` service times to the mean whatever the service times
  are (Little's law), while a quantile of a guard whose batches run in step does not move
  until half the requests wait. A stall of the client's own (GC, a descheduled process)
  moves one window's mean, not two in a row (below).
* **The floor** (the no-load latency) is the lowest of the windows' means, each plus
  ``noise_z`` standard errors (raised only by a drain that finds the upstream slower, or at
  the minimum limit: below). A guard's service times vary with prompt length, so
  window means are noisy, and the lowest of many noisy means lies below the guard's real
  no-load latency: taken as the floor, it made every later window look like a queue, and
  the limit fell to its minimum (0.07 of the guard at 100 ms +-50 %). Vector's adaptive
  request concurrency scales its latency threshold by the observed deviation for the same
  reason.
* **Windows are cohorts of requests, not seconds**: one window is the next
  ``max(window_min, limit)`` requests sent (about one round trip at the limit), judged when
  every one of them has answered, in send order. A window closed after its first answers
  holds the fastest of whatever was sent at once (a step's opening burst, slow start's
  rounds): against varying service times, a floor that low again. A step's last window,
  left part-sent when the work runs out, is judged when the client goes idle if it holds
  ``window_min`` answers (``_answered`` says why). Each request carries a
  ticket (``on_send``); after a cut the answers to requests sent before it are ignored. So
  the arithmetic is a pure function of the samples it is fed (tests drive it with numbers,
  no clocks).
* **Slow start** (TCP's): one more per answer, so the limit doubles per round trip with no
  gap between rounds, judged every ``window_min`` requests. At the first window with
  ``rho > 1 + tolerance`` the limit is held for one round trip of answers; if those show the
  queue too (a stall does not last a round trip), the limit is cut to
  ``limit * (1 + tolerance) / rho`` at once, so clients that started together drain the
  queue they built instead of leaving it for a late starter to mistake for the floor. Where
  the server publishes its counts, a reading that shows it holding under half of what this
  client has out holds the limit the same way: the rest waits where the counts do not see
  (a front end taking a burst in), and the latency of the held round trip judges it.
* **Then a gradient step per window** (FAST TCP; Envoy and Gradient2 have the same shape):
  ``limit <- limit * clamp((1 + tolerance) / rho, backoff, 1 + tolerance)
  + headroom * sqrt(limit)``. It settles where each client keeps about
  ``tolerance * limit + headroom * sqrt(limit)`` requests queued: enough that the upstream
  does not idle, small against its capacity. A rise in latency costs a cut proportional to
  it, not a halving (which leaves the upstream idle until the limit grows back); growth
  without a queue is ``1 + tolerance`` per window; nothing grows while the caller is
  app-limited (fewer than half the limit in flight). A cut needs two windows in a row to
  show the queue: a stall of our own can fill one short window, not two.
* **Overload answers** (429, 503, timeout, refused connection) cut by ``backoff`` *at once*,
  at most once per window.
* **Fair share without coordination**: clients of one upstream see the same queue, hence
  the same ``rho``. The proportional part keeps their ratios; the sub-linear headroom is
  the same additive force for everyone, so the limits converge to equal values (FAST TCP's
  alpha; Chiu & Jain 1989 for additive terms beside multiplicative ones), which the
  deterministic simulation in the tests checks.
* **A step's tail is not kept** (``_resume``). When the other clients of an upstream finish
  a training step first, one still busy grows into the room they leave; when it next sends
  after idling (the next step, which verl starts in every reward worker at once), its limit
  is capped at the median of what its windows left while it was busy. Kept, the borrowed
  share met the others' return as a queue, the common cut kept every share, and the steps
  alternated between workers finishing early and late (in the simulation, 4 workers at
  cap 32 after three steps: the guard's queue 0.41-0.49 x cap without the cap, 0.32-0.35
  with it). A drain it went idle in is given up: the next step's opening burst is no drain.
  Nor is that burst's window a queue to cut for: hundreds of requests sent at once wait for
  the client's and the upstream's CPU, and read with the previous step's last window as two
  windows in a row, it cut a lone client under the guard's batch (the real benchmark at cap
  512 x 1, nine interleaved pairs: 4 met the target with that cut, 9 without). The opening
  window may grow the limit, never cut it, and the next window is judged alone.
* **Drains re-measure the floor** (Envoy's periodic minRTT window, BBR's ProbeRTT). A client
  that starts while others keep a queue learns an inflated floor and would keep a queue of
  its own for good; a replica that gets slower would be cut towards nothing against a floor
  it can no longer reach. So, at the same wall-clock moments in every process (every
  ``drain_every_rtts`` round trips at the floor, and at most once every ``drain_min_s``,
  rounded up to a power-of-two number of seconds: ``drain_period``, ``drain_due``), each
  limit drops for one window (about one round trip) and takes its latency as its floor when
  it is lower. The drains
  coincide on purpose (no jitter): one client draining alone would measure the others'
  queue; all of them draining empties it. Hence also: a drain window is at most one limit's
  worth of requests (a small client must not still be measuring when a large one has
  restored its limit), and a boundary a client notices late (it was idle, e.g. between
  training steps, and its first answers come from the burst every client starts at once) is
  skipped. A drain window off the floor by more than the tolerance cuts once more and looks
  again: above it, the floor rises only if the next window is as slow (a queue falls with
  the cut, a slower upstream does not; and only if even the fastest answer is above: a stall
  of our own spares some); below it, the drain goes on cutting while the floor keeps falling
  (``_judge_drain_window``); within the tolerance, a window above the floor beyond its noise
  raises it (an engine whose step grows with its batch is slower at the drained load
  without any queue, and that is the latency to compare with). A drain to the share the
  floor allows is also a test of what the latency above the floor is: a queue empties at
  that share and the latency falls to the floor, while an engine slower with a larger
  batch (vLLM's step) only gets a little faster. When the drain's first window fell less
  than half the way to the floor, there was no queue to drain and the floor is raised to
  that window: against the empty engine's floor the gradient held a guard twice as slow at
  a full batch at about half of what a fixed bound of twice its batch got.
  How far a drain drops: by ``backoff`` (a *deep* drain) until one confirmed the floor (its
  last window within the tolerance of it); from then on to ``limit * floor / latency``, the
  share at which the upstream's queue would be empty if the floor is right. A deep drain
  halves the upstream's load for a round trip, every 32 round trips: 1.5 % of the
  throughput, and at a 25 ms guard three times in a 3 s training step (the simulation: cap
  32 x 1 worker 0.975 of the ceiling with deep drains only, 0.996 with this). Only a deep
  one finds a floor *every* client learnt behind a queue (many workers starting at once
  against a small guard): a drain to the share the wrong floor allows keeps that queue (the
  simulation: cap 32 x 8 workers, a queue of 0.87 x cap with such drains only, 0.44 with
  this). So a floor that moved by more than the tolerance outside a deep drain (a window far
  below it, a re-learn at the minimum, slow start's) is checked by a deep drain again.
  Latency that stays high at the minimum limit is taken as the floor too, and slow start
  finds the limit that fits it.

**Or the server's own counts** (``observe_upstream``; the transport's ``limit_signal:
server_counts``, its default where a server publishes them). vLLM and SGLang publish the
requests in their running batch and those waiting for it. Latency says only *that* a server
queues, and at a large limit the headroom term evens shares out slowly (2 % of a difference
per window at a limit of 150): four workers at cap 512 finished a step a round trip apart,
and the step took a ninth wave.
The counts say how much, and every client of the server reads the same two numbers. So the
rule is FAST TCP's equilibrium computed from them: a client with ``L`` in flight owns about
``L x waiting / (running + waiting)`` of the queue, and the ``L`` at which that is its share
``alpha`` (``counts_share`` x the batch) is ``alpha x (running + waiting) / waiting``, the
same target for every client. Each reading (``counts_every_s`` apart, smoothed over about a
round trip: a wave of answers empties the queue for an instant) moves the limit
``counts_gain`` of the way there, so the shares meet at that rate per reading whatever the
limit. With nothing waiting there is no such ``L``, and the limit grows to fill the slots
that idle: ``L x (batch + alpha) / (running + waiting)``. Either way the limit at most doubles
per round trip of readings (``2 ** (counts_every_s / floor)`` per reading). The batch is the
most running seen while some waited; until a queue has been seen the latency rules above
run, slow start included, and from then on the counts steer alone (no gradient, no drains;
the floor only sets how many readings make a round trip). The cost:
``k`` clients keep ``k x counts_share`` of the batch queued, so the transport hands each of a
job's ``k`` clients ``1 / k`` of the job's share (``limit_counts_share`` 0.4 over
``limit_counts_clients``, verl's ``reward.num_workers``). Behind a load balancer
``/metrics`` is one replica's: every count is a fraction of the whole, and the rule, made of
ratios, keeps ``1 / replicas`` of the intended queue (a cautious error, not a flood).

**A batch's last round trip goes at once** (``tail``, read by the transport as
``tail_room``). A limit bounds what a client keeps in flight while it has more work than that.
When the callers still waiting for room and those in flight fit in ``limit + tail x limit``
(the rest of a training step's batch fits in about one more round trip), the transport sends them all, and the
server's queue holds them instead of the client. Why: a step ends when its last request is
answered, and the clients of one guard do not run out of work together. Those that finish
leave slots the others' limits are too small to fill, while the last client holds its final
requests back for a round trip or two; the counts' idle-filling growth takes several readings
to catch up. Sent, those requests take the freed slots at once. In the simulation at cap 512 x
4 workers (five conditions x 1 / 3 warm-up steps, 10 seeds each), 35 of 100 seeds met both
targets without this and 90 of 100 with it; over the whole matrix, 1196 -> 1256 of 1440. The
price is at most ``tail x limit`` more requests queued at the server for the step's last round
trip (8 workers at cap 512 with jittered service times: the mean queue 0.40 -> 0.51 x cap). The
transport releases once per burst of work (again only after a caller found room without
waiting), so a steady stream is held by the limit as before. ``tail = 0``, or the fixed mode,
keeps the limit a hard bound.

Young Python packages exist (``aimd-limiter`` limits a *rate* with no latency signal;
``ace-concurrency`` steers by local CPU/memory); neither reads upstream latency or 429s,
hence this small module.
"""

from __future__ import annotations

import bisect
import collections
import math
import statistics

__all__ = ["AdaptiveLimit", "FixedLimit", "Limit"]

#: the most gradient windows one busy period is remembered by (``_resume``): a bound on the
#: memory of a client that is never idle (a reward server under steady load), far above a
#: training step's count (about one window per round trip: 1024 is 100 s at 100 ms)
_BUSY_WINDOWS = 1024


class _Cohort:
    """One window: the requests with tickets ``first`` to ``end - 1``."""

    __slots__ = ("first", "end", "outstanding", "samples", "peak")

    def __init__(self, first: int, end: int):
        self.first, self.end = first, end
        self.outstanding = 0  # sent and not answered yet
        self.samples: list[float] = []
        self.peak = 0  # most requests in flight at an answer


def _first(c: _Cohort) -> int:
    return c.first


class FixedLimit:
    """A constant bound: the explicit ``concurrency: fixed`` mode. Ignores samples."""

    adaptive = False
    #: a fixed bound is a hard one: no request goes beyond it, not even a batch's last
    tail_room = 0

    def __init__(self, limit: int):
        if limit < 1:
            raise ValueError(f"a fixed concurrency limit must be >= 1, got {limit}")
        self.limit = self.minimum = self.maximum = int(limit)
        self.floor: float | None = None
        self.latency: float | None = None
        self.increases = self.decreases = self.drains = self.relearns = self.windows = 0

    def on_send(self) -> int:
        return 0

    def on_sample(self, rtt: float, in_flight: int, ticket: int) -> None:
        pass

    def on_overload(self, ticket: int) -> None:
        pass

    def on_drop(self, in_flight: int, ticket: int) -> None:
        pass


class AdaptiveLimit:
    """Latency-driven limit of requests in flight to one upstream. See the module docstring.

    The transport takes a ticket with ``on_send()`` for every request it sends and hands it
    back with the outcome: ``on_sample(latency_s, in_flight, ticket)`` for an answer,
    ``on_overload(ticket)`` for a 429/503/timeout, ``on_drop(in_flight, ticket)``
    for anything else; it reads ``limit``. ``in_flight`` is the number of this client's
    requests outstanding to the upstream when the outcome arrived, this one included.
    ``drain()`` re-measures the floor (the transport calls it for every client at the same
    wall-clock moments, ``drain_due``).
    """

    adaptive = True

    def __init__(
        self,
        initial: int = 4,
        minimum: int = 1,
        maximum: int = 1024,
        *,
        tolerance: float = 0.1,
        headroom: float = 0.5,
        backoff: float = 0.5,
        window_min: int = 16,
        drain_every_rtts: float = 32.0,
        drain_min_s: float = 1.0,
        noise_z: float = 2.0,
        counts_share: float = 0.1,
        counts_gain: float = 0.03,
        counts_every_s: float = 0.05,
        tail: float = 1.0,
    ):
        if not 1 <= minimum <= initial <= maximum:
            raise ValueError(f"need 1 <= minimum <= initial <= maximum, got {minimum}, {initial}, {maximum}")
        if not 0 < tolerance < 1:
            raise ValueError(f"tolerance must be in (0, 1), got {tolerance}")
        if not headroom >= 0:
            raise ValueError(f"headroom must be >= 0, got {headroom}")
        if not 0 < backoff < 1:
            raise ValueError(f"backoff must be in (0, 1), got {backoff}")
        if window_min < 1:
            raise ValueError(f"window_min must be >= 1, got {window_min}")
        self.minimum = int(minimum)
        self.maximum = int(maximum)
        self.tolerance = float(tolerance)
        self.headroom = float(headroom)
        self.backoff = float(backoff)
        self.window_min = int(window_min)
        if not noise_z >= 0:
            raise ValueError(f"noise_z must be >= 0, got {noise_z}")
        self.noise_z = float(noise_z)
        if not drain_every_rtts >= 0:
            raise ValueError(f"drain_every_rtts must be >= 0, got {drain_every_rtts}")
        self.drain_every_rtts = float(drain_every_rtts)
        if not drain_min_s >= 0:
            raise ValueError(f"drain_min_s must be >= 0, got {drain_min_s}")
        self.drain_min_s = float(drain_min_s)
        if not counts_share > 0:
            raise ValueError(f"counts_share must be > 0, got {counts_share}")
        if not 0 < counts_gain <= 1:
            raise ValueError(f"counts_gain must be in (0, 1], got {counts_gain}")
        if not counts_every_s > 0:
            raise ValueError(f"counts_every_s must be > 0, got {counts_every_s}")
        self.counts_share = float(counts_share)
        self.counts_gain = float(counts_gain)
        self.counts_every_s = float(counts_every_s)
        if not tail >= 0:
            raise ValueError(f"tail must be >= 0, got {tail}")
        self.tail = float(tail)
        #: the readings smoothed over about one round trip: (running, waiting)
        self._counts: tuple[float, float] | None = None
        #: the server's batch from its own counts: the most running while some waited (0: none
        #: seen, and latency steers; ``observe_upstream``)
        self.slots = 0
        #: readings of the server's counts so far
        self.readings = 0
        #: the wall-clock boundary (seconds) of the last drain period seen (see ``drain_due``)
        self._drain_mark: float | None = None
        self._limit = float(initial)
        self._slow_start = True
        #: answers in the slow-start window that holds the limit to confirm a queue (0: growing)
        self._hold = 0
        #: the no-load latency estimate: the lowest window mean + noise_z standard errors
        self._floor: float | None = None
        #: tickets handed out (``on_send``): this client's requests numbered in send order
        self._sent = 0
        #: answers to requests sent before this ticket carry a queue built under a limit since
        #: cut: they say nothing about the new one and are ignored
        self._cut_from = 0
        #: the windows being measured: cohorts of consecutive tickets, in send order
        self._cohorts: list[_Cohort] = []
        #: the limit to restore after the drain window in progress (None: not draining)
        self._drain_saved: float | None = None
        #: the latency of a drain's previous window when it cut once more (None: first window)
        self._drain_first: float | None = None
        #: has a deep drain (by ``backoff``) confirmed the floor since it last moved by more
        #: than the tolerance? Until then drains are deep (module docstring)
        self._floor_checked = False
        #: the fastest answer of the last window
        self._fastest = 0.0
        #: the previous window's latency (a cut needs two windows in a row to show a queue)
        self._prev_latency: float | None = None
        #: last window's latency (its mean, seconds)
        self.latency: float | None = None
        #: increases and decreases (latency and overload) so far, drains, and floor re-learns
        #: (at a drain or at the minimum) that found the floor higher than it was
        self.increases = 0
        self.decreases = 0
        self.drains = 0
        self.relearns = 0
        #: windows judged so far
        self.windows = 0
        #: requests sent and not yet answered, overloaded or dropped (0: the client is idle)
        self._outstanding = 0
        #: the limit each gradient window left, since the client was last idle (``_resume``)
        self._busy_limits: collections.deque[float] = collections.deque(maxlen=_BUSY_WINDOWS)
        #: is the next window judged the first since the client was idle (``_resume``)?
        self._opening = False

    # ------------------------------------------------------------------ reading
    @property
    def limit(self) -> int:
        return max(self.minimum, int(self._limit))

    @property
    def tail_room(self) -> int:
        """How many requests beyond the limit a batch's last callers may take: when those
        waiting for room and those in flight fit in ``limit + tail_room``, the transport sends
        them all (module docstring: "A batch's last round trip goes at once")."""
        return int(self.tail * self.limit)

    @property
    def floor(self) -> float | None:
        """The no-load latency estimate (seconds), ``None`` before the first window."""
        return self._floor

    @property
    def slow_start(self) -> bool:
        return self._slow_start

    @property
    def draining(self) -> bool:
        """Is the current window a drain (the limit lowered to re-measure the floor)?"""
        return self._drain_saved is not None

    # ------------------------------------------------------------------ feeding
    def on_send(self) -> int:
        """A request is about to be sent: its ticket, to pass back with its outcome
        (:meth:`on_sample`, :meth:`on_overload` or :meth:`on_drop`). Tickets make windows
        cohorts of consecutive requests (module docstring: why not the first answers)."""
        if not self._outstanding:
            self._resume()
        self._outstanding += 1
        ticket = self._sent
        self._sent += 1
        cohorts = self._cohorts
        if not cohorts or ticket >= cohorts[-1].end:
            if self._slow_start:
                size = self._hold or self.window_min
            elif self._drain_saved is not None:
                size = max(2, min(self.window_min, self.limit))
            else:
                size = max(self.window_min, self.limit)
            cohorts.append(_Cohort(ticket, ticket + size))
        cohorts[-1].outstanding += 1
        return ticket

    def on_sample(self, rtt: float, in_flight: int, ticket: int) -> None:
        """Request ``ticket`` was answered: ``rtt`` seconds from send to the full answer.
        ``in_flight``: this client's requests outstanding to the upstream, this one included."""
        if not rtt > 0 or math.isinf(rtt):
            raise ValueError(f"latency sample must be a positive finite number of seconds, got {rtt!r}")
        self._outstanding -= 1
        if ticket < self._cut_from:
            return
        if self._slow_start and not self._hold and 2 * in_flight >= self._limit:
            self._limit = min(self._limit + 1.0, float(self.maximum))  # not app-limited: one more per answer
        self._answered(ticket, in_flight, rtt)

    def on_overload(self, ticket: int) -> None:
        """Request ``ticket`` found the upstream overloaded (429/503), timed out or was
        refused a connection: decrease at once, once per window (requests sent before the
        decrease say nothing new)."""
        self._outstanding -= 1
        if ticket < self._cut_from:
            return
        if self._drain_saved is not None:  # an overload ends a drain: cut from where it started
            self._limit, self._drain_saved, self._drain_first = self._drain_saved, None, None
        self._slow_start = False
        self._hold = 0
        self.decreases += 1
        self._set(max(float(self.minimum), self._limit * self.backoff))
        self._prev_latency = None

    def on_drop(self, in_flight: int, ticket: int) -> None:
        """Request ``ticket`` ended without a latency or an overload (another error, or the
        caller cancelled it): its window no longer waits for it."""
        self._outstanding -= 1
        if ticket >= self._cut_from:
            self._answered(ticket, in_flight, None)

    def observe_upstream(self, running: int, waiting: int) -> None:
        """One reading of the server's own counts (every client's requests): ``running`` in
        its batch, ``waiting`` for it (vLLM's ``vllm:num_requests_running`` and
        ``vllm:num_requests_waiting``). Once a queue has been seen these steer the limit
        instead of latency (module docstring: "Or the server's own counts")."""
        if running < 0 or waiting < 0:
            raise ValueError(f"server counts must be >= 0, got running={running}, waiting={waiting}")
        self.readings += 1
        if waiting > 0 and running > self.slots:
            self.slots = running
        if not self.slots:
            if (
                self._slow_start
                and not self._hold
                and self._outstanding >= self.window_min
                and 2 * (running + waiting) < self._outstanding
            ):
                # The server holds under half of what this client has out: the rest waits
                # where its counts do not see (its front end, or our own sends), and slow
                # start's growth would only lengthen that queue. Hold as a risen latency does,
                # and let the held round trip's latency judge.
                self._hold_a_round_trip(self._outstanding)
            return
        self._slow_start = False
        self._hold = 0
        if self._drain_saved is not None:  # the counts steer from here: no drains
            self._limit, self._drain_saved, self._drain_first = self._drain_saved, None, None
        limit = self._limit
        if 2 * self._outstanding < limit:
            return  # app-limited: no evidence the server could take more
        weight = min(1.0, self.counts_every_s / self._floor) if self._floor else 1.0
        if self._counts is not None:  # over about a round trip: a wave of answers empties
            # the queue for an instant
            r0, w0 = self._counts
            running, waiting = r0 + weight * (running - r0), w0 + weight * (waiting - w0)
        self._counts = (running, waiting)
        total = running + waiting
        alpha = max(1.0, self.counts_share * self.slots)
        if waiting:
            target = alpha * total / waiting  # the same for every client that reads these counts
        else:  # slots idle: fill them, every client by the same factor
            target = limit * min(2.0, (self.slots + alpha) / max(total, 1))
        new = limit + self.counts_gain * (target - limit)
        # At most doubling per round trip (``weight`` of one per reading), as slow start: a
        # reading comes before the last one's sends show in the counts, and a queue of one
        # against a share of 51 asks for a fiftyfold (the reward server at cap 128, its
        # stream resuming: the limit 130 -> 260 -> 460 in two readings, 0.58 x cap queued).
        grow = 2.0**weight
        self._limit = min(max(new, 0.5 * limit, float(self.minimum)), grow * limit, float(self.maximum))
        self._busy_limits.append(self._limit)  # ``_resume`` caps the next step's at their median

    def forget_upstream(self) -> None:
        """The server's counts stopped (its ``/metrics`` failed): latency steers again from
        the current limit, with the floor it had."""
        if self.slots:
            self.slots = 0
            self._counts = None
            self._prev_latency = None
            self._restart_windows()

    def _answered(self, ticket: int, in_flight: int, rtt: float | None) -> None:
        cohorts = self._cohorts
        k = bisect.bisect_right(cohorts, ticket, key=_first) - 1
        if k < 0 or ticket >= cohorts[k].end:
            return  # a window already dropped
        c = cohorts[k]
        c.outstanding -= 1
        if rtt is not None:
            c.samples.append(rtt)
            if in_flight > c.peak:
                c.peak = in_flight
        # Judge windows in send order, each once every request of it was sent and answered.
        # Judging a later window that completed first would favour windows without a slow
        # request. A request still out when two later windows are complete is an outlier (a
        # hung connection waits for the timeout): its window is judged without it rather
        # than stall every later one.
        while cohorts and (self._complete(cohorts[0]) or self._overtaken(cohorts)):
            self._judge(cohorts.pop(0), in_flight)
        # The client went idle (a training step's work is done) with its last window
        # part-sent. With a short window's worth of answers it is judged now: it is the
        # step's last word on the queue. Left to fill at the next step, a client whose last
        # window showed a queue kept the limit that built it into the next step, where every
        # client starts at once (simulation, 4 workers at cap 512 starting up to 0.1 s
        # apart: limits up to 3.8 x apart after the first step, the next one at 0.77 of the
        # guard's ceiling; judged here, 0.87). Fewer answers still fill at the next step.
        if not self._outstanding and cohorts and len(cohorts[0].samples) >= self.window_min:
            self._judge(cohorts.pop(0), in_flight)

    def _judge(self, c: _Cohort, in_flight: int) -> None:
        if not c.samples:
            return
        opening, self._opening = self._opening, False
        if self._slow_start:
            self._end_startup_window(c, in_flight)
        else:
            self._end_window(c, opening)

    def _complete(self, c: _Cohort) -> bool:
        return not c.outstanding and self._sent >= c.end

    def _overtaken(self, cohorts: list[_Cohort]) -> bool:
        return len(cohorts) > 2 and self._complete(cohorts[1]) and self._complete(cohorts[2])

    def _resume(self) -> None:
        """The first request after the client was idle (nothing in flight): typically the
        next training step, which every client of the upstream starts at once. The limit is
        capped at the median of those its gradient windows left since it was last idle.

        Why: at the end of a step the clients that finish first leave the upstream to the
        others, which grow into the room (rightly: the guard would idle otherwise). That
        growth is borrowed. At the next step every client comes back at once, the borrowed
        share is a queue, and the cut it causes scales every client's limit by the same
        factor, so the share stays: the client that finished last now holds the most,
        finishes first, and the others borrow in their turn, while the guard idles in every
        step's tail. The median of a step's windows is the share held while every client was
        busy: the tail is the minority of a step's windows.

        A drain the client went idle in (the step ended inside it) is given up, its limit
        restored before the cap: a drain is measured while every client drains together, and
        what comes next is the step's opening burst, whose queue the drain window read as a
        queue that would not empty and cut again (simulation, 4 workers at cap 512 whose
        steps start up to 0.05 s apart, three steps in: 0.79 of the ceiling kept; 0.83 given
        up; in one seed a worker came into the next step draining at half its limit, cut it
        to a quarter there, and finished a second after the others). Not at a limit of 1:
        there every answer leaves nothing in flight until the next send, busy or not.

        The first window judged from here (the step's opening burst) does not cut, and the
        window after it is judged alone (``_end_window``): the burst's latency holds the
        client's and the upstream's CPU for hundreds of requests sent at once (575 ms at cap
        512 x 1 where the guard's waves account for 446), and the window before it is the
        previous step's last, at a limit since capped. Cut on both, a lone client fell under
        the guard's batch and its step took a ninth wave."""
        if self._drain_saved is not None and self.limit > 1:
            self._limit, self._drain_saved, self._drain_first = self._drain_saved, None, None
            self._restart_windows()
        self._opening = True
        busy = self._busy_limits
        if busy:
            typical = statistics.median_high(busy)
            if typical < self._limit:
                self.decreases += 1
                self._set(typical)
        busy.clear()

    def _hold_a_round_trip(self, in_flight: int) -> None:
        """Slow start: hold the limit and judge the next round trip of answers (``in_flight``
        of them, ``window_min`` at least) as one window, the requests sent from now on."""
        self._hold = max(self.window_min, in_flight)
        self._restart_windows()

    def _restart_windows(self) -> None:
        """Drop the windows being measured: the next one starts at the next send."""
        self._cohorts.clear()

    def drain_period(self) -> float | None:
        """Seconds between drains: ``drain_every_rtts`` round trips at the floor latency, or
        ``drain_min_s`` if that is longer, rounded *up* to a power of two (..., 0.5, 1, 2,
        4, ... s); ``None`` before a floor is known or with drains off.

        Why round trips: a drain costs about half a round trip of throughput whatever the
        latency, so a fixed number of seconds is either too often for a slow guard (10 s is
        three round trips of a 3 s one) or too rare for a fast one. Why powers of two: the
        clients of one upstream measure about the same floor, so they pick the same period
        and drain at the same wall-clock moments; one whose floor rounds to the next power
        picks a period whose boundaries are boundaries of the shorter one, so its drains
        still coincide with everyone's (``drain_min_s`` is rounded the same way, so it keeps
        that).

        Why 32 round trips, and when 16: a guard that gets slower (another job starts sharing
        it) looks queued against the floor it had, and is cut until a drain re-measures the
        floor. In the simulation, a guard twice as slow halfway through a step of 8192
        requests, 20 seeds, the rate after it against the new ceiling (median, every 32 round
        trips -> every 16): 64 x 4 workers 0.82 -> 0.92, 128 x 1 0.66 -> 0.96, 128 x 4 0.68 ->
        0.88, 512 x 4 0.37 -> 0.64 (124 -> 246 of 480 seeds meet both targets). But a drain
        costs a steady guard: in the real benchmark at cap 128 x 4 workers (a 100 ms guard, a
        drain every 2 s against 4 s) 0.84-0.93 of the ceiling against 0.89-0.96 over five
        interleaved pairs. So 32 stays the default, and 16 is for a guard whose load others
        change. Why no more than once every ``drain_min_s``: at a small guard shared by several
        clients each one holds a few requests, so a window of ``window_min`` spans several
        round trips, and a drain restarts the windows; at 16 round trips a 25 ms guard drained
        every 0.4 s, and four workers on cap 32, three steps in, kept a queue of 0.84 x cap in
        one seed of five (0.45 at once a second, as with 32 round trips). Over the simulation's
        matrix of normal cases 1388 of 1992 seeds met both targets with 32 round trips, 1377
        with 16, 1414 with 16 and this minimum."""
        if not self.drain_every_rtts or self._floor is None:
            return None
        return 2.0 ** math.ceil(math.log2(max(self.drain_every_rtts * self._floor, self.drain_min_s)))

    def drain_due(self, now: float) -> bool:
        """Is it time to drain? Yes when a drain period boundary passed since the last call,
        at most two floor round trips ago. ``now`` is wall-clock seconds (``time.time()``:
        the same in every process and host); when this says yes the caller calls
        :meth:`drain`.

        A boundary noticed later was missed: the client was idle then (between training
        steps, say), and its first answers now come from a burst in which every client
        starts at once. Draining into that burst alone would measure the burst's queue."""
        period = self.drain_period()
        if period is None:
            return False
        mark = math.floor(now / period) * period
        if self._drain_mark is not None and mark <= self._drain_mark:
            return False
        first = self._drain_mark is None
        self._drain_mark = mark
        return not first and now - mark <= 2.0 * self._floor

    def drain(self) -> None:
        """Re-measure the floor: lower the limit for one window of at most one limit's
        worth of requests (about one round trip), take that window's latency as the floor
        if it is lower, then restore the limit. The limit drops by ``backoff`` until a drain
        confirmed the floor, then to ``limit * floor / latency`` (the module
        docstring says why; at the floor that is no drop at all). A window off the floor by more
        than the tolerance cuts by ``backoff`` once more for another window: the floor is
        raised only if that one is as slow (the upstream got slower, not a queue), and
        lowered further while each cut lowers it (see ``_judge_drain_window``).

        Called for every client of an upstream at the same moment (the transport asks
        :meth:`drain_due` with the wall clock, which all processes and hosts share), the
        drains coincide: the queue all of them keep empties, and each learns the true floor,
        including a client that started while the others had a queue. A client draining
        alone would only measure the others' queue. Ignored in slow start (its first cut
        drains), during a drain, and while the server's counts steer."""
        if self._slow_start or self._drain_saved is not None or self.slots:
            return
        self.drains += 1
        saved = self._limit
        # deep until the floor is checked (a check needs a judged window: latency is known)
        share = (
            min(1.0, max(self.backoff, self._floor / self.latency)) if self._floor_checked else self.backoff
        )
        self._set(max(float(self.minimum), self._limit * share))
        self._restart_windows()  # the drain window: the requests sent from now on
        self._drain_saved = saved

    # ------------------------------------------------------------------ arithmetic
    def _close_window(self, c: _Cohort) -> tuple[float, float, int]:
        """A window's latency (its mean), the mean plus ``noise_z`` standard errors (what
        the floor is learnt from: see the module docstring), and the most requests in
        flight during it."""
        samples = c.samples
        n = len(samples)
        mean = math.fsum(samples) / n
        var = math.fsum((x - mean) ** 2 for x in samples) / (n - 1) if n > 1 else 0.0
        self._fastest = min(samples)
        self.latency = mean
        self.windows += 1
        return mean, mean + self.noise_z * math.sqrt(var / n), c.peak

    def _end_startup_window(self, c: _Cohort, in_flight: int) -> None:
        lat, high, _ = self._close_window(c)
        if self._floor is None or high < self._floor:
            self._floor = high
        rho = lat / self._floor
        if not self._hold:
            if rho > 1.0 + self.tolerance:
                # A queue, or a stall of our own (a GC pause delays a few windows' worth of
                # answers by as much as a queue would): hold the limit for one round trip of
                # answers and judge those; a stall covers only a part of them.
                self._hold_a_round_trip(in_flight)
            else:
                self.increases += 1
            return
        self._hold = 0
        if rho <= 1.0 + self.tolerance:
            return
        # A queue for a whole round trip under the held limit. Cut it by the gradient at
        # once: clients that started together drain what they queued before a late starter
        # can mistake it for the floor.
        self._slow_start = False
        self.decreases += 1
        self._set(max(float(self.minimum), self._limit * (1.0 + self.tolerance) / rho))

    def _judge_drain_window(self, lat: float, high: float, n: int, before: float | None) -> str:
        """A drain window's verdict: ``"again"`` (cut once more and look again),
        ``"restore"`` (the floor kept or lowered) or ``"slower"`` (the floor raised). ``lat``:
        the window's mean; ``high``: its mean plus its noise margin, the value a floor is
        learnt from; ``n``: its answers; ``before``: the latency of the window before the
        drain.

        Off the floor by more than the tolerance, one window cannot say why, so the drain
        cuts by ``backoff`` once more and compares (down to the minimum limit):

        * **above** it (even the window's fastest answer: a stall of our own spares some):
          a queue that halving every client's limit did not empty (together they kept over
          twice the upstream's capacity in flight), or a slower upstream. A slower upstream
          answers as slowly after the next cut (within the tolerance), and only then is the
          floor raised. A latency that falls was a queue; one that rises is other clients'
          load. Raising the floor to a queue let every client keep that queue for good: the
          next drain found it again, and a client whose floor was inflated ran away with the
          guard (measured at cap 32 x 4 workers).
        * **below** it: the floor was learnt behind a queue (a client that started while
          others kept one grew against it and keeps that queue itself). It is lowered at
          once, and the drain goes on while each cut lowers it further, so one drain finds
          the floor rather than one step of it per drain period (which that client, whose
          period follows its inflated floor, reaches least often). Lowering is safe: a window's
          mean plus its margin falls below the upstream's no-load latency only by chance.

        Before those rules, a drain to the share the floor allows (``limit * floor /
        latency``, once a deep drain checked the floor) is a test: at that share every
        client's queue would be gone, so a queue's latency falls to the floor. If the drain's first window fell less
        than half the way (in log terms: ``log(before / low) < log(before / floor) / 2``,
        ``low`` the window's mean minus its noise margin), the latency above the floor was
        the upstream's own at that load, not a queue: an engine whose step gets longer with
        its batch. The floor is raised to ``low`` (verdict ``"slower"``) however far that is.
        Without this, at service times twice as long at a full batch, the gradient stopped
        at under two fifths of the guard's batch and each drain, finding the latency above
        the tolerance, cut again and found the empty engine's floor once more (simulation,
        one worker, cap 128: 0.55 of a limiter-less blast; 0.85 with this). Halfway is where
        the two readings (a queue: all the way; the engine's own: none of it) part. A
        window of fewer than half ``window_min`` answers is too noisy to tell (8 workers on
        a small guard: false readings raised floors and kept a queue).

        Within the tolerance but above the floor by more than the noise (the window's mean
        minus its margin is still above), the floor is raised to that, by the tolerance at
        most per drain. Why: an engine whose step gets longer with its batch (vLLM's does)
        is slower at the drained load than empty without any queue, and against the empty
        floor the gradient read that as a queue and stopped early: in the simulation, with
        service times 25 % longer at a full batch, one worker three steps in got 0.60-0.76 of
        a limiter-less blast at caps 128-512 (0.80-1.0 with this). The floor then follows the
        latency of a drained upstream, the no-queue latency the gradient should compare with.
        A stall of our own can raise it once, by the tolerance; the next drain takes it back.
        """
        floor = self._floor
        if floor is None:  # an overload ended slow start before its first window; the
            # transport never drains then (no floor, no drain period), a direct caller may
            self._floor = high
            return "restore"
        first, self._drain_first = self._drain_first, None
        low = 2.0 * lat - high  # the window's mean minus its noise margin
        if (
            first is None
            and self._floor_checked  # the drain was to the share the floor allows, not deep
            and before is not None
            and 2 * n >= self.window_min  # fewer answers: noise (8 workers on a small guard)
            and before - floor > high - lat  # there was latency above the floor to drain
            and 0.0 < low < before
            and math.log(before / low) < 0.5 * math.log(before / floor)
        ):
            # Cut to the share at which a queue would be gone, the latency fell less than
            # half the way to the floor: not a queue (see above).
            self._floor = low
            return "slower"
        tol = 1.0 + self.tolerance
        can_cut = self._limit > self.minimum
        if self._fastest > tol * floor:  # above
            if first is None and can_cut:
                self._drain_first = high
                return "again"
            if first is None or (first > tol * floor and first / tol <= high <= first * tol):
                self._floor = high if first is None else min(high, first)
                self._floor_checked = True  # measured at a quarter of the limit
                return "slower"
            return "restore"
        if high < floor:
            self._floor = high
            if high * tol < floor and can_cut:  # below by more than the tolerance: look lower
                self._drain_first = high
                return "again"
        if high * tol >= floor:  # confirmed (already checked, if this drain was not deep)
            self._floor_checked = True
            if low > floor:  # above the floor beyond noise, within the tolerance: raise it
                self._floor = min(low, floor * tol)
        return "restore"

    def _end_window(self, c: _Cohort, opening: bool = False) -> None:
        """A gradient window (or a drain's). ``opening``: the first judged after the client
        was idle, which may grow the limit but not cut it, and is not the window before the
        next one (``_resume`` says why)."""
        lat, high, peak = self._close_window(c)
        if self.slots:  # the server's counts steer (``observe_upstream``): statistics only
            return
        limit = self._limit
        prev, self._prev_latency = self._prev_latency, lat
        if self._drain_saved is not None:
            verdict = self._judge_drain_window(lat, high, len(c.samples), prev)
            if verdict == "again":
                self._set(max(float(self.minimum), self._limit * self.backoff))
                return
            saved, self._drain_saved, self._prev_latency = self._drain_saved, None, None
            self._set(saved)
            self._restart_windows()  # windows of a drain's size were under way
            if verdict == "slower":
                # The upstream got slower: the cuts since were made against a floor it can no
                # longer reach; from here the gradient grows the limit back. (Not slow start:
                # a drain that misjudged, e.g. behind a queue of clients that did not drain,
                # would overshoot by a whole limit for a round trip.)
                self.relearns += 1
            return
        if self._floor is None or high < self._floor:
            if self._floor is not None and high * (1.0 + self.tolerance) < self._floor:
                self._floor_checked = False  # it was far off: the next drain looks deep
            self._floor = high
        # Two windows in a row must show a queue: a stall of our own (a GC pause) can delay
        # most answers of one short window, a queue delays those of both.
        rho = (lat if prev is None else min(lat, prev)) / self._floor
        if self.limit <= self.minimum and rho > 1.0 + self.tolerance:
            # Latency stays high even at the minimum: the upstream got slower. That is its
            # floor now; find the limit that fits it as at the start.
            self._floor = high
            self._floor_checked = False
            self._slow_start = True
            self._prev_latency = None
            self._restart_windows()
            self.relearns += 1
            return
        gradient = min(1.0 + self.tolerance, max(self.backoff, (1.0 + self.tolerance) / rho))
        new = limit * gradient + self.headroom * math.sqrt(limit)
        if 2 * peak < limit:  # app-limited: no evidence the upstream could take more
            new = min(new, limit)
        if opening:
            self._prev_latency = None
            new = max(new, limit)
        new = min(max(new, float(self.minimum)), float(self.maximum))
        if new < limit:
            self.decreases += 1
        elif int(new) > int(limit):
            self.increases += 1
        self._set(new)
        self._busy_limits.append(self._limit)

    def _set(self, new: float) -> None:
        # After a cut, answers to requests sent before it carry the old queue: ignore them,
        # and measure from the next send. After a rise they arrive no later than they would
        # have: the windows under way count.
        if new < self._limit:
            self._cut_from = self._sent
            self._restart_windows()
        self._limit = new

    def __repr__(self) -> str:
        floor = "?" if self.floor is None else f"{self.floor * 1e3:.1f}ms"
        return f"AdaptiveLimit(limit={self.limit}, floor={floor}, range=[{self.minimum}, {self.maximum}])"


Limit = AdaptiveLimit | FixedLimit
