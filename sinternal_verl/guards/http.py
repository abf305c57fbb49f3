"""Async transport for OpenAI-compatible HTTP servers (vLLM, SGLang, any ``/v1`` API).

Shared by the guard client, the data pipeline's expert-critique client and the
OpenAI-endpoint sampler, so it knows nothing about guards: it moves JSON to and from a set
of replicas and makes failures explicit.

Why it looks the way it does:

* **aiohttp, one pooled session per event loop.** httpx costs too much CPU per request on a
  2-core box; a session is bound to the loop that created it, and verl's reward workers and
  our sync wrappers may each run their own loop. So state is created lazily *inside* the
  running loop and kept per loop; never shared across loops.
* **A concurrency limit per URL, adaptive by default** (:mod:`.limiter`): the number of
  requests in flight to each replica grows while its latency stays near its floor and
  backs off when latency rises or the replica answers 429/503, times out or refuses
  connections. Nobody has to know the guard's batch size, how many replicas serve it or
  how many reward workers share it; several clients converge to a fair share. Callers
  beyond the limits wait (backpressure, not errors). ``concurrency: fixed`` keeps a
  constant ``max_concurrency_per_url`` instead. Limits hold per event loop.
* **Steered by the server's own counts where it publishes them** (``limit_signal:
  server_counts``, the default): while a loop has requests in flight to a URL, a task of its
  own reads the URL's ``/metrics`` on a timer (:mod:`.server_counts`: vLLM's or SGLang's
  running and waiting gauges), off the request path, and hands them to the limit. A
  ``/metrics`` without those gauges (404, another server) or refused to us (401, 403) turns
  the readings off for that URL for good, and latency steers it; three other failures in a
  row hand it back to latency and try again after ``limit_counts_retry_s``. Both are logged
  and counted in ``stats()``. The job's clients keep ``limit_counts_share`` of the batch
  waiting together, each ``1 / limit_counts_clients`` of it, and read each URL every
  ``limit_counts_every_s`` together (each ``limit_counts_clients`` times less often, a larger
  step per reading): neither the queue nor the server's cost of the readings (vLLM renders a
  50 KB page, ~6 ms of its API process) grows with verl's ``reward.num_workers``.
* **Replica choice uses the same signal**: the URL with room and the lowest
  in-flight / limit ratio is picked (ties rotate), so a slow replica, whose limit shrank,
  gets less. A URL that just failed is skipped for its backoff while another is healthy.
* **Retries** with exponential backoff and jitter on connect errors, timeouts, 5xx, 429
  (``Retry-After`` honoured, capped) and unreadable JSON. A retry goes at once to another
  healthy replica; only when there is none does it sleep the backoff first. After
  ``max_retries`` an :class:`UpstreamUnavailableError` names the URL and the cause. A 4xx
  other than 429 is the request's fault: raised at once as :class:`UpstreamRequestError`.
* **Lean hot path**: headers built once, the body serialised once (orjson when present),
  no per-call objects beyond the request itself.
"""

from __future__ import annotations

import asyncio
import collections
import email.utils
import logging
import random
import time
import weakref
from collections.abc import Mapping
from typing import Any, Literal

import aiohttp
from pydantic import field_validator, model_validator
from yarl import URL

from ..settings import Settings, setting
from .limiter import AdaptiveLimit, FixedLimit, Limit
from .server_counts import parse_server_counts
from .types import ReadyReport, UpstreamRequestError, UpstreamUnavailableError

try:  # orjson is ~5x faster than json for our payloads; optional.
    import orjson as _orjson

    def _dumps(obj: Any) -> bytes:
        return _orjson.dumps(obj)

    _loads = _orjson.loads
except ImportError:  # pragma: no cover - depends on the environment
    import json as _json

    def _dumps(obj: Any) -> bytes:
        return _json.dumps(obj, ensure_ascii=False).encode()

    _loads = _json.loads

logger = logging.getLogger(__name__)

_RETRY_STATUSES_MIN = 500
#: failed readings of a URL's ``/metrics`` in a row after which latency steers its limit again
_COUNTS_FAILURES = 3
#: statuses that say "too much load": the URL's limit backs off at once
_OVERLOAD_STATUSES = (429, 503)


