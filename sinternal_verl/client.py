"""Client of the standalone reward server (``sinternal-verl serve``), sync and async.

What users of remote reward servers keep asking for, built in: retries with exponential
backoff and jitter on connect errors, timeouts, 5xx and 429 (honouring ``Retry-After``);
large batches split into requests sent concurrently (bounded); and the answer is checked --
one result per input, ids echoed in order -- so a short or reordered answer can never be
mistaken for rewards. A 4xx other than 429 is raised at once with the server's message.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, is_dataclass
from typing import Any

import httpx

RETRY_STATUS = frozenset({429, 500, 502, 503, 504})


class RewardClientError(RuntimeError):
    """The server refused the request (4xx) or kept failing after every retry."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


class RewardProtocolError(RewardClientError):
    """The server answered 200 with a body that does not match the request."""


class ItemScoreError(RewardClientError):
    """Items failed on their own (``raise_on_item_error=True``)."""

    def __init__(self, errors: list[tuple[int, str]]):
        self.errors = errors
        shown = "; ".join(f"item {i}: {e}" for i, e in errors[:5])
        super().__init__(f"{len(errors)} item(s) could not be scored: {shown}")


@dataclass(frozen=True)
class RewardClientConfig:
    url: str
    api_key: str | None = field(default=None, repr=False)
    timeout_s: float = 300.0
    #: retries after the first attempt
    max_retries: int = 6
    backoff_base_s: float = 0.5
    backoff_max_s: float = 15.0
    #: items per HTTP request; larger batches are split (keep <= the server's --max-items)
    max_items_per_request: int = 256
    #: split requests in flight at once (async API)
    max_concurrency: int = 16
    #: the policy's chat template ends the prompt with ``<think>`` (R1-distill, Qwen3 thinking):
    #: sets ``trace_opened_in_prompt`` on items that do not say, so a response cut off inside
    #: the trace scores as truncated instead of as an answer
    trace_opened_in_prompt: bool = False


def _item_dict(item: Any) -> dict[str, Any]:
    if isinstance(item, Mapping):
        return {k: v for k, v in item.items() if v is not None}
    if hasattr(item, "model_dump"):
        return item.model_dump(exclude_none=True)
    if is_dataclass(item):
        return {k: v for k, v in asdict(item).items() if v is not None}
    raise TypeError(
        f"cannot send item of type {type(item).__name__}; use a dict with prompt/response/task/..."
    )


def _check_results(body: Any, items: Sequence[dict]) -> list[dict]:
    if not isinstance(body, dict) or not isinstance(body.get("results"), list):
        raise RewardProtocolError(f"reward server answer has no `results` list: {str(body)[:300]}")
    results = body["results"]
    if len(results) != len(items):
        raise RewardProtocolError(f"reward server returned {len(results)} results for {len(items)} items")
    for i, (res, item) in enumerate(zip(results, items)):
        if "id" in item and res.get("id") != item["id"]:
            raise RewardProtocolError(
                f"result {i} has id {res.get('id')!r}, expected {item['id']!r} (reordered answer)"
            )
        if res.get("error") is None and not isinstance(res.get("score"), (int, float)):
            raise RewardProtocolError(f"result {i} has neither a numeric score nor an error: {res}")
    return results


def _backoff(cfg: RewardClientConfig, attempt: int, retry_after: str | None) -> float:
    if retry_after:
        try:
            return min(float(retry_after), cfg.backoff_max_s) + random.uniform(0, cfg.backoff_base_s)
        except ValueError:
            pass
    return random.uniform(0, min(cfg.backoff_max_s, cfg.backoff_base_s * 2**attempt))


def _error_message(resp: httpx.Response) -> str:
    try:
        body = resp.json()
        return str(body.get("error", {}).get("message") or body)
    except Exception:  # noqa: BLE001 - non-JSON error page
        return resp.text[:500]


