"""Admission and lifetime of one scoring request.

* **Backpressure**: up to ``max_concurrent_requests`` requests are scored at once, up to
  ``max_queued_requests`` more wait in FIFO order, beyond that 429 at once (Retry-After).
  Waiting is cheap (no guard work) and 429 lets clients back off instead of timing out.
* **One deadline** (``request_timeout_s``) covers the queue wait *and* the scoring: a
  client's patience does not restart when its request leaves the queue.
* **A client that leaves** (connection closed) cancels its request: the slot and the guard
  calls go to clients still waiting for an answer.
* **Shutdown**: when the server starts draining, new requests get 503 at once; queued and
  in-flight ones may finish within the grace period, then get a clean 503 (never a bare
  500 or a dropped connection).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

from .errors import ApiError
from .metrics import ServerMetrics

Receive = Callable[[], Awaitable[dict[str, Any]]]


class Admission:
    """FIFO admission: ``limit`` at work, ``queue`` waiting, the rest rejected."""

    def __init__(self, limit: int, queue: int, metrics: ServerMetrics):
        self.sem = asyncio.Semaphore(limit)
        self.queue = queue
        self.waiting = 0
        self.metrics = metrics

    @contextlib.asynccontextmanager
    async def slot(self, retry_after_s: int):
        if self.sem.locked() and self.waiting >= self.queue:
            self.metrics.rejected.inc()
            raise ApiError(
                429,
                f"server busy: {self.waiting} request(s) already waiting; retry after {retry_after_s}s",
                "RateLimitError",
                {"Retry-After": str(retry_after_s)},
            )
        self.waiting += 1
        self.metrics.queued.inc()
        try:
            await self.sem.acquire()
        finally:
            self.waiting -= 1
            self.metrics.queued.dec()
        self.metrics.in_flight.inc()
        try:
            yield
        finally:
            self.metrics.in_flight.dec()
            self.sem.release()


async def _disconnected(receive: Receive) -> None:
    """Returns when the client has gone (the body was read already, so the next ASGI
    message can only be ``http.disconnect``)."""
    while (await receive())["type"] != "http.disconnect":
        pass


class Gate:
    """Runs one request's work under admission, the deadline, disconnect and shutdown."""

    def __init__(
        self, admission: Admission, metrics: ServerMetrics, request_timeout_s: float, retry_after_s: int
    ):
        self.admission = admission
        self.metrics = metrics
        self.request_timeout_s = request_timeout_s
        self.retry_after_s = retry_after_s
        #: set when the server starts draining (no new work)
        self.draining = asyncio.Event()
        #: set when the grace period is over (open requests are answered 503)
        self.stopping = asyncio.Event()

    def begin_drain(self, grace_s: float) -> None:
        self.draining.set()
        asyncio.get_running_loop().call_later(grace_s, self.stopping.set)

    def _unavailable(self, message: str) -> ApiError:
        return ApiError(503, message, "ServiceUnavailable", {"Retry-After": str(self.retry_after_s)})

    async def _admitted(self, work: Callable[[], Awaitable[Any]]) -> Any:
        try:
            async with asyncio.timeout(self.request_timeout_s):
                async with self.admission.slot(self.retry_after_s):
                    return await work()
        except TimeoutError:
            self.metrics.deadline_exceeded.inc()
            raise self._unavailable(
                f"request not answered within request_timeout_s={self.request_timeout_s}s "
                "(queue wait included; guard too slow or server overloaded)"
            ) from None

    async def run(self, work: Callable[[], Awaitable[Any]], receive: Receive | None = None) -> Any:
        """``await work()`` once admitted; raises :class:`ApiError` 429/503/499."""
        if self.draining.is_set():
            self.metrics.shutdown_rejected.inc()
            raise self._unavailable("server shutting down; retry on another replica")
        task = asyncio.ensure_future(self._admitted(work))
        watchers = {asyncio.ensure_future(self.stopping.wait()): "stopping"}
        if receive is not None:
            watchers[asyncio.ensure_future(_disconnected(receive))] = "disconnect"
        try:
            done, _ = await asyncio.wait({task, *watchers}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in watchers:
                w.cancel()
            if not task.done():
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        if task in done:
            return task.result()
        if "disconnect" in (watchers[w] for w in done):
            self.metrics.client_disconnects.inc()
            # nobody reads this answer; it is counted as 499 (nginx's "client closed request")
            raise ApiError(499, "client closed the connection; work cancelled", "ClientClosedRequest")
        self.metrics.shutdown_rejected.inc()
        raise self._unavailable("server shutting down before this request finished; retry on another replica")