class HTTPClientConfig(Settings):
    """The transport's settings, the one definition: :class:`~.config.GuardConfig` extends
    this class (reward kwargs ``guard_<field>``), the pipeline's and the evaluation's
    OpenAI-compatible clients build one."""

    urls: tuple[str, ...] = setting(
        (),
        "base URLs of the replicas, e.g. http://host:8000 (trailing /v1 dropped; a comma-separated string works)",
    )
    api_key: str | None = setting(None, "sent as 'Authorization: Bearer <key>'", repr=False)
    timeout_s: float = setting(60.0, "seconds for one HTTP attempt (connect + send + read)", gt=0)
    connect_timeout_s: float | None = setting(
        None, "seconds to connect; unset: bounded by timeout_s only", gt=0
    )
    max_retries: int = setting(
        4, "retries after the first attempt (connect errors, timeouts, 5xx, 429, bad JSON)", ge=0
    )
    backoff_base_s: float = setting(0.5, "first retry backoff (doubles per attempt, equal jitter)", ge=0)
    backoff_max_s: float = setting(8.0, "cap on one retry backoff", ge=0)
    retry_after_max_s: float = setting(
        60.0, "cap on a server's Retry-After (a misconfigured server must not stall a run)", ge=0
    )
    ready_timeout_s: float = setting(5.0, "timeout of one readiness probe (GET /v1/models), no retries", gt=0)
    headers: tuple[tuple[str, str], ...] = setting(
        (), "extra headers sent with every request (a mapping is accepted)"
    )
    concurrency: Literal["adaptive", "fixed"] = setting(
        "adaptive", "requests in flight per URL: 'adaptive' (measured from latency and 429/503) or 'fixed'"
    )
    max_concurrency_per_url: int = setting(
        64,
        "fixed mode: requests in flight per URL per client (event loop); the rest wait. Setting it selects "
        "concurrency='fixed'",
        ge=1,
    )
    limit_initial: int = setting(
        4, "adaptive: requests in flight per URL at start (grows by slow start)", ge=1
    )
    limit_min: int = setting(1, "adaptive: floor of the per-URL limit", ge=1)
    limit_max: int = setting(1024, "adaptive: ceiling of the per-URL limit", ge=1)
    limit_tolerance: float = setting(
        0.1,
        "adaptive: latency over its floor taken as no queue; also the growth per window without one "
        "(each client keeps about this fraction of its limit queued)",
        gt=0,
        lt=1,
    )
    limit_headroom: float = setting(
        0.5,
        "adaptive: requests added per window x sqrt(limit) (the fair-share force; each client keeps about "
        "this x sqrt(limit) queued)",
        ge=0,
    )
    limit_backoff: float = setting(
        0.5,
        "adaptive: limit multiplier on 429/503/timeout, the deepest cut by latency per window, and a deep drain's",
        gt=0,
        lt=1,
    )
    limit_window_min: int = setting(
        16,
        "adaptive: least requests per decision window (a window is the next limit's worth of requests, judged once all have answered)",
        ge=1,
    )
    limit_drain_every_rtts: float = setting(
        32.0,
        "adaptive: every this many round trips at the floor latency (and at most once every "
        "limit_drain_min_s), rounded up to a power-of-two number of seconds (so the clients of one guard "
        "pick the same wall-clock moments), each limit drops for about one round trip to re-measure its "
        "floor: by limit_backoff until a drain confirmed the floor, then to limit x floor / latency; 16 for a "
        "guard shared with jobs whose load changes (a slower guard is re-measured twice as soon, a steady one "
        "loses a few percent); 0: never",
        ge=0,
    )
    limit_drain_min_s: float = setting(
        1.0,
        "adaptive: the shortest drain period (seconds, rounded up to a power of two like the period): "
        "a fast guard shared by several clients needs a few decision windows between drains",
        ge=0,
    )

    limit_noise_z: float = setting(
        2.0,
        "adaptive: the floor is learnt from a window's mean latency plus this many standard errors, so "
        "varying service times (prompt lengths) do not drag it below the guard's real no-load latency; 0: "
        "the bare mean",
        ge=0,
    )

    limit_tail: float = setting(
        1.0,
        "adaptive: a batch's last requests are not held back: when an answer leaves the callers waiting "
        "for room and those in flight within (1 + this) x the limits, they are all sent, and the server's queue holds them "
        "(slots that other clients leave as they finish then do not idle while this one waits); once per burst of "
        "work, again after a caller found room without waiting. 0: the limit is a hard bound",
        ge=0,
    )

    limit_signal: Literal["latency", "server_counts"] = setting(
        "server_counts",
        "adaptive: what steers the limit: 'server_counts', the server's own running and waiting requests "
        "from its Prometheus /metrics (vLLM, SGLang), once it has been seen to queue (latency until then, "
        "and for good where /metrics has no such gauges); shares even out within a step where latency "
        "takes many. Or 'latency' (any server). Set 'latency' where a URL is a load balancer: its /metrics "
        "is one replica's",
    )
    limit_counts_share: float = setting(
        0.4,
        "server_counts: the part of the server's batch this job's clients keep waiting together, split "
        "among limit_counts_clients",
        gt=0,
    )
    limit_counts_clients: int = setting(
        0,
        "server_counts: how many clients (processes) of this job share each URL; each keeps "
        "limit_counts_share / this of the batch waiting. 0: verl's reward.num_workers in the reward "
        "manager, 1 elsewhere (the reward server)",
        ge=0,
    )
    limit_counts_gain: float = setting(
        0.03,
        "server_counts: the part of the way to its target the limit moves per reading at "
        "limit_counts_every_s; a client that reads k times less often moves k times as far",
        gt=0,
        le=1,
    )
    limit_counts_every_s: float = setting(
        0.05,
        "server_counts: seconds between this job's readings of a busy URL's /metrics; each of "
        "limit_counts_clients reads every clients x this. A reading costs the server about what a "
        "request does (vLLM: a 50 KB page, ~6 ms of its API process on a 2-core box)",
        gt=0,
    )
    limit_counts_retry_s: float = setting(
        30.0,
        "server_counts: after three failed readings of a URL in a row (a restarting server) latency "
        "steers it, and its /metrics is read again this many seconds later",
        ge=0,
    )

    @field_validator("urls", mode="before")
    @classmethod
    def _split_urls(cls, v: Any) -> Any:
        if isinstance(v, str):
            v = v.split(",")
        if isinstance(v, (list, tuple)):
            return tuple(str(u).strip().rstrip("/") for u in v if str(u).strip())
        return v

    @model_validator(mode="before")
    @classmethod
    def _bound_selects_fixed(cls, data: Any) -> Any:
        """A bound given without a mode is the fixed bound asked for (what the setting meant
        before adaptive limits); given with ``concurrency='adaptive'`` it is a conflict."""
        if (
            isinstance(data, Mapping)
            and data.get("max_concurrency_per_url") is not None
            and "concurrency" not in data
        ):
            data = {**data, "concurrency": "fixed"}
        return data

    @field_validator("headers", mode="before")
    @classmethod
    def _headers_pairs(cls, v: Any) -> Any:
        if isinstance(v, Mapping):
            return tuple(sorted((str(k), str(x)) for k, x in v.items()))
        return v

    @model_validator(mode="after")
    def _check(self) -> HTTPClientConfig:
        if self.concurrency == "adaptive" and "max_concurrency_per_url" in self.model_fields_set:
            raise ValueError(
                "max_concurrency_per_url is the bound of concurrency='fixed': set concurrency='fixed' with it, "
                "or drop it (the default, concurrency='adaptive', measures the limit within "
                "limit_min..limit_max)"
            )
        if not self.limit_min <= self.limit_initial <= self.limit_max:
            raise ValueError(
                "need limit_min <= limit_initial <= limit_max, got "
                f"{self.limit_min}, {self.limit_initial}, {self.limit_max}"
            )
        return self

    def new_limit(self) -> Limit:
        """A fresh limit for one URL, as configured."""
        if self.concurrency == "fixed":
            return FixedLimit(self.max_concurrency_per_url)
        return AdaptiveLimit(
            self.limit_initial,
            self.limit_min,
            self.limit_max,
            tolerance=self.limit_tolerance,
            headroom=self.limit_headroom,
            backoff=self.limit_backoff,
            window_min=self.limit_window_min,
            drain_every_rtts=self.limit_drain_every_rtts,
            drain_min_s=self.limit_drain_min_s,
            noise_z=self.limit_noise_z,
            counts_share=self.limit_counts_share / self.counts_clients,
            counts_gain=min(1.0, self.limit_counts_gain * self.counts_clients),
            counts_every_s=self.counts_every_s,
            tail=self.limit_tail,
        )

    @property
    def counts_clients(self) -> int:
        """How many clients split the job's queue share and its readings (0 -> 1)."""
        return max(1, self.limit_counts_clients)

    @property
    def counts_every_s(self) -> float:
        """Seconds between this client's readings of a busy URL: the job reads each URL every
        ``limit_counts_every_s`` in all, whatever its number of workers, because a reading
        costs the server about what a request does."""
        return self.limit_counts_every_s * self.counts_clients

    @classmethod
    def from_guard_config(cls, cfg: HTTPClientConfig) -> HTTPClientConfig:
        """The transport part of a guard config (a subclass), with what it set explicitly."""
        return cls.model_validate(cfg.model_dump(include=set(cls.model_fields), exclude_unset=True))


