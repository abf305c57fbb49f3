"""Concurrency limits per upstream URL: adaptive (latency-driven) or fixed.

Why adaptive: the number of requests a guard deployment can serve at once (vLLM
``--max-num-seqs`` x replicas, shared with other jobs) is unknown to the trainer and changes
while it runs. Too few requests in flight starve the guard; too many only queue inside it,
latency climbs towards the timeout and retries pile on. The limit is therefore *measured*,
the way TCP measures a congestion window.

The design follows the established service-to-service limiters (Netflix
``concurrency-limits`` Vegas/Gradient2, Envoy's adaptive-concurrency gradient controller,
Vector's Adaptive Request Concurrency), reduced to what this transport needs:

* **Signal: latency over its floor.** ``rho = window latency / floor``, the floor being the
  lowest window latency seen (the no-load latency). With ``L`` requests in flight and a
  queue in front of the server, Vegas' queue estimate is ``L * (1 - 1/rho)``: keeping
  ``rho <= 1 + tolerance`` bounds the queue we cause to ``tolerance / (1 + tolerance)`` of
  what we send. A window's latency is a low quantile (default the 25th percentile) of its
  answers, not their mean: on a loaded machine the client's own stalls put a heavy tail on
  latencies, while a queue at the server delays every answer. The floor only falls, except
  when it is re-learnt (below): a floor that drifted up with a standing queue would let the
  queue grow without bound.
* **Windows are counted in answers, not seconds**: one window is ``max(window_min, limit)``
  answers (about one round trip at the limit), and after every change the answers to
  requests sent under the old limit are skipped. So the arithmetic is a pure function of
  the samples it is fed (tests drive it with numbers, no clocks), and it adapts as fast as
  the upstream answers.
* **Increase**: slow start (double per window) until the first congestion or until a
  doubling no longer buys ``startup_gain`` more throughput (by Little's law, in flight /
  latency; BBR's start-up exit), then additive by ``sqrt(limit)`` per window; nothing while
  the caller is app-limited (fewer than half the limit in flight), so an idle client does
  not inflate its limit.
* **Decrease**: multiplicative (``limit * backoff``) when ``rho > 1 + tolerance``, and *at
  once* on an overload answer (429, 503, timeout, refused connection), at most once per
  window. ``backoff * (1 + tolerance) < 1`` by default, so after a decrease the server's queue
  drains and every client sees the true floor again.
* **Fair share without coordination**: several clients (one per verl reward worker) see
  the same queue, hence the same ``rho``. Additive (sub-linear) increase with multiplicative
  decrease converges to equal limits (Chiu & Jain 1989; binomial controls, Bansal &
  Balakrishnan 2001), which the deterministic simulation in the tests checks.

A client that reaches ``minimum`` through latency re-learns its floor (Envoy does the same
after the limit sits at its minimum): a replica that became slower gets a new floor and a
share that matches its new speed, rather than none.

Young Python packages exist (``aimd-limiter`` limits a *rate* with no latency signal;
``ace-concurrency`` steers by local CPU/memory); neither reads upstream latency or 429s,
hence this small module.
"""

from __future__ import annotations

import math

__all__ = ["AdaptiveLimit", "FixedLimit", "Limit"]


class FixedLimit:
    """A constant bound: the explicit ``concurrency: fixed`` mode. Ignores samples."""

    adaptive = False

    def __init__(self, limit: int):
        if limit < 1:
            raise ValueError(f"a fixed concurrency limit must be >= 1, got {limit}")
        self.limit = self.minimum = self.maximum = int(limit)
        self.floor: float | None = None
        self.latency: float | None = None
        self.increases = self.decreases = 0

    def on_sample(self, rtt: float, in_flight: int) -> None:
        pass

    def on_overload(self, in_flight: int) -> None:
        pass


