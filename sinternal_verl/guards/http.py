"""Async transport for OpenAI-compatible HTTP servers (vLLM, SGLang, any ``/v1`` API).

Shared by the guard client, the data pipeline's expert-critique client and the
OpenAI-endpoint sampler, so it knows nothing about guards: it moves JSON to and from a set
of replicas and makes failures explicit.

Why it looks the way it does:

* **aiohttp, one pooled session per event loop.** httpx costs too much CPU per request on a
  2-core box; a session (and its semaphore) is bound to the loop that created it, and verl's
  reward workers and our sync wrappers may each run their own loop. So state is created
  lazily *inside* the running loop and kept per loop; never shared across loops.
* **Least-in-flight load spread with a per-URL bound.** One semaphore of
  ``len(urls) * max_concurrency_per_url`` slots gives backpressure (callers wait, they do
  not fail); once a slot is held, the URL with the fewest requests in flight is picked
  (ties rotate), and a URL that just failed is skipped for its backoff while others are up.
  The bound holds per event loop.
* **Retries** with exponential backoff and jitter on connect errors, timeouts, 5xx, 429
  (``Retry-After`` honoured, capped) and unreadable JSON; the retry goes to another replica
  when there is one. After ``max_retries`` an :class:`UpstreamUnavailableError` names the
  URL and the cause. A 4xx other than 429 is the request's fault: raised at once as
  :class:`UpstreamRequestError`.
* **Lean hot path**: headers built once, the body serialised once (orjson when present),
  no per-call objects beyond the request itself.
"""

from __future__ import annotations

import asyncio
import email.utils
import random
import time
import weakref
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

import aiohttp
from yarl import URL

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

_RETRY_STATUSES_MIN = 500


@dataclass(frozen=True)
class HTTPClientConfig:
    """Everything the transport needs; every number is a knob."""

    #: base URLs, e.g. ``http://host:8000`` (a trailing ``/v1`` is accepted and dropped:
    #: callers pass full paths such as ``/v1/chat/completions``).
    urls: tuple[str, ...]
    api_key: str | None = field(default=None, repr=False)
    #: requests in flight per URL (per event loop); the rest wait.
    max_concurrency_per_url: int = 64
    #: seconds for one HTTP attempt (connect + send + read).
    timeout_s: float = 60.0
    #: seconds to establish a connection; ``None`` means bounded by ``timeout_s`` only.
    connect_timeout_s: float | None = None
    #: retries after the first attempt (connect errors, timeouts, 5xx, 429, bad JSON).
    max_retries: int = 4
    backoff_base_s: float = 0.5
    backoff_max_s: float = 8.0
    #: upper bound on a server's ``Retry-After`` (a misconfigured server must not stall a run).
    retry_after_max_s: float = 60.0
    #: timeout of one readiness probe (``GET /v1/models``), no retries.
    ready_timeout_s: float = 5.0
    #: extra headers sent with every request.
    headers: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.urls:
            raise ValueError("HTTPClientConfig needs at least one base URL")
        if self.max_concurrency_per_url < 1:
            raise ValueError("max_concurrency_per_url must be >= 1")
        if self.max_retries < 0:
            raise ValueError("max_retries must be >= 0")
        if self.timeout_s <= 0:
            raise ValueError("timeout_s must be > 0")

    @classmethod
    def from_guard_config(cls, cfg: Any) -> "HTTPClientConfig":
        """Take the transport fields of a :class:`~sinternal_verl.guards.config.GuardConfig`."""
        return cls(
            urls=tuple(cfg.urls),
            api_key=cfg.api_key,
            max_concurrency_per_url=cfg.max_concurrency_per_url,
            timeout_s=cfg.timeout_s,
            max_retries=cfg.max_retries,
            backoff_base_s=cfg.backoff_base_s,
            backoff_max_s=cfg.backoff_max_s,
            retry_after_max_s=getattr(cfg, "retry_after_max_s", 60.0),
            ready_timeout_s=getattr(cfg, "ready_timeout_s", 5.0),
        )


@dataclass
class HTTPStats:
    """Counters since construction (a snapshot when returned by ``stats``)."""

    #: HTTP attempts sent (retries included).
    requests: int = 0
    #: calls answered with a 2xx and readable JSON.
    successes: int = 0
    #: attempts that failed and were retried.
    retries: int = 0
    #: calls given up: unavailable after retries, or rejected with a 4xx.
    errors: int = 0
    #: attempts in flight right now.
    in_flight: int = 0
    #: attempts sent per base URL.
    per_url: dict[str, int] = field(default_factory=dict)
    #: failed attempts per base URL.
    per_url_failures: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "successes": self.successes,
            "retries": self.retries,
            "errors": self.errors,
            "in_flight": self.in_flight,
            "per_url": dict(self.per_url),
            "per_url_failures": dict(self.per_url_failures),
        }