def normalize_base_url(url: str) -> str:
    """``http://h:8000/v1/`` -> ``http://h:8000`` (paths carry their own ``/v1``)."""
    url = url.strip().rstrip("/")
    if url.endswith("/v1"):
        url = url[: -len("/v1")]
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"base URL must start with http:// or https://, got {url!r}")
    return url


class _LoopState:
    """What must live in one event loop: the pooled session, the requests in flight per URL
    from this loop, the callers waiting for room, and a keeper that closes the session when
    the loop shuts down."""

    __slots__ = ("session", "inflight", "waiters", "woken", "tail_armed", "keeper", "pollers")

    def __init__(self, session: aiohttp.ClientSession, n: int):
        self.session = session
        self.inflight = [0] * n
        self.waiters: collections.deque[asyncio.Future] = collections.deque()
        #: waiters woken but not yet running (room promised to them)
        self.woken = 0
        #: a batch's last callers may still go beyond the limits (``_release``): once per
        #: burst, armed again when a caller finds room without waiting
        self.tail_armed = True
        self.keeper: Any = None
        #: per URL, the task reading the server's counts while this loop is busy on it (None:
        #: none; a reference also keeps the task from being collected)
        self.pollers: list[asyncio.Task | None] = [None] * n


async def _session_keeper(session: aiohttp.ClientSession):
    """An async generator parked at its ``yield`` for the life of the loop. ``asyncio.run``
    (and pytest-asyncio, uvloop) call ``loop.shutdown_asyncgens()`` before closing a loop,
    which runs the ``finally`` here: sessions of loops that end without ``aclose()`` (sync
    wrappers calling ``asyncio.run`` per batch) are still closed inside their own loop."""
    try:
        yield
    finally:
        await session.close()


