"""Error answers: every non-2xx body is ``{"error": {"message", "type", "code"}}``.

FastAPI's own errors (validation 422), Starlette's (404 unknown route, 405 wrong method,
400 unreadable body) and ours (:class:`ApiError`) all get that shape. Messages that reach a
client never carry an upstream's response body or an internal URL: the guard's URLs are
replaced by ``<guard>`` (the log keeps the full story).
"""

from __future__ import annotations

import re

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from .protocol import ErrorBody

_URL = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'\",;)]+")

#: reason phrases for statuses Starlette raises on its own
_TYPES = {400: "BadRequestError", 404: "NotFoundError", 405: "MethodNotAllowed", 413: "PayloadTooLarge"}


def redact(message: str) -> str:
    """``message`` with every URL replaced by ``<guard>``."""
    return _URL.sub("<guard>", message)


class ApiError(HTTPException):
    def __init__(self, status: int, message: str, type_: str, headers: dict[str, str] | None = None):
        super().__init__(status_code=status, detail=message, headers=headers)
        self.type = type_


def error_response(
    status: int, message: str, type_: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    body = ErrorBody(error=ErrorBody.Inner(message=message, type=type_, code=status))
    return JSONResponse(body.model_dump(), status_code=status, headers=headers)


def install(app: FastAPI) -> None:
    """Register the handlers that give every error the documented shape."""

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError):
        return error_response(exc.status_code, str(exc.detail), exc.type, exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException):
        return error_response(
            exc.status_code,
            str(exc.detail),
            _TYPES.get(exc.status_code, "HTTPError"),
            getattr(exc, "headers", None),
        )

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError):
        parts = []
        for err in exc.errors()[:20]:
            where = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
            parts.append(f"{where or 'body'}: {err.get('msg')}")
        return error_response(422, "invalid request: " + "; ".join(parts), "BadRequestError")