class RewardClient:
    """``RewardClient(url)``; ``score(items)`` / ``await ascore(items)`` return one dict per
    item (every reward field, ``error`` set for items that failed on their own).

    ``items`` are dicts (or pydantic models / dataclasses) with the ``/v1/score`` item
    fields: ``prompt``, ``response``, ``task`` (or ``data_source``), ``ground_truth``,
    ``prompt_type``, optional ``id``.
    """

    def __init__(self, url: str | None = None, *, config: RewardClientConfig | None = None, **kw: Any):
        if config is None:
            if url is None:
                raise ValueError("RewardClient needs a url (e.g. http://127.0.0.1:8900)")
            config = RewardClientConfig(url=url, **kw)
        self.config = config
        self.base = config.url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {config.api_key}"} if config.api_key else {}
        self._sync: httpx.Client | None = None
        self._async: httpx.AsyncClient | None = None
        #: counters for logs: requests sent, retries, split requests
        self.stats = {"requests": 0, "retries": 0, "items": 0}

    # ---- transport --------------------------------------------------------------------------
    def _sync_client(self) -> httpx.Client:
        if self._sync is None:
            self._sync = httpx.Client(timeout=self.config.timeout_s, headers=self._headers)
        return self._sync

    def _async_client(self) -> httpx.AsyncClient:
        if self._async is None:
            limits = httpx.Limits(max_connections=self.config.max_concurrency * 2)
            self._async = httpx.AsyncClient(
                timeout=self.config.timeout_s, headers=self._headers, limits=limits
            )
        return self._async

    def _outcome(self, resp: httpx.Response) -> tuple[bool, Any, str, str | None]:
        """(done, body, failure, retry_after) for one response; raises at once when retrying
        cannot help (a 4xx other than 429). Shared by the sync and async retry loops."""
        if resp.status_code == 200:
            return True, resp.json(), "", None
        last = f"HTTP {resp.status_code}: {_error_message(resp)}"
        if resp.status_code not in RETRY_STATUS:
            raise RewardClientError(
                f"reward server at {self.base} refused the request: {last}", resp.status_code
            )
        return False, None, last, resp.headers.get("retry-after")

    def _give_up(self, last: str) -> RewardClientError:
        return RewardClientError(
            f"reward server at {self.base} failed after {self.config.max_retries + 1} attempt(s): {last}"
        )

    def _post_sync(self, path: str, payload: dict) -> Any:
        cfg, last = self.config, ""
        for attempt in range(cfg.max_retries + 1):
            self.stats["requests"] += 1
            retry_after = None
            try:
                resp = self._sync_client().post(self.base + path, json=payload)
            except httpx.TransportError as exc:
                last = f"{type(exc).__name__}: {exc}"
            else:
                done, body, last, retry_after = self._outcome(resp)
                if done:
                    return body
            if attempt < cfg.max_retries:
                self.stats["retries"] += 1
                time.sleep(_backoff(cfg, attempt, retry_after))
        raise self._give_up(last)

    async def _post_async(self, path: str, payload: dict) -> Any:
        cfg, last = self.config, ""
        for attempt in range(cfg.max_retries + 1):
            self.stats["requests"] += 1
            retry_after = None
            try:
                resp = await self._async_client().post(self.base + path, json=payload)
            except httpx.TransportError as exc:
                last = f"{type(exc).__name__}: {exc}"
            else:
                done, body, last, retry_after = self._outcome(resp)
                if done:
                    return body
            if attempt < cfg.max_retries:
                self.stats["retries"] += 1
                await asyncio.sleep(_backoff(cfg, attempt, retry_after))
        raise self._give_up(last)

    # ---- API ----------------------------------------------------------------------------------
    def _chunks(self, items: Sequence[Any]) -> list[list[dict]]:
        dicts = [_item_dict(i) for i in items]
        if self.config.trace_opened_in_prompt:
            for d in dicts:
                d.setdefault("trace_opened_in_prompt", True)
        n = max(1, self.config.max_items_per_request)
        return [dicts[i : i + n] for i in range(0, len(dicts), n)]

    @staticmethod
    def _finish(results: list[dict], raise_on_item_error: bool) -> list[dict]:
        if raise_on_item_error:
            errors = [(i, r["error"]) for i, r in enumerate(results) if r.get("error")]
            if errors:
                raise ItemScoreError(errors)
        return results

    def score(self, items: Sequence[Any], *, raise_on_item_error: bool = False) -> list[dict]:
        out: list[dict] = []
        for chunk in self._chunks(items):
            out += _check_results(self._post_sync("/v1/score", {"items": chunk}), chunk)
        self.stats["items"] += len(out)
        return self._finish(out, raise_on_item_error)

    async def ascore(self, items: Sequence[Any], *, raise_on_item_error: bool = False) -> list[dict]:
        chunks = self._chunks(items)
        sem = asyncio.Semaphore(self.config.max_concurrency)

        async def one(chunk: list[dict]) -> list[dict]:
            async with sem:
                return _check_results(await self._post_async("/v1/score", {"items": chunk}), chunk)

        parts = await asyncio.gather(*(one(c) for c in chunks))
        out = [r for part in parts for r in part]
        self.stats["items"] += len(out)
        return self._finish(out, raise_on_item_error)

    def scores(self, items: Sequence[Any]) -> list[float]:
        """Just the rewards; any per-item error raises (a number is never invented)."""
        return [float(r["score"]) for r in self.score(items, raise_on_item_error=True)]

    async def ascores(self, items: Sequence[Any]) -> list[float]:
        return [float(r["score"]) for r in await self.ascore(items, raise_on_item_error=True)]

    def ready(self) -> bool:
        try:
            return self._sync_client().get(self.base + "/ready").status_code == 200
        except httpx.TransportError:
            return False

    async def aready(self) -> bool:
        try:
            return (await self._async_client().get(self.base + "/ready")).status_code == 200
        except httpx.TransportError:
            return False

    def close(self) -> None:
        if self._sync is not None:
            self._sync.close()
            self._sync = None

    async def aclose(self) -> None:
        self.close()
        if self._async is not None:
            await self._async.aclose()
            self._async = None

    def __enter__(self) -> RewardClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    async def __aenter__(self) -> RewardClient:
        return self

    async def __aexit__(self, *exc) -> None:
        await self.aclose()