class OpenAIHTTPClient:
    """JSON over HTTP to a pool of OpenAI-compatible replicas. See the module docstring.

    ``await post_json("/v1/chat/completions", payload) -> dict`` is the whole API for
    callers; ``post_json_from`` also says which base URL answered; ``stats()`` is a flat
    ``{name: number}`` mapping (per-URL figures as ``name/<url>``). Usable from any running
    event loop; call ``aclose()`` from each loop that used it (or at least the last one).
    """

    def __init__(self, config: HTTPClientConfig):
        self.config = config
        if not config.urls:
            raise ValueError("needs at least one base URL")
        self.urls: tuple[str, ...] = tuple(normalize_base_url(u) for u in config.urls)
        self._n = len(self.urls)
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if config.api_key:
            headers["Authorization"] = f"Bearer {config.api_key}"
        headers.update(dict(config.headers))
        self._headers = headers
        self._timeout = aiohttp.ClientTimeout(total=config.timeout_s, connect=config.connect_timeout_s)
        #: one limit per URL, shared by all loops (it is plain arithmetic)
        self.limits: tuple[Limit, ...] = tuple(config.new_limit() for _ in self.urls)
        self._inflight = [0] * self._n
        self._penalty_until = [0.0] * self._n
        self._rr = 0
        self._url_cache: dict[tuple[int, str], URL] = {}
        self._states: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopState] = (
            weakref.WeakKeyDictionary()
        )
        self._last_loop: asyncio.AbstractEventLoop | None = None
        self._last_state: _LoopState | None = None
        # counters (plain ints: cheaper than a dataclass attribute chain on the hot path)
        self._requests = 0
        self._successes = 0
        self._retries = 0
        self._retry_sleeps = 0
        self._errors = 0
        self._in_flight = 0
        self._per_url = [0] * self._n
        self._per_url_fail = [0] * self._n
        #: requests sent beyond their URL's limit as a batch's last (``_release``)
        self._tail_sends = [0] * self._n
        # the server's counts (``limit_signal: server_counts``): seconds between readings (0:
        # off), when each URL is next due (monotonic), failures in a row, a URL's counts
        # turned off for good, readings and failures so far
        counts = config.concurrency == "adaptive" and config.limit_signal == "server_counts"
        self._counts_every = config.counts_every_s if counts else 0.0
        self._counts_timeout = aiohttp.ClientTimeout(total=max(1.0, 20 * config.counts_every_s))
        self._counts_due = [0.0] * self._n
        self._counts_failing = [0] * self._n
        self._counts_off = [False] * self._n
        self._counts_reads = [0] * self._n
        self._counts_errors = [0] * self._n

    # ------------------------------------------------------------------ per-loop state
    async def _state(self) -> _LoopState:
        loop = asyncio.get_running_loop()
        if loop is self._last_loop:
            st = self._last_state
            if st is not None and not st.session.closed:
                return st
        st = self._states.get(loop)
        if st is None or st.session.closed:
            connector = aiohttp.TCPConnector(
                limit=0,  # our limits are the bound; the connector must not add a second queue
                limit_per_host=0,
                ttl_dns_cache=300,
                enable_cleanup_closed=False,
            )
            session = aiohttp.ClientSession(
                connector=connector,
                timeout=self._timeout,
                headers=self._headers,
                auto_decompress=True,
                raise_for_status=False,
            )
            st = _LoopState(session, self._n)
            st.keeper = _session_keeper(session)
            await st.keeper.__anext__()
            self._states[loop] = st
        self._last_loop, self._last_state = loop, st
        return st

    # ------------------------------------------------------------------ URL choice and room
    def _healthy_other(self, avoid: int, now: float) -> bool:
        """Is there a URL other than ``avoid`` outside its failure backoff?"""
        pen = self._penalty_until
        return any(i != avoid and pen[i] <= now for i in range(self._n))

    def _pick(self, st: _LoopState, avoid: int, tail: bool = False) -> int:
        """The URL with room and the lowest in-flight / limit ratio (ties rotate); ``avoid``
        (the URL that just failed) and URLs in their failure backoff are skipped while
        another URL is healthy. -1: no room now, wait. ``tail``: a batch's last callers
        (``_release``), who go beyond the limits, to the least loaded URL."""
        inflight = st.inflight
        limits = self.limits
        n = self._n
        if n == 1:
            return 0 if tail or inflight[0] < limits[0].limit else -1
        now = time.monotonic()
        pen = self._penalty_until
        strict = self._healthy_other(avoid, now) if avoid >= 0 else any(p <= now for p in pen)
        self._rr = start = (self._rr + 1) % n
        best = -1
        best_load = 2.0
        for k in range(n):
            i = (start + k) % n
            if strict and (i == avoid or pen[i] > now):
                continue
            lim = limits[i].limit
            used = inflight[i]
            if used >= lim and not tail:
                continue
            load = used / lim
            if load < best_load or best < 0:
                best, best_load = i, load
        return best

    def _room(self, st: _LoopState) -> int:
        limits = self.limits
        return sum(max(0, limits[i].limit - st.inflight[i]) for i in range(self._n))

    def _wake(self, st: _LoopState, answered: bool = False) -> None:
        """Wake as many waiters as there is room not already promised to woken ones; after an
        answer (``answered``), all of them if they are a batch's last (``_release``)."""
        if not st.waiters:
            return
        room = self._room(st) - st.woken
        while room > 0 and st.waiters:
            room -= self._wake_first(st, tail=False)
        if answered:
            self._release(st)

    @staticmethod
    def _wake_first(st: _LoopState, tail: bool) -> int:
        """Wake the first waiter (``tail``: to go beyond the limits); 1 if one was woken, 0 if
        it had been cancelled meanwhile."""
        fut = st.waiters.popleft()
        if fut.done():
            return 0
        fut.set_result(tail)
        st.woken += 1
        return 1

    def _release(self, st: _LoopState) -> None:
        """Send a batch's last callers at once: when those in flight and those not yet
        running (waiting, or woken and about to run) fit in the limits plus their
        ``tail_room``, wake every waiter to go beyond the limits (the limiter's module
        docstring says why).

        In flight counts too: a stream of batches (the reward server's) would otherwise be
        let out batch after batch, each a few beyond the limit, and the guard's queue grew to
        2.1 x its cap. Judged only when an answer came back, never as callers arrive: a
        batch's callers arrive one after another in one turn of the loop, and the first few
        beyond the limit would each find only themselves waiting.

        Once per burst of work: after a release, callers that arrive while the limits are
        full wait for room, however few they are, until one finds room without waiting
        (``tail_armed``). A steady stream (the reward server's) would otherwise be let out
        again each time its batches ran short for a moment, and hold up to ``1 + tail``
        limits in flight for as long as it lasts."""
        if not st.waiters or not st.tail_armed:
            return
        bound = sum(lim.limit + lim.tail_room for lim in self.limits)
        if sum(st.inflight) + len(st.waiters) + st.woken > bound:
            return
        st.tail_armed = False
        while st.waiters:
            self._wake_first(st, tail=True)

    async def _acquire(self, st: _LoopState, avoid: int) -> int:
        """A URL index with a slot taken for this loop; waits (FIFO) while there is no room."""
        if not st.waiters and not st.woken:
            i = self._pick(st, avoid)
            if i >= 0:
                st.inflight[i] += 1
                st.tail_armed = True  # room to spare: what comes next is a new burst
                return i
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        st.waiters.append(fut)
        while True:
            try:
                tail = await fut
            except asyncio.CancelledError:
                if fut.done() and not fut.cancelled():  # woken, then cancelled: pass the room on
                    st.woken -= 1
                    self._wake(st)
                else:
                    try:
                        st.waiters.remove(fut)
                    except ValueError:
                        pass
                raise
            st.woken -= 1
            i = self._pick(st, avoid, tail)
            if i >= 0:
                if st.inflight[i] >= self.limits[i].limit:
                    self._tail_sends[i] += 1
                st.inflight[i] += 1
                self._wake(st)  # more room than this one slot (a limit grew)? wake the next
                return i
            fut = loop.create_future()  # the room went to a URL we must avoid: wait again, first in line
            st.waiters.appendleft(fut)

    # ------------------------------------------------------------------ retries
    def _backoff(self, attempt: int) -> float:
        d = min(self.config.backoff_max_s, self.config.backoff_base_s * (2 ** (attempt - 1)))
        return d / 2 + random.uniform(0, d / 2)  # "equal jitter": spread, never zero

    def _retry_after(self, value: str | None) -> float | None:
        if not value:
            return None
        try:
            secs = float(value)
        except ValueError:
            try:
                when = email.utils.parsedate_to_datetime(value)
            except (TypeError, ValueError):
                return None
            secs = when.timestamp() - time.time()
        return max(0.0, min(secs, self.config.retry_after_max_s))

    # ------------------------------------------------------------------ requests
    async def _request(self, method: str, path: str, body: bytes | None) -> tuple[Any, str]:
        st = await self._state()
        session = st.session
        headers = None  # session defaults carry ours
        attempts = 0
        avoid = -1
        clock = time.perf_counter
        while True:
            status = 0
            retry_after: str | None = None
            raw = b""
            cause = ""
            overload = False
            i = await self._acquire(st, avoid)
            base = self.urls[i]
            limit = self.limits[i]
            self._inflight[i] += 1
            self._in_flight += 1
            self._requests += 1
            self._per_url[i] += 1
            target = self._url_cache.get((i, path))
            if target is None:
                target = self._url_cache[(i, path)] = URL(base + path)
            ticket = limit.on_send()
            if self._counts_every and st.pollers[i] is None and not self._counts_off[i]:
                st.pollers[i] = asyncio.get_running_loop().create_task(self._poll_counts(st, i))
            t0 = clock()
            try:
                async with session.request(method, target, data=body, headers=headers) as resp:
                    status = resp.status
                    raw = await resp.read()
                    if status == 429 or status == 503:
                        retry_after = resp.headers.get("Retry-After")
            except (aiohttp.ClientError, TimeoutError) as e:
                cause = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
                if isinstance(e, TimeoutError):
                    cause = f"timed out after {self.config.timeout_s}s ({cause})"
                overload = isinstance(e, (TimeoutError, aiohttp.ClientConnectionError))
            finally:
                in_flight = self._inflight[i]
                if 200 <= status < 300:
                    limit.on_sample(max(clock() - t0, 1e-9), in_flight, ticket)
                    # Wall-clock time: the same moments in every process and host, so the
                    # clients of one guard drain together without talking to each other.
                    if limit.adaptive and limit.drain_due(time.time()):
                        limit.drain()
                elif overload or status in _OVERLOAD_STATUSES:
                    limit.on_overload(ticket)
                else:  # another error, or cancelled: the window no longer waits for it
                    limit.on_drop(in_flight, ticket)
                self._inflight[i] -= 1
                self._in_flight -= 1
                st.inflight[i] -= 1
                self._wake(st, answered=200 <= status < 300)
            attempts += 1
            if 200 <= status < 300:
                try:
                    data = _loads(raw)
                except ValueError:
                    cause = f"HTTP {status} with a body that is not JSON: {raw[:200]!r}"
                else:
                    self._successes += 1
                    return data, base
            elif status:
                text = raw.decode("utf-8", "replace")
                if status != 429 and status < _RETRY_STATUSES_MIN:
                    self._errors += 1
                    self._per_url_fail[i] += 1
                    raise UpstreamRequestError(base, status, text)
                cause = f"HTTP {status}: {text[:200]}"
            self._per_url_fail[i] += 1
            if attempts > self.config.max_retries:
                self._errors += 1
                raise UpstreamUnavailableError(base, cause, attempts)
            self._retries += 1
            delay = self._retry_after(retry_after)
            if delay is None:
                delay = self._backoff(attempts)
            now = time.monotonic()
            self._penalty_until[i] = now + delay
            avoid = i
            # Another healthy replica takes the retry at once; sleep only when there is none.
            if delay > 0 and not self._healthy_other(i, now):
                self._retry_sleeps += 1
                await asyncio.sleep(delay)

    # ------------------------------------------------------------------ the server's counts
    async def _poll_counts(self, st: _LoopState, i: int) -> None:
        """Read URL ``i``'s counts every ``counts_every_s`` (the job's interval x its clients)
        while this loop has requests in flight to it, one reading at a time. On a timer, not
        on answers: a guard that finishes in waves answers in bursts, and readings taken only
        then would come once a round trip, at the one instant its queue is empty."""
        try:
            while st.inflight[i] > 0 and not self._counts_off[i]:
                now = time.monotonic()
                if now >= self._counts_due[i]:
                    self._counts_due[i] = now + self._counts_every
                    await self._read_counts(st, i)
                    continue
                await asyncio.sleep(min(self._counts_due[i] - now, self._counts_every))
        finally:
            st.pollers[i] = None

    async def _read_counts(self, st: _LoopState, i: int) -> None:
        base = self.urls[i]
        try:
            async with st.session.get(base + "/metrics", timeout=self._counts_timeout) as resp:
                status = resp.status
                text = await resp.text(errors="replace") if status == 200 else ""
        except (aiohttp.ClientError, TimeoutError) as e:
            self._counts_failed(i, f"{type(e).__name__}: {e}" if str(e) else type(e).__name__)
            return
        if status != 200:  # a 4xx will not change (no such page, not for us); a 5xx may
            self._counts_failed(i, f"HTTP {status}", for_good=400 <= status < 500 and status != 429)
            return
        counts = parse_server_counts(text)
        if counts is None:
            self._counts_failed(i, "no vLLM or SGLang running/waiting gauges", for_good=True)
            return
        self._counts_failing[i] = 0
        self._counts_reads[i] += 1
        self.limits[i].observe_upstream(*counts)

    def _counts_failed(self, i: int, why: str, for_good: bool = False) -> None:
        """A reading failed: latency steers URL ``i`` again after ``_COUNTS_FAILURES`` in a
        row (read again after ``limit_counts_retry_s``), or at once and for good when the server
        has no such gauges or refuses them to us. Never an error for the caller: the requests
        do not depend on it."""
        self._counts_errors[i] += 1
        self._counts_failing[i] += 1
        logger.debug("%s/metrics: reading failed (%s)", self.urls[i], why)
        if not for_good and self._counts_failing[i] < _COUNTS_FAILURES:
            return
        self._counts_failing[i] = 0
        self.limits[i].forget_upstream()
        if for_good:
            if not self._counts_off[i]:  # readings already under way fail the same way
                self._counts_off[i] = True
                logger.warning("%s/metrics: %s; its limit is steered by latency", self.urls[i], why)
        else:
            retry = self.config.limit_counts_retry_s
            self._counts_due[i] = time.monotonic() + retry
            logger.warning(
                "%s/metrics failed %d times in a row (%s); its limit is steered by latency, read again in %.0f s",
                self.urls[i],
                _COUNTS_FAILURES,
                why,
                retry,
            )

    async def post_json_from(self, path: str, payload: Mapping[str, Any]) -> tuple[Any, str]:
        """POST ``payload`` as JSON to ``path`` on one replica; return (decoded JSON, base URL)."""
        return await self._request("POST", path, _dumps(payload))

    async def post_json(self, path: str, payload: Mapping[str, Any]) -> Any:
        """POST ``payload`` as JSON to ``path`` (e.g. ``/v1/chat/completions``) with load
        spread and retries; return the decoded JSON body.

        Raises :class:`UpstreamUnavailableError` after retries, :class:`UpstreamRequestError`
        on a 4xx other than 429.
        """
        return (await self._request("POST", path, _dumps(payload)))[0]

    async def get_json(self, path: str) -> Any:
        """GET ``path`` from one replica (load spread and retries as for ``post_json``)."""
        return (await self._request("GET", path, None))[0]

    # ------------------------------------------------------------------ readiness
    async def _probe(self, base: str, model: str | None) -> str:
        st = await self._state()
        timeout = aiohttp.ClientTimeout(total=self.config.ready_timeout_s)
        try:
            async with st.session.get(base + "/v1/models", timeout=timeout) as resp:
                raw = await resp.read()
                if resp.status != 200:
                    return f"HTTP {resp.status} from /v1/models: {raw[:200].decode('utf-8', 'replace')}"
        except (aiohttp.ClientError, TimeoutError) as e:
            return f"unreachable: {type(e).__name__}: {e}"
        try:
            served = [m.get("id") for m in _loads(raw).get("data", [])]
        except (ValueError, AttributeError, TypeError):
            return f"/v1/models answered something that is not an OpenAI model list: {raw[:200]!r}"
        if model is not None and model not in served:
            return f"model {model!r} is not served here (served: {', '.join(map(str, served)) or 'none'})"
        return "ok"

    async def check_ready(self, model: str | None = None) -> ReadyReport:
        """Probe every replica once (``GET /v1/models``, no retries). Ready only when all
        answer and, if ``model`` is given, all serve it: a run should not start with a
        replica that will fail every request routed to it."""
        results = await asyncio.gather(*(self._probe(u, model) for u in self.urls))
        detail = dict(zip(self.urls, results))
        return ReadyReport(ready=all(r == "ok" for r in results), detail=detail)

    # ------------------------------------------------------------------ stats / close
    def stats(self) -> dict[str, float]:
        """Counters and gauges since construction, flat: ``requests`` (attempts, retries
        included), ``successes``, ``retries``, ``retry_sleeps`` (retries that waited for a
        backoff because no other replica was healthy), ``errors`` (calls given up),
        ``in_flight``, ``waiting`` (callers waiting for room under the limits); per URL ``requests/<url>``, ``failures/<url>``, ``in_flight/<url>``,
        ``limit/<url>`` with ``limit_min/<url>`` and ``limit_max/<url>``, ``increases/<url>``,
        ``decreases/<url>``, ``drains/<url>`` and ``relearns/<url>`` (floor re-measures that found it higher),
        ``tail_sends/<url>`` (requests sent beyond the limit as a batch's last, ``limit_tail``),
        and, once measured, ``latency_s/<url>`` (last window's mean) and ``latency_floor_s/<url>``;
        with ``limit_signal: server_counts``, ``counts_reads/<url>``, ``counts_errors/<url>`` and,
        while the counts steer, ``server_slots/<url>`` (the server's batch as the counts show it)."""
        out: dict[str, float] = {
            "requests": self._requests,
            "successes": self._successes,
            "retries": self._retries,
            "retry_sleeps": self._retry_sleeps,
            "errors": self._errors,
            "in_flight": self._in_flight,
            "waiting": sum(len(st.waiters) for st in list(self._states.values())),
        }
        for i, url in enumerate(self.urls):
            lim = self.limits[i]
            out[f"requests/{url}"] = self._per_url[i]
            out[f"failures/{url}"] = self._per_url_fail[i]
            out[f"in_flight/{url}"] = self._inflight[i]
            out[f"limit/{url}"] = lim.limit
            out[f"limit_min/{url}"] = lim.minimum
            out[f"limit_max/{url}"] = lim.maximum
            out[f"increases/{url}"] = lim.increases
            out[f"decreases/{url}"] = lim.decreases
            out[f"drains/{url}"] = lim.drains
            out[f"relearns/{url}"] = lim.relearns
            out[f"tail_sends/{url}"] = self._tail_sends[i]
            if lim.latency is not None:
                out[f"latency_s/{url}"] = lim.latency
            if lim.floor is not None:
                out[f"latency_floor_s/{url}"] = lim.floor
            if self._counts_every:
                out[f"counts_reads/{url}"] = self._counts_reads[i]
                out[f"counts_errors/{url}"] = self._counts_errors[i]
                if lim.slots:
                    out[f"server_slots/{url}"] = lim.slots
        return out

    async def aclose(self) -> None:
        """Close this loop's session; forget sessions of loops that are gone or closed
        (their sockets died with the loop)."""
        loop = asyncio.get_running_loop()
        st = self._states.pop(loop, None)
        if st is not None:
            pollers = [t for t in st.pollers if t is not None]
            for task in pollers:
                task.cancel()
            await asyncio.gather(*pollers, return_exceptions=True)
            await st.session.close()
        for other in list(self._states.keys()):
            if other.is_closed():
                self._states.pop(other, None)
        self._last_loop = self._last_state = None

    async def __aenter__(self) -> OpenAIHTTPClient:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()
