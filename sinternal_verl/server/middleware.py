"""The ASGI layer in front of the routes (plain ASGI, not ``BaseHTTPMiddleware``, so the
routes can still see the client disconnect and exceptions cannot escape to uvicorn):

* **counts every answer** (route, status) and its latency, errors included;
* **auth before the body**: without a valid bearer token the answer is 401 before a byte
  of the body is read or parsed (no validation details for strangers);
* **body size limit**: a ``Content-Length`` over ``max_body_bytes`` is refused at once, a
  streamed body as soon as it passes the limit;
* **catch-all**: an unexpected exception becomes a counted JSON 500, and the keep-alive
  connection stays usable (uvicorn closes a connection whose app raised).
"""

from __future__ import annotations

import json
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any

from .metrics import ServerMetrics
from .protocol import ErrorBody

logger = logging.getLogger("sinternal_verl.server")

Scope = dict[str, Any]
Message = dict[str, Any]
ASGIApp = Callable[
    [Scope, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]], Awaitable[None]
]

#: routes with their own label in the metrics; anything else is "other" (bounded cardinality)
KNOWN_ROUTES = frozenset(
    {"/v1/score", "/get_reward", "/ready", "/health", "/metrics", "/docs", "/openapi.json"}
)
#: routes open without a token (liveness probes, docs)
OPEN_ROUTES = frozenset({"/health", "/docs", "/openapi.json", "/docs/oauth2-redirect"})


def _body(status: int, message: str, type_: str) -> bytes:
    inner = ErrorBody.Inner(message=message, type=type_, code=status)
    return json.dumps(ErrorBody(error=inner).model_dump()).encode()


async def send_error(
    send, status: int, message: str, type_: str, headers: dict[str, str] | None = None
) -> None:
    body = _body(status, message, type_)
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


class _TooLarge(Exception):
    pass


class GateMiddleware:
    def __init__(self, app: ASGIApp, *, api_key: str | None, max_body_bytes: int, metrics: ServerMetrics):
        self.app = app
        self.api_key = api_key.encode() if api_key else None
        self.max_body_bytes = max_body_bytes
        self.metrics = metrics

    def _authorized(self, scope: Scope) -> bool:
        if self.api_key is None or scope["path"] in OPEN_ROUTES:
            return True
        header = next((v for k, v in scope.get("headers", []) if k == b"authorization"), b"")
        scheme, _, token = header.partition(b" ")
        return scheme.lower() == b"bearer" and secrets.compare_digest(token.strip(), self.api_key)

    async def _read_body(self, scope: Scope, receive) -> bytes:
        length = next((v for k, v in scope.get("headers", []) if k == b"content-length"), None)
        if length is not None and length.isdigit() and int(length) > self.max_body_bytes:
            raise _TooLarge
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                raise _TooLarge
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(chunks)

    async def __call__(self, scope: Scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        t0 = time.perf_counter()
        route = scope["path"] if scope["path"] in KNOWN_ROUTES else "other"
        status = {"code": 500, "started": False}

        async def counted_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"], status["started"] = message["status"], True
            await send(message)

        try:
            if not self._authorized(scope):
                await send_error(
                    counted_send,
                    401,
                    "missing or invalid bearer token (Authorization: Bearer <key>)",
                    "AuthenticationError",
                    {"WWW-Authenticate": "Bearer"},
                )
                return
            if scope["method"] in ("POST", "PUT", "PATCH"):
                try:
                    body = await self._read_body(scope, receive)
                except _TooLarge:
                    await send_error(
                        counted_send,
                        413,
                        f"request body over max_body_bytes={self.max_body_bytes}",
                        "PayloadTooLarge",
                        {"Connection": "close"},
                    )
                    return
                replayed = False

                async def replay() -> Message:
                    nonlocal replayed
                    if not replayed:
                        replayed = True
                        return {"type": "http.request", "body": body, "more_body": False}
                    return await receive()  # after the body: only the disconnect is left

                await self.app(scope, replay, counted_send)
            else:
                await self.app(scope, receive, counted_send)
        except Exception as exc:
            self.metrics.exceptions.labels(route).inc()
            logger.exception("unexpected error on %s %s", scope.get("method"), scope["path"])
            if not status["started"]:
                await send_error(
                    counted_send,
                    500,
                    f"internal server error ({type(exc).__name__}); see the server log",
                    "InternalServerError",
                )
        finally:
            self.metrics.requests.labels(route, str(status["code"])).inc()
            self.metrics.latency.labels(route).observe(time.perf_counter() - t0)