class AdaptiveLimit:
    """Latency-driven limit of requests in flight to one upstream. See the module docstring.

    Feed it ``on_sample(latency_s, in_flight)`` for every answered request and
    ``on_overload(in_flight)`` for every 429/503/timeout; read ``limit``. ``in_flight`` is
    the number of this client's requests outstanding to the upstream when the answer
    arrived, this one included.
    """

    adaptive = True

    def __init__(
        self,
        initial: int = 4,
        minimum: int = 1,
        maximum: int = 1024,
        *,
        tolerance: float = 0.8,
        backoff: float = 0.5,
        window_min: int = 16,
        quantile: float = 0.25,
        startup_gain: float = 1.25,
    ):
        if not 1 <= minimum <= initial <= maximum:
            raise ValueError(f"need 1 <= minimum <= initial <= maximum, got {minimum}, {initial}, {maximum}")
        if not tolerance > 0:
            raise ValueError(f"tolerance must be > 0, got {tolerance}")
        if not 0 < backoff < 1:
            raise ValueError(f"backoff must be in (0, 1), got {backoff}")
        if window_min < 1:
            raise ValueError(f"window_min must be >= 1, got {window_min}")
        if not startup_gain > 1:
            raise ValueError(f"startup_gain must be > 1, got {startup_gain}")
        if not 0 <= quantile < 1:
            raise ValueError(f"quantile must be in [0, 1), got {quantile}")
        self.minimum = int(minimum)
        self.maximum = int(maximum)
        self.tolerance = float(tolerance)
        self.backoff = float(backoff)
        self.window_min = int(window_min)
        self.quantile = float(quantile)
        self.startup_gain = float(startup_gain)
        #: requests/s by Little's law (in flight / latency) of the last slow-start window
        self._rate: float | None = None
        self._limit = float(initial)
        #: slow start until this limit (TCP's ssthresh): the maximum until the first decrease
        self._ssthresh = float(maximum)
        #: lowest window latency since start or the last re-learn: the no-load latency estimate
        self._floor: float | None = None
        #: completions still to ignore: answers to requests sent under the previous limit
        self._skip = 0
        self._window: list[float] = []
        self._peak = 0
        #: last window's latency (its ``quantile``, seconds)
        self.latency: float | None = None
        #: number of increases and decreases (latency and overload) so far, and of floor re-learns
        self.increases = 0
        self.decreases = 0
        self.relearns = 0

    # ------------------------------------------------------------------ reading
    @property
    def limit(self) -> int:
        return max(self.minimum, int(self._limit))

    @property
    def floor(self) -> float | None:
        """The no-load latency estimate (seconds), ``None`` before the first window."""
        return self._floor

    # ------------------------------------------------------------------ feeding
    def on_sample(self, rtt: float, in_flight: int) -> None:
        """One answered request: ``rtt`` seconds from send to the full answer."""
        if not rtt > 0 or math.isinf(rtt):
            raise ValueError(f"latency sample must be a positive finite number of seconds, got {rtt!r}")
        if self._skip > 0:
            self._skip -= 1
            return
        window = self._window
        window.append(rtt)
        self._peak = max(self._peak, in_flight)
        if len(window) >= max(self.window_min, self.limit):
            self._end_window(in_flight)

    def on_overload(self, in_flight: int) -> None:
        """The upstream said it is overloaded (429/503), timed out or refused the connection:
        decrease at once, once per window (answers to requests sent before the decrease say
        nothing new)."""
        if self._skip > 0:
            self._skip -= 1
            return
        self._decrease(in_flight - 1, relearn=False)

    # ------------------------------------------------------------------ arithmetic
    def _end_window(self, in_flight: int) -> None:
        window = sorted(self._window)
        lat = window[int(len(window) * self.quantile)]  # the window's latency
        peak = self._peak
        self._window, self._peak = [], 0
        self.latency = lat
        if self._floor is None or lat < self._floor:
            self._floor = lat
        limit = self._limit
        if lat > (1.0 + self.tolerance) * self._floor:
            self._decrease(in_flight - 1, relearn=True)
            return
        if 2 * peak < limit:  # app-limited: no evidence the upstream could take more
            return
        if limit < self._ssthresh:
            rate, prev = peak / lat, self._rate
            self._rate = rate
            if prev is not None and rate < self.startup_gain * prev:
                # Doubling bought (almost) no throughput: the upstream is full, what we added
                # only queues. Leave slow start and give the doubling back (BBR's start-up
                # exit), before the queue inflates the floors of clients starting later.
                self._ssthresh = new = max(float(self.minimum), limit / 2)
                self._rate = None
                self._set(new, in_flight - 1)
                return
            new = min(2.0 * limit, self._ssthresh)
        else:
            new = limit + math.sqrt(limit)
        new = min(new, float(self.maximum))
        if new > limit:
            self.increases += 1
        self._set(new, in_flight - 1)

    def _decrease(self, in_flight: int, relearn: bool) -> None:
        new = max(float(self.minimum), self._limit * self.backoff)
        self._ssthresh = new
        self.decreases += 1
        if relearn and new <= self.minimum:
            # Latency stays high even at the minimum: the upstream itself got slower (or the
            # floor is stale). Re-learn the floor and slow-start again from here.
            self._floor = None
            self._rate = None
            self._ssthresh = float(self.maximum)
            self.relearns += 1
        self._set(new, in_flight)
        self._window, self._peak = [], 0

    def _set(self, new: float, in_flight: int) -> None:
        if int(new) != int(self._limit) or new < self._limit:
            self._skip = max(0, in_flight)
        self._limit = new

    def __repr__(self) -> str:
        floor = "?" if self.floor is None else f"{self.floor * 1e3:.1f}ms"
        return f"AdaptiveLimit(limit={self.limit}, floor={floor}, range=[{self.minimum}, {self.maximum}])"


Limit = AdaptiveLimit | FixedLimit
