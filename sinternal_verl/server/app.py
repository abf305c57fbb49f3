"""The FastAPI app: the routes (:mod:`.routes`) over a scorer, behind the gate middleware.

Status codes (every error body is ``{"error": {"message", "type", "code"}}``):

* 200 -- every item scored; items that failed *on their own* carry ``error`` (``/v1/score``).
* 400 -- unreadable body; 404 / 405 -- unknown route / wrong method.
* 401 -- missing / wrong bearer token (when the server has one), before the body is read.
* 413 -- body over ``max_body_bytes``, too many items, or a text over the length limit.
* 422 -- malformed input (the message names the field).
* 429 -- the wait queue is full (``Retry-After`` set): backpressure, nothing was scored.
* 500 -- a bug (counted in ``sinternal_server_exceptions_total``, traceback in the log).
* 502 -- the guard rejected our request (configuration problem; details in the log).
* 503 -- the guard is unreachable / too slow after retries, the request deadline passed
  (queue wait included), or the server is shutting down: no reward is made up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from fastapi import FastAPI

from sinternal_verl.guards.types import Guard
from sinternal_verl.settings import load

from . import errors
from .admission import Admission, Gate
from .metrics import ServerMetrics
from .middleware import GateMiddleware
from .protocol import ErrorBody
from .routes import ServerState, router
from .scoring import Scorer
from .settings import ServerSettings

logger = logging.getLogger("sinternal_verl.server")

GuardFactory = Callable[[], Guard | Awaitable[Guard]]


def build_app(
    settings: ServerSettings | Mapping[str, Any] | None = None,
    *,
    guard: Guard | None = None,
    guard_factory: GuardFactory | None = None,
) -> FastAPI:
    """Build the app around a guard.

    Pass ``guard`` (the caller owns and closes it) or ``guard_factory`` (called at start-up,
    closed at shutdown: the CLI and Ray Serve use :func:`~.scoring.guard_from_settings`, so
    the guard is built by the reward router from ``reward_kwargs``). Math-only servers may
    pass neither. ``settings`` may be a mapping, loaded strictly (unknown keys fail here).
    """
    settings = load(ServerSettings, settings or {}, where="server settings")
    Scorer.validate(settings.reward_kwargs)  # a bad reward setting fails now, not per request
    metrics = ServerMetrics(lambda: state.guard, redact_upstreams=settings.api_key is None)
    state = ServerState(settings=settings, metrics=metrics, guard=guard)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        owned = None
        if state.guard is None and guard_factory is not None:
            made = guard_factory()
            owned = state.guard = (await made) if asyncio.iscoroutine(made) else made
        state.scorer = Scorer(settings.reward_kwargs, state.guard)
        admission = Admission(settings.max_concurrent_requests, settings.max_queued_requests, metrics)
        state.gate = Gate(admission, metrics, settings.request_timeout_s, settings.retry_after_s)
        logger.info("reward server ready (guard: %s)", getattr(state.guard, "kind", None))
        try:
            yield
        finally:
            if owned is not None:
                await owned.aclose()

    app = FastAPI(
        title="sinternal-verl reward server",
        version="1",
        description=__doc__,
        lifespan=lifespan,
        responses={k: {"model": ErrorBody} for k in (401, 413, 422, 429, 502, 503)},
    )
    app.state.server = state
    app.state.config = settings
    app.state.metrics = metrics
    errors.install(app)
    app.include_router(router)
    app.add_middleware(
        GateMiddleware, api_key=settings.api_key, max_body_bytes=settings.max_body_bytes, metrics=metrics
    )
    return app


def begin_drain(app: FastAPI, grace_s: float) -> None:
    """Start draining (call from the server's event loop at shutdown): new requests get 503,
    open ones get ``grace_s`` seconds, then a 503."""
    gate = app.state.server.gate
    if gate is not None:
        gate.begin_drain(grace_s)
