"""Guard client for OpenAI-compatible servers: the :class:`~.types.Guard` protocol on top of
:class:`~.http.OpenAIHTTPClient`.

The transport moves JSON; this layer knows guard formats (one module per kind), and saves
guard calls: verl scores every trajectory separately and concurrently, GRPO groups repeat
prompts and policies repeat answers, so identical (prompt, answer) pairs in flight share
one HTTP call and finished verdicts sit in an LRU cache. Failures stay explicit:

* transport failure after retries -> :class:`GuardUnavailableError` (URL + cause);
* a 401/403/404 (wrong key, model not served) -> :class:`GuardUnavailableError` too: the
  guard as configured cannot answer, for any item;
* a 400/413/422 (this item's request is bad, e.g. longer than the guard's context) and
  unreadable text (after ``parse_retries`` re-asks) -> a verdict with ``parse_ok=False``
  and the reason in ``extra``: one bad item never sinks a batch, and is never "safe".
  Such verdicts are not cached.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import weakref
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from . import llamaguard, qwen3guard, wildguard
from .config import GuardConfig
from .http import HTTPClientConfig, OpenAIHTTPClient
from .parsing import unparsed
from .types import GuardConfigError, GuardUnavailableError, GuardVerdict, ModerationItem, ReadyReport, UpstreamRequestError, UpstreamUnavailableError

#: kind -> module with ENDPOINT, build_payload(item, model, max_tokens, soft_score, top_logprobs), parse(...)
FORMATS = {"qwen3guard": qwen3guard, "llamaguard": llamaguard, "wildguard": wildguard}
#: kinds whose first label token carries the soft score
SOFT_SCORE_KINDS = ("qwen3guard",)
#: 4xx statuses that concern one item's request, not the guard as a whole
ITEM_REJECT_STATUSES = (400, 413, 422)


@dataclass
class GuardStats:
    """Counters for logs and the reward server's Prometheus export (``as_dict``)."""

    #: items asked for (cache and dedup hits included)
    items: int = 0
    #: guard calls that went upstream (parse retries included; HTTP retries are in ``http``)
    requests: int = 0
    cache_hits: int = 0
    dedup_hits: int = 0
    #: re-asks after an unreadable answer
    parse_retries: int = 0
    #: verdicts returned with ``parse_ok=False`` (unreadable after retries, or item rejected)
    parse_failures: int = 0
    #: calls that raised :class:`GuardUnavailableError`
    errors: int = 0
    #: guard calls in flight right now
    in_flight: int = 0
    cache_size: int = 0
    #: the transport's flat ``OpenAIHTTPClient.stats()`` (per-URL figures as ``name/<url>``)
    http: Mapping[str, float] = field(default_factory=dict)

    @property
    def retries(self) -> int:
        """HTTP-level retries (connect errors, timeouts, 5xx, 429)."""
        return int(self.http.get("retries", 0))

    def as_dict(self) -> dict[str, int]:
        """Flat numeric dict (per-URL figures as ``http_requests{url}`` keys)."""
        out = {
            "items": self.items,
            "requests": self.requests,
            "cache_hits": self.cache_hits,
            "dedup_hits": self.dedup_hits,
            "parse_retries": self.parse_retries,
            "parse_failures": self.parse_failures,
            "errors": self.errors,
            "in_flight": self.in_flight,
            "cache_size": self.cache_size,
            "retries": self.retries,
        }
        for key, value in self.http.items():  # http_requests, http_limit{url}, ...
            name, _, url = key.partition("/")
            out[f"http_{name}{{{url}}}" if url else f"http_{name}"] = value
        return out


def extract_text(body: Any, endpoint: str) -> tuple[str | None, list[dict] | None, str]:
    """(text, chat logprobs content, problem) from an OpenAI response body."""
    try:
        choice = body["choices"][0]
    except (KeyError, IndexError, TypeError):
        return None, None, f"response has no choices: {str(body)[:200]}"
    if endpoint.endswith("/chat/completions"):
        message = choice.get("message") or {}
        text = message.get("content")
        logprobs = (choice.get("logprobs") or {}).get("content")
    else:
        text = choice.get("text")
        logprobs = None
    if not isinstance(text, str):
        return None, None, f"choice has no text: {str(choice)[:200]}"
    return text, logprobs, ""


