"""The FastAPI app: thin routes over :class:`reward_servers.scoring.Scorer`.

Status codes (every error body is ``{"error": {"message", "type", "code"}}``):

* 200 -- every item scored; items that failed *on their own* carry ``error`` (``/v1/score``).
* 401 -- missing / wrong bearer token (when the server has one).
* 413 -- too many items or a text over the length limit; 422 -- malformed input.
* 429 -- the wait queue is full (``Retry-After`` set): backpressure, nothing was scored.
* 502 -- the guard rejected our request (configuration problem, message included).
* 503 -- the guard is unreachable / too slow after retries, or the request deadline passed:
  the reason is in the message, and no reward is made up.

Backpressure: up to ``max_concurrent_requests`` requests are scored at once, up to
``max_queued_requests`` more wait in FIFO order, and beyond that the server answers 429 at
once. Waiting is cheap (no guard work) and 429 lets clients back off instead of timing out.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from typing import Any, Awaitable, Callable

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from sinternal_verl.guards.types import Guard, GuardUnavailableError

from reward_servers.config import ServerConfig
from reward_servers.markup import split_query
from reward_servers.metrics import ServerMetrics
from reward_servers.protocol import (
    ErrorBody,
    OpenRLHFRequest,
    OpenRLHFResponse,
    ScoreItem,
    ScoreRequest,
    ScoreResponse,
    ScoreResult,
    parse_label,
)
from reward_servers.scoring import GuardBackendError, ItemOutcome, Scorer, UpstreamUnavailableError

logger = logging.getLogger("reward_servers")

GuardFactory = Callable[[], Guard | Awaitable[Guard]]


class ApiError(HTTPException):
    def __init__(self, status: int, message: str, type_: str, headers: dict[str, str] | None = None):
        super().__init__(status_code=status, detail=message, headers=headers)
        self.type = type_


def _error(status: int, message: str, type_: str, headers: dict[str, str] | None = None) -> JSONResponse:
    body = ErrorBody(error=ErrorBody.Inner(message=message, type=type_, code=status))
    return JSONResponse(body.model_dump(), status_code=status, headers=headers)


class _Admission:
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


def build_app(config: ServerConfig | None = None, *, guard: Guard | None = None, guard_factory: GuardFactory | None = None) -> FastAPI:
    """Build the app around a guard.

    Pass ``guard`` (the caller owns and closes it) or ``guard_factory`` (called at start-up,
    closed at shutdown: the CLI and Ray Serve use this so the guard's HTTP client lives in the
    server's event loop). Math-only servers may pass neither.
    """
    config = config or ServerConfig()
    state: dict[str, Any] = {"guard": guard}
    metrics = ServerMetrics(lambda: state["guard"])
    scorer = Scorer(lambda: state["guard"], config.reward_kwargs)
    admission: _Admission | None = None

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        nonlocal admission
        admission = _Admission(config.max_concurrent_requests, config.max_queued_requests, metrics)
        owned = None
        if state["guard"] is None and guard_factory is not None:
            made = guard_factory()
            owned = state["guard"] = (await made) if asyncio.iscoroutine(made) else made
        logger.info("reward server ready (guard: %s)", getattr(state["guard"], "kind", None))
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
    app.state.config = config
    app.state.metrics = metrics
    app.state.server_state = state

    # ---- errors ------------------------------------------------------------------------
    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError):
        return _error(exc.status_code, str(exc.detail), exc.type, exc.headers)

    @app.exception_handler(HTTPException)
    async def _http_error(request: Request, exc: HTTPException):
        return _error(exc.status_code, str(exc.detail), "HTTPError", getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError):
        parts = []
        for err in exc.errors()[:20]:
            where = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
            parts.append(f"{where or 'body'}: {err.get('msg')}")
        return _error(422, "invalid request: " + "; ".join(parts), "BadRequestError")

    # ---- middleware: count every request ------------------------------------------------
    @app.middleware("http")
    async def _count(request: Request, call_next):
        t0 = time.perf_counter()
        route = request.url.path
        response = await call_next(request)
        if route in ("/v1/score", "/get_reward", "/ready", "/health"):
            metrics.requests.labels(route, str(response.status_code)).inc()
            metrics.latency.labels(route).observe(time.perf_counter() - t0)
        return response

    # ---- auth ------------------------------------------------------------------------------
    async def require_auth(request: Request) -> None:
        if not config.api_key:
            return
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not secrets.compare_digest(token.strip().encode(), config.api_key.encode()):
            raise ApiError(401, "missing or invalid bearer token (Authorization: Bearer <key>)", "AuthenticationError",
                           {"WWW-Authenticate": "Bearer"})

    # ---- shared scoring path --------------------------------------------------------------
    def check_limits(texts: list[tuple[str, str | None]], n: int) -> None:
        lim = config.limits
        if n > lim.max_items:
            raise ApiError(413, f"{n} items in one request; the limit is {lim.max_items} (split the batch)", "PayloadTooLarge")
        for where, text in texts:
            if text is not None and len(text) > lim.max_text_chars:
                raise ApiError(
                    413, f"{where} has {len(text)} characters; the limit is {lim.max_text_chars}", "PayloadTooLarge"
                )

    async def run_scoring(items: list[ScoreItem], route: str) -> list[ItemOutcome]:
        assert admission is not None, "app not started (lifespan)"
        async with admission.slot(config.retry_after_s):
            try:
                async with asyncio.timeout(config.request_timeout_s):
                    outcomes = await scorer.score(items)
            except TimeoutError:
                metrics.guard_unavailable.inc()
                raise ApiError(
                    503, f"scoring did not finish within request_timeout_s={config.request_timeout_s}s (guard too slow?)",
                    "ServiceUnavailable", {"Retry-After": str(config.retry_after_s)},
                ) from None
            except (GuardUnavailableError, UpstreamUnavailableError) as exc:
                metrics.guard_unavailable.inc()
                raise ApiError(503, f"guard unavailable, nothing scored: {exc}", "ServiceUnavailable",
                               {"Retry-After": str(config.retry_after_s)}) from None
            except GuardBackendError as exc:
                raise ApiError(502, f"guard rejected the request: {exc}", "BadGateway") from None
        for o in outcomes:
            metrics.items.labels(route, "error" if o.error else "ok").inc()
            metrics.item_latency.observe(o.latency_s)
        return outcomes

    # ---- routes ------------------------------------------------------------------------------
    @app.get("/health", summary="liveness: the process answers")
    async def health() -> dict:
        return {"status": "ok"}

    @app.get("/ready", summary="readiness: the guard backend answers", dependencies=[Depends(require_auth)])
    async def ready():
        guard_ = state["guard"]
        if guard_ is None:
            return {"ready": True, "detail": {"guard": "none configured (math only)"}}
        try:
            report = await asyncio.wait_for(guard_.check_ready(), timeout=min(30.0, config.request_timeout_s))
        except Exception as exc:  # noqa: BLE001 - any failure means not ready, and says why
            return JSONResponse({"ready": False, "detail": {"guard": f"{type(exc).__name__}: {exc}"}}, status_code=503)
        body = {"ready": report.ready, "detail": dict(report.detail)}
        return JSONResponse(body, status_code=200 if report.ready else 503)

    @app.get("/metrics", summary="Prometheus metrics", response_class=Response)
    async def prometheus() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.post("/v1/score", response_model=ScoreResponse, dependencies=[Depends(require_auth)],
              summary="score items: one result per item, in order")
    async def score(req: ScoreRequest) -> ScoreResponse:
        texts = []
        for i, it in enumerate(req.items):
            texts += [(f"items[{i}].prompt", it.prompt), (f"items[{i}].response", it.response),
                      (f"items[{i}].ground_truth", it.ground_truth)]
        check_limits(texts, len(req.items))
        outcomes = await run_scoring(req.items, "/v1/score")
        results = []
        for item, o in zip(req.items, outcomes):
            if o.error:
                results.append(ScoreResult(id=item.id, score=None, error=o.error, **_null_fields()))
            else:
                results.append(ScoreResult(id=item.id, error=None, **o.values))
        return ScoreResponse(results=results, num_errors=sum(1 for o in outcomes if o.error))

    @app.post("/get_reward", response_model=OpenRLHFResponse, dependencies=[Depends(require_auth)],
              summary="OpenRLHF remote reward (--reward.remote_url http://host:port/get_reward)")
    async def get_reward(req: OpenRLHFRequest) -> OpenRLHFResponse:
        n = len(req.query)
        texts = [(f"query[{i}]", q) for i, q in enumerate(req.query)]
        texts += [(f"prompts[{i}]", p) for i, p in enumerate(req.prompts or [])]
        texts += [(f"labels[{i}]", lab if isinstance(lab, str) else None) for i, lab in enumerate(req.labels or [])]
        check_limits(texts, n)
        items: list[ScoreItem] = []
        labels = req.labels or [None] * n
        for i in range(n):
            try:
                split = split_query(req.query[i], (req.prompts or [None] * n)[i])
                fields = parse_label(labels[i])
                fields.pop("id", None)
                items.append(ScoreItem(prompt=split.prompt, response=split.response, **fields))
            except ValueError as exc:  # includes pydantic's ValidationError
                raise ApiError(422, f"item {i}: {_short(exc)}", "BadRequestError") from None
        outcomes = await run_scoring(items, "/get_reward")
        failed = [(i, o.error) for i, o in enumerate(outcomes) if o.error]
        if failed and config.openrlhf_error_reward is None:
            shown = "; ".join(f"item {i}: {e}" for i, e in failed[:5])
            raise ApiError(
                422, f"{len(failed)} of {n} item(s) could not be scored ({shown}); start the server with "
                "--openrlhf-error-reward X to use X for such items instead (flagged in extra_logs.reward_error)",
                "ItemError",
            )
        from sinternal_verl.rewards import RESULT_KEYS

        rewards: list[float] = []
        logs: dict[str, list[float]] = {k: [] for k in RESULT_KEYS if k != "score"}
        logs["reward_error"] = []
        for o in outcomes:
            values = o.values or {}
            reward = float(config.openrlhf_error_reward) if o.error else float(values["score"])
            rewards.append(reward)
            for k in logs:
                if k != "reward_error":
                    logs[k].append(float(values.get(k, 0.0)))
            logs["reward_error"].append(1.0 if o.error else 0.0)
        return OpenRLHFResponse(rewards=rewards, scores=list(rewards), extra_logs=logs)

    return app


def _null_fields() -> dict[str, None]:
    from sinternal_verl.rewards import RESULT_KEYS

    return {k: None for k in RESULT_KEYS if k != "score"}


def _short(exc: Exception) -> str:
    text = str(exc)
    return text if len(text) <= 500 else text[:500] + "..."