def normalize_base_url(url: str) -> str:
    """``http://h:8000/v1/`` -> ``http://h:8000`` (paths carry their own ``/v1``)."""
    url = url.strip().rstrip("/")
    if url.endswith("/v1"):
        url = url[: -len("/v1")]
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"base URL must start with http:// or https://, got {url!r}")
    return url


class _LoopState:
    """What must live in one event loop: the pooled session, the slot semaphore, and a
    keeper that closes the session when the loop shuts down."""

    __slots__ = ("session", "sem", "keeper")

    def __init__(self, session: aiohttp.ClientSession, sem: asyncio.Semaphore):
        self.session = session
        self.sem = sem
        self.keeper: Any = None


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
    callers; ``post_json_from`` also says which base URL answered. Usable from any running
    event loop; call ``aclose()`` from each loop that used it (or at least the last one).
    """

    def __init__(self, config: HTTPClientConfig):
        self.config = config
        self.urls: tuple[str, ...] = tuple(normalize_base_url(u) for u in config.urls)
        self._n = len(self.urls)
        self._cap = config.max_concurrency_per_url
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if config.api_key:
            headers["Authorization"] = f"Bearer {config.api_key}"
        headers.update(config.headers)
        self._headers = headers
        self._timeout = aiohttp.ClientTimeout(total=config.timeout_s, connect=config.connect_timeout_s)
        self._inflight = [0] * self._n
        self._penalty_until = [0.0] * self._n
        self._rr = 0
        self._url_cache: dict[tuple[int, str], URL] = {}
        self._states: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopState]" = weakref.WeakKeyDictionary()
        self._last_loop: asyncio.AbstractEventLoop | None = None
        self._last_state: _LoopState | None = None
        # counters (plain ints: cheaper than a dataclass attribute chain on the hot path)
        self._requests = 0
        self._successes = 0
        self._retries = 0
        self._errors = 0
        self._in_flight = 0
        self._per_url = [0] * self._n
        self._per_url_fail = [0] * self._n

    @classmethod
    def from_urls(cls, urls: str | Iterable[str], **kw: Any) -> "OpenAIHTTPClient":
        """``OpenAIHTTPClient.from_urls("http://a:8000,http://b:8000", api_key=...)``."""
        if isinstance(urls, str):
            urls = [u for u in urls.split(",") if u.strip()]
        return cls(HTTPClientConfig(urls=tuple(urls), **kw))

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
                limit=0,  # our semaphore is the bound; the connector must not add a second queue
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
            st = _LoopState(session, asyncio.Semaphore(self._n * self._cap))
            st.keeper = _session_keeper(session)
            await st.keeper.__anext__()
            self._states[loop] = st
        self._last_loop, self._last_state = loop, st
        return st

    # ------------------------------------------------------------------ URL choice
    def _pick(self, avoid: int) -> int:
        """Least in flight among usable URLs; ties rotate; ``avoid`` (the URL that just
        failed) and URLs in their failure backoff are skipped while another has room."""
        n = self._n
        if n == 1:
            return 0
        now = time.monotonic()
        inflight = self._inflight
        pen = self._penalty_until
        cap = self._cap
        self._rr = start = (self._rr + 1) % n
        best = -1
        best_load = 1 << 30
        fallback = -1
        fallback_load = 1 << 30
        for k in range(n):
            i = (start + k) % n
            load = inflight[i]
            if load < fallback_load:
                fallback, fallback_load = i, load
            if i == avoid or pen[i] > now or load >= cap:
                continue
            if load < best_load:
                best, best_load = i, load
        return best if best >= 0 else fallback

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
        while True:
            status = 0
            retry_after: str | None = None
            raw = b""
            cause = ""
            async with st.sem:
                i = self._pick(avoid)
                base = self.urls[i]
                self._inflight[i] += 1
                self._in_flight += 1
                self._requests += 1
                self._per_url[i] += 1
                target = self._url_cache.get((i, path))
                if target is None:
                    target = self._url_cache[(i, path)] = URL(base + path)
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
                finally:
                    self._inflight[i] -= 1
                    self._in_flight -= 1
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
            self._penalty_until[i] = time.monotonic() + delay
            avoid = i
            if delay > 0:
                await asyncio.sleep(delay)

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
    @property
    def stats(self) -> HTTPStats:
        return HTTPStats(
            requests=self._requests,
            successes=self._successes,
            retries=self._retries,
            errors=self._errors,
            in_flight=self._in_flight,
            per_url=dict(zip(self.urls, self._per_url)),
            per_url_failures=dict(zip(self.urls, self._per_url_fail)),
        )

    async def aclose(self) -> None:
        """Close this loop's session; forget sessions of loops that are gone or closed
        (their sockets died with the loop)."""
        loop = asyncio.get_running_loop()
        st = self._states.pop(loop, None)
        if st is not None:
            await st.session.close()
        for other in list(self._states.keys()):
            if other.is_closed():
                self._states.pop(other, None)
        self._last_loop = self._last_state = None

    async def __aenter__(self) -> "OpenAIHTTPClient":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()
