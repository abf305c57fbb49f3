"""The routes: thin handlers over :class:`~sinternal_verl.server.scoring.Scorer`.

Each handler checks the request's limits, hands the items to the gate (admission,
deadline, disconnect, shutdown) and shapes the answer; the state they share hangs off
``request.app.state.server`` (:class:`ServerState`, built by :func:`~.app.build_app`).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from sinternal_verl.guards.types import Guard, GuardUnavailableError, UpstreamUnavailableError
from sinternal_verl.rewards import RESULT_KEYS

from . import openrlhf
from .admission import Gate
from .errors import ApiError, redact
from .metrics import ServerMetrics
from .protocol import OpenRLHFRequest, OpenRLHFResponse, ScoreItem, ScoreRequest, ScoreResponse, ScoreResult
from .scoring import GuardBackendError, ItemOutcome, Scorer
from .settings import ServerSettings

router = APIRouter()
logger = logging.getLogger("sinternal_verl.server")


@dataclass
class ServerState:
    settings: ServerSettings
    metrics: ServerMetrics
    guard: Guard | None = None
    scorer: Scorer | None = None
    gate: Gate | None = None


def _state(request: Request) -> ServerState:
    return request.app.state.server


def check_limits(settings: ServerSettings, texts: list[tuple[str, str | None]], n: int) -> None:
    if n > settings.max_items:
        raise ApiError(
            413,
            f"{n} items in one request; the limit is {settings.max_items} (split the batch)",
            "PayloadTooLarge",
        )
    for where, text in texts:
        if text is not None and len(text) > settings.max_text_chars:
            raise ApiError(
                413,
                f"{where} has {len(text)} characters; the limit is {settings.max_text_chars}",
                "PayloadTooLarge",
            )


async def run_scoring(request: Request, items: list[ScoreItem], route: str) -> list[ItemOutcome]:
    st = _state(request)
    assert st.gate is not None and st.scorer is not None, "app not started (lifespan)"
    scorer, metrics = st.scorer, st.metrics

    async def work() -> list[ItemOutcome]:
        try:
            return await scorer.score(items)
        except (GuardUnavailableError, UpstreamUnavailableError) as exc:
            metrics.guard_unavailable.inc()
            logger.warning("guard unavailable on %s: %s", route, exc)
            raise ApiError(
                503,
                "guard unavailable after retries, nothing scored",
                "ServiceUnavailable",
                {"Retry-After": str(st.settings.retry_after_s)},
            ) from None
        except GuardBackendError as exc:
            logger.error("guard rejected a request on %s: %s (cause: %s)", route, exc, exc.__cause__)
            raise ApiError(502, f"{exc} (details in the server log)", "BadGateway") from None

    outcomes = await st.gate.run(work, request.receive)
    for o in outcomes:
        metrics.items.labels(route, o.outcome).inc()
        metrics.item_latency.observe(o.latency_s)
    return outcomes


@router.get("/health", summary="liveness: the process answers")
async def health() -> dict:
    return {"status": "ok"}


@router.get("/ready", summary="readiness: the guard backend answers")
async def ready(request: Request):
    st = _state(request)
    if st.guard is None:
        return {"ready": True, "detail": {"guard": "none configured (math only)"}}
    try:
        report = await asyncio.wait_for(st.guard.check_ready(), timeout=st.settings.ready_timeout_s)
    except Exception as exc:  # noqa: BLE001 - any failure means not ready, and says why (in the log)
        logger.warning("readiness check failed: %s: %s", type(exc).__name__, exc)
        return JSONResponse(
            {"ready": False, "detail": {"guard": f"{type(exc).__name__} (see the server log)"}},
            status_code=503,
        )
    # upstream URLs are internal: numbered here, named in the log
    detail = {
        f"upstream[{i}]" if "://" in str(k) else str(k): _reason(str(v))
        for i, (k, v) in enumerate(report.detail.items())
    }
    if not report.ready:
        logger.warning("guard not ready: %s", dict(report.detail))
    return JSONResponse({"ready": report.ready, "detail": detail}, status_code=200 if report.ready else 503)


def _reason(text: str) -> str:
    """The gist of a readiness reason (``unreachable``), without hosts or upstream bodies."""
    head = redact(text.split(":", 1)[0]).strip()
    return head if head == text.strip() else f"{head} (see the server log)"


@router.get(
    "/metrics",
    summary="Prometheus metrics (behind the bearer token when the server has one)",
    response_class=Response,
)
async def prometheus(request: Request) -> Response:
    return Response(generate_latest(_state(request).metrics.registry), media_type=CONTENT_TYPE_LATEST)


@router.post("/v1/score", response_model=ScoreResponse, summary="score items: one result per item, in order")
async def score(req: ScoreRequest, request: Request) -> ScoreResponse:
    st = _state(request)
    texts = []
    for i, it in enumerate(req.items):
        texts += [
            (f"items[{i}].prompt", it.prompt),
            (f"items[{i}].response", it.response),
            (f"items[{i}].ground_truth", it.ground_truth),
        ]
    check_limits(st.settings, texts, len(req.items))
    outcomes = await run_scoring(request, req.items, "/v1/score")
    nulls = {k: None for k in RESULT_KEYS if k != "score"}
    results = [
        ScoreResult(id=item.id, score=None, error=o.error, **nulls)
        if o.error
        else ScoreResult(id=item.id, error=None, **(o.values or {}))
        for item, o in zip(req.items, outcomes)
    ]
    return ScoreResponse(results=results, num_errors=sum(1 for o in outcomes if o.error))


@router.post(
    "/get_reward",
    response_model=OpenRLHFResponse,
    summary="OpenRLHF remote reward (--reward.remote_url http://host:port/get_reward)",
)
async def get_reward(req: OpenRLHFRequest, request: Request) -> OpenRLHFResponse:
    st = _state(request)
    check_limits(st.settings, openrlhf.texts(req), len(req.query))
    items = openrlhf.to_items(req)
    outcomes = await run_scoring(request, items, "/get_reward") if items else []
    return openrlhf.to_response(outcomes, st.settings.openrlhf_error_reward)