class OpenAIGuardClient:
    """A :class:`~.types.Guard` backed by vLLM/SGLang replicas of a guard model.

    ``await client.moderate([ModerationItem(prompt, response)])`` -> verdicts, in order.
    Usable from any running event loop (transport and in-flight tables are per loop).
    """

    def __init__(self, config: GuardConfig, http: OpenAIHTTPClient | None = None):
        if config.kind not in FORMATS:
            raise ValueError(f"OpenAIGuardClient serves {', '.join(FORMATS)}; got kind {config.kind!r}")
        self.config = config
        self.kind = config.kind
        self.model = config.model_name
        self._fmt = FORMATS[config.kind]
        self._endpoint: str = self._fmt.ENDPOINT
        self._owns_http = http is None
        self.http = http or OpenAIHTTPClient(HTTPClientConfig.from_guard_config(config))
        self._soft = bool(config.soft_score) and config.kind in SOFT_SCORE_KINDS
        self._top_logprobs = int(getattr(config, "top_logprobs", 5))
        self._max_tokens = config.max_new_tokens
        self._parse_retries = max(0, config.parse_retries)
        self._cache_size = max(0, config.cache_size)
        self._cache: collections.OrderedDict[tuple, GuardVerdict] = collections.OrderedDict()
        self._pending: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple, asyncio.Future]]" = (
            weakref.WeakKeyDictionary()
        )
        self._last_loop: asyncio.AbstractEventLoop | None = None
        self._last_pending: dict[tuple, asyncio.Future] = {}
        self._items = self._requests = self._cache_hits = self._dedup_hits = 0
        self._parse_retry_count = self._parse_failures = self._errors = self._in_flight = 0

    # ------------------------------------------------------------------ public API
    async def moderate(self, items: Sequence[ModerationItem]) -> list[GuardVerdict]:
        """One verdict per item, in order. Raises :class:`GuardUnavailableError` if the
        guard cannot be reached after retries."""
        if not items:
            return []
        if len(items) == 1:
            return [await self.moderate_one(items[0])]
        return list(await asyncio.gather(*[self.moderate_one(it) for it in items]))

    async def moderate_one(self, item: ModerationItem) -> GuardVerdict:
        self._items += 1
        key = (item.prompt, item.response, item.trace)
        cache = self._cache
        if self._cache_size:
            hit = cache.get(key)
            if hit is not None:
                try:
                    cache.move_to_end(key)
                except KeyError:  # evicted meanwhile by a loop in another thread
                    pass
                self._cache_hits += 1
                return hit
        loop = asyncio.get_running_loop()
        if loop is self._last_loop:
            pending = self._last_pending
        else:
            pending = self._pending.get(loop)
            if pending is None:
                pending = self._pending[loop] = {}
            self._last_loop, self._last_pending = loop, pending
        while True:
            shared = pending.get(key)
            if shared is None:
                break
            self._dedup_hits += 1
            try:
                return await asyncio.shield(shared)
            except asyncio.CancelledError:
                # The owner of the shared call was cancelled, not us: do the call ourselves.
                task = asyncio.current_task()
                if shared.cancelled() and task is not None and not task.cancelling():
                    self._dedup_hits -= 1
                    continue
                raise
        # We own the call: run it inline (no extra task) and publish the outcome to any
        # identical item that arrives meanwhile.
        fut = loop.create_future()
        pending[key] = fut
        try:
            verdict = await self._fetch(item, key)
        except asyncio.CancelledError:
            fut.cancel()
            raise
        except BaseException as e:
            fut.set_exception(e)
            fut.exception()  # retrieved here: followers still get it, nobody else must
            raise
        else:
            fut.set_result(verdict)
            return verdict
        finally:
            if pending.get(key) is fut:
                del pending[key]

    async def check_ready(self) -> ReadyReport:
        """Every replica answers ``GET /v1/models`` and serves the configured model."""
        return await self.http.check_ready(self.model)

    @property
    def stats(self) -> GuardStats:
        return GuardStats(
            items=self._items,
            requests=self._requests,
            cache_hits=self._cache_hits,
            dedup_hits=self._dedup_hits,
            parse_retries=self._parse_retry_count,
            parse_failures=self._parse_failures,
            errors=self._errors,
            in_flight=self._in_flight,
            cache_size=len(self._cache),
            http=self.http.stats(),
        )

    def clear_cache(self) -> None:
        self._cache.clear()

    async def aclose(self) -> None:
        if self._owns_http:
            await self.http.aclose()

    async def __aenter__(self) -> "OpenAIGuardClient":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()

    # ------------------------------------------------------------------ internals
    async def _fetch(self, item: ModerationItem, key: tuple) -> GuardVerdict:
        fmt = self._fmt
        response_mod = item.response is not None
        payload = fmt.build_payload(item, self.model, self._max_tokens, self._soft, self._top_logprobs)
        self._in_flight += 1
        try:
            verdict: GuardVerdict | None = None
            for attempt in range(self._parse_retries + 1):
                if attempt:
                    self._parse_retry_count += 1
                self._requests += 1
                try:
                    body, base = await self.http.post_json_from(self._endpoint, payload)
                except UpstreamUnavailableError as e:
                    self._errors += 1
                    raise GuardUnavailableError(e.url, e.cause, e.attempts) from e
                except UpstreamRequestError as e:
                    if e.status in ITEM_REJECT_STATUSES:
                        self._parse_failures += 1
                        v = unparsed("", f"guard rejected this item: HTTP {e.status}: {e.body[:300]}", e.url)
                        v.extra["http_status"] = e.status
                        return v
                    self._errors += 1
                    raise GuardConfigError(e.url, f"HTTP {e.status}: {e.body[:300]}", 1) from e
                text, logprobs, problem = extract_text(body, self._endpoint)
                if text is None:
                    verdict = unparsed("", problem, base)
                    continue
                if fmt is wildguard:
                    verdict = fmt.parse(text, response_mod, base, response_empty=not (item.response or "").strip())
                else:
                    verdict = fmt.parse(text, response_mod, base)
                if verdict.parse_ok:
                    break
            assert verdict is not None
            if not verdict.parse_ok:
                self._parse_failures += 1
                verdict.extra["attempts"] = self._parse_retries + 1
                return verdict
            if self._soft:
                verdict = self._with_soft_score(verdict, logprobs)
            if self._cache_size:
                cache = self._cache
                cache[key] = verdict
                if len(cache) > self._cache_size:
                    cache.popitem(last=False)
            return verdict
        finally:
            self._in_flight -= 1

    @staticmethod
    def _with_soft_score(verdict: GuardVerdict, logprobs: list[dict] | None) -> GuardVerdict:
        scores = qwen3guard.soft_score(logprobs)
        extra = dict(verdict.extra)
        if scores is None:
            extra["soft_score_error"] = "no logprobs for the token after 'Safety:'"
            return dataclasses.replace(verdict, extra=extra)
        p_unsafe, p_controversial = scores
        extra["p_controversial"] = p_controversial
        return dataclasses.replace(verdict, p_unsafe=p_unsafe, extra=extra)
