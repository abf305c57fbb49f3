"""Guard client for OpenAI-compatible servers: the :class:`~.types.Guard` protocol on top of
:class:`~.http.OpenAIHTTPClient`.

The transport moves JSON; this layer knows guard formats (one registered module per kind,
see :mod:`.registry`: the client never branches on a kind's name), and saves guard calls:
verl scores every trajectory separately and concurrently, GRPO groups repeat prompts and
policies repeat answers, so identical (prompt, answer) pairs in flight share one HTTP call
and finished verdicts sit in an LRU cache bounded in entries *and bytes*, keyed by a hash
(a key never holds the texts: 8k-token answers would otherwise cost gigabytes per worker).
Failures stay explicit:

* transport failure after retries -> :class:`GuardUnavailableError` (URL + cause);
* a 401/403/404/405 (wrong key, model not served, endpoint missing) ->
  :class:`GuardConfigError`: the guard as configured cannot answer, for any item;
* any other 4xx (e.g. vLLM's 400 when prompt + answer exceed ``max_model_len``) -> a verdict
  with ``rejected=True``, the status and the guard's message: one bad item never sinks a
  batch, is never "safe", and the reward's ``on_guard_rejected`` decides its score;
* unreadable text or a malformed response body (after ``parse_retries`` re-asks) -> a
  verdict with ``parse_ok=False`` and the reason in ``extra``.

Rejected and unreadable verdicts are not cached.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import hashlib
import weakref
from collections.abc import Mapping, Sequence
from typing import Any

from .config import GuardConfig
from .http import HTTPClientConfig, OpenAIHTTPClient
from .parsing import unparsed
from .registry import get_kind
from .types import (
    GuardConfigError,
    GuardUnavailableError,
    GuardVerdict,
    ModerationItem,
    ReadyReport,
    UpstreamRequestError,
    UpstreamUnavailableError,
)

#: 4xx statuses that concern the guard as configured, not one item's request
GUARD_WIDE_STATUSES = (401, 403, 404, 405)
#: bookkeeping bytes per cache entry on top of the verdict's texts (dict slot, tuple, objects)
_ENTRY_OVERHEAD_BYTES = 600


def item_key(item: ModerationItem) -> bytes:
    """16-byte hash of what the verdict depends on (prompt, response, trace), unambiguous
    (length-prefixed, ``None`` distinct from ``""``) and safe for lone surrogates."""
    h = hashlib.blake2b(digest_size=16)
    for part in (item.prompt, item.response, item.trace):
        if part is None:
            h.update(b"\xff")
            continue
        data = part.encode("utf-8", "surrogatepass")
        h.update(len(data).to_bytes(8, "little"))
        h.update(data)
    return h.digest()


def _verdict_bytes(v: GuardVerdict) -> int:
    return _ENTRY_OVERHEAD_BYTES + 2 * (
        len(v.raw) + sum(len(c) for c in v.categories) + len(v.source) + len(repr(v.extra))
    )


def extract_text(body: Any, endpoint: str) -> tuple[str | None, list | None, str]:
    """(text, chat logprobs content, problem) from an OpenAI response body of *any* shape:
    a body that is not ``{"choices": [{...}]}`` with the right types is a problem string,
    never an exception."""
    choices = body.get("choices") if isinstance(body, dict) else None
    if not isinstance(choices, list) or not choices:
        return None, None, f"response has no choices: {str(body)[:200]}"
    choice = choices[0]
    if not isinstance(choice, dict):
        return None, None, f"choices[0] is a {type(choice).__name__}, not an object: {str(choice)[:200]}"
    logprobs = None
    if endpoint.endswith("/chat/completions"):
        message = choice.get("message")
        if not isinstance(message, dict):
            return (
                None,
                None,
                f"choices[0].message is a {type(message).__name__}, not an object: {str(message)[:200]}",
            )
        text = message.get("content")
        lp = choice.get("logprobs")
        if isinstance(lp, dict) and isinstance(lp.get("content"), list):
            logprobs = lp["content"]
    else:
        text = choice.get("text")
    if not isinstance(text, str):
        return None, None, f"choice has no text: {str(choice)[:200]}"
    return text, logprobs, ""


def error_message(body: str, limit: int) -> str:
    """The guard's own message from an error body (``{"error": {"message": ...}}`` as vLLM
    and OpenAI answer, ``{"detail": ...}`` as FastAPI does), else the text; cut to ``limit``."""
    import json

    msg: Any = body
    try:
        data = json.loads(body)
    except ValueError:
        data = None
    if isinstance(data, dict):
        err = data.get("error")
        if isinstance(err, dict) and isinstance(err.get("message"), str):
            msg = err["message"]
        elif isinstance(err, str):
            msg = err
        elif isinstance(data.get("detail"), str):
            msg = data["detail"]
        elif isinstance(data.get("message"), str):
            msg = data["message"]
    msg = str(msg).strip()
    return msg if len(msg) <= limit else msg[:limit] + "..."


def flat_stats(prefix: str, stats: Mapping[str, float]) -> dict[str, float]:
    """The transport's flat counters under ``prefix``; its per-URL ``name/<url>`` keys become
    ``prefix + name{url}`` (the label form the server's Prometheus export reads)."""
    out: dict[str, float] = {}
    for key, value in stats.items():
        name, _, url = key.partition("/")
        out[f"{prefix}{name}{{{url}}}" if url else f"{prefix}{name}"] = float(value)
    return out


class OpenAIGuardClient:
    """A :class:`~.types.Guard` backed by vLLM/SGLang replicas of a guard model.

    ``await client.moderate([ModerationItem(prompt, response)])`` -> verdicts, in order.
    Usable from any running event loop (transport and in-flight tables are per loop).
    """

    def __init__(self, config: GuardConfig, http: OpenAIHTTPClient | None = None):
        spec = get_kind(config.kind)
        if spec.local:
            raise GuardConfigError(
                "(none)", f"guard kind {spec.name!r} is local; OpenAIGuardClient serves model kinds", 0
            )
        self.config = config
        self.kind = spec.name
        self.spec = spec
        self.model = config.model or spec.default_model
        self._endpoint: str = spec.endpoint  # type: ignore[assignment]
        self._owns_http = http is None
        self.http = http or OpenAIHTTPClient(HTTPClientConfig.from_guard_config(config))
        self._soft = bool(config.soft_score) and spec.supports_soft_score
        self._top_logprobs = int(getattr(config, "top_logprobs", 5))
        self._max_tokens = config.max_new_tokens
        self._parse_retries = max(0, config.parse_retries)
        self._cache_size = max(0, config.cache_size)
        self._cache_max_bytes = config.cache_max_bytes
        self._msg_limit = config.rejected_message_max_chars
        self._cache: collections.OrderedDict[bytes, tuple[GuardVerdict, int]] = collections.OrderedDict()
        self._cache_bytes = 0
        self._pending: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[bytes, asyncio.Future]] = (
            weakref.WeakKeyDictionary()
        )
        self._last_loop: asyncio.AbstractEventLoop | None = None
        self._last_pending: dict[bytes, asyncio.Future] = {}
        self._items = self._requests = self._cache_hits = self._dedup_hits = 0
        self._parse_retry_count = self._parse_failures = self._errors = self._in_flight = 0
        self._rejected = 0
        self._rejected_by_status: collections.Counter[int] = collections.Counter()

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
        key = item_key(item)
        cache = self._cache
        if self._caching:
            hit = cache.get(key)
            if hit is not None:
                try:
                    cache.move_to_end(key)
                except KeyError:  # evicted meanwhile by a loop in another thread
                    pass
                self._cache_hits += 1
                return hit[0]
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

    def stats(self) -> dict[str, float]:
        """Flat counters: this client's, then the transport's under ``http_`` (per-URL
        figures as ``http_<name>{url}``), and rejections per status as ``rejected{400}``."""
        out = {
            "items": self._items,
            "requests": self._requests,
            "cache_hits": self._cache_hits,
            "dedup_hits": self._dedup_hits,
            "parse_retries": self._parse_retry_count,
            "parse_failures": self._parse_failures,
            "rejected": self._rejected,
            "errors": self._errors,
            "in_flight": self._in_flight,
            "cache_size": len(self._cache),
            "cache_bytes": self._cache_bytes,
        }
        flat = {k: float(v) for k, v in out.items()}
        for status, n in sorted(self._rejected_by_status.items()):
            flat[f"rejected{{{status}}}"] = float(n)
        flat.update(flat_stats("http_", self.http.stats()))
        # the headline retry count is the transport's (connect errors, timeouts, 5xx, 429)
        flat["retries"] = flat.get("http_retries", 0.0)
        return flat

    async def aclose(self) -> None:
        if self._owns_http:
            await self.http.aclose()

    async def __aenter__(self) -> OpenAIGuardClient:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()

    # ------------------------------------------------------------------ internals
    @property
    def _caching(self) -> bool:
        return self._cache_size > 0 and self._cache_max_bytes > 0

    def _remember(self, key: bytes, verdict: GuardVerdict) -> None:
        size = _verdict_bytes(verdict)
        if size > self._cache_max_bytes:
            return
        cache = self._cache
        old = cache.pop(key, None)
        if old is not None:
            self._cache_bytes -= old[1]
        cache[key] = (verdict, size)
        self._cache_bytes += size
        while cache and (len(cache) > self._cache_size or self._cache_bytes > self._cache_max_bytes):
            _, (_, n) = cache.popitem(last=False)
            self._cache_bytes -= n

    def _rejected_verdict(self, e: UpstreamRequestError) -> GuardVerdict:
        self._rejected += 1
        self._rejected_by_status[e.status] += 1
        message = error_message(e.body, self._msg_limit)
        return GuardVerdict(
            label=None,
            parse_ok=False,
            raw="",
            source=e.url,
            rejected=True,
            status=e.status,
            message=message,
            extra={
                "parse_error": f"guard rejected this item: HTTP {e.status}: {message}",
                "http_status": e.status,
            },
        )

    async def _fetch(self, item: ModerationItem, key: bytes) -> GuardVerdict:
        spec = self.spec
        payload = spec.build_payload(item, self.model, self._max_tokens, self._soft, self._top_logprobs)  # type: ignore[misc]
        self._in_flight += 1
        try:
            verdict: GuardVerdict | None = None
            logprobs: list | None = None
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
                    if e.status not in GUARD_WIDE_STATUSES:
                        return self._rejected_verdict(e)
                    self._errors += 1
                    raise GuardConfigError(
                        e.url, f"HTTP {e.status}: {error_message(e.body, self._msg_limit)}", 1
                    ) from e
                text, logprobs, problem = extract_text(body, self._endpoint)
                if text is None:
                    verdict = unparsed("", problem, base)
                    continue
                verdict = spec.parse(text, item, base)  # type: ignore[misc]
                if verdict.parse_ok:
                    break
            assert verdict is not None
            if not verdict.parse_ok:
                self._parse_failures += 1
                verdict.extra["attempts"] = self._parse_retries + 1
                return dataclasses.replace(verdict, message=str(verdict.extra.get("parse_error", "")))
            if self._soft:
                verdict = self._with_soft_score(verdict, logprobs)
            if self._caching:
                self._remember(key, verdict)
            return verdict
        finally:
            self._in_flight -= 1

    def _with_soft_score(self, verdict: GuardVerdict, logprobs: list | None) -> GuardVerdict:
        scores = self.spec.soft_score(logprobs)  # type: ignore[misc]
        extra = dict(verdict.extra)
        if scores is None:
            extra["soft_score_error"] = "no logprobs for the token after 'Safety:'"
            return dataclasses.replace(verdict, extra=extra)
        p_unsafe, p_controversial = scores
        extra["p_controversial"] = p_controversial
        return dataclasses.replace(verdict, p_unsafe=p_unsafe, extra=extra)
