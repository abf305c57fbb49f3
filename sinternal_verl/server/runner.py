"""uvicorn with a clean shutdown: on SIGTERM the app starts draining before uvicorn waits
for open requests, so that past the grace period every open request gets a JSON 503
instead of a bare 500 or a dropped connection (uvicorn cancels what is left after its own
timeout, which is set ``shutdown_reply_s`` later than ours)."""

from __future__ import annotations

import uvicorn
from fastapi import FastAPI

from .app import begin_drain
from .settings import ServerSettings


class DrainingServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, app: FastAPI, grace_s: float):
        super().__init__(config)
        self._app = app
        self._grace_s = grace_s

    async def shutdown(self, sockets=None) -> None:
        begin_drain(self._app, self._grace_s)
        await super().shutdown(sockets)


def server_for(app: FastAPI, settings: ServerSettings, **kw) -> DrainingServer:
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level.lower(),
        timeout_graceful_shutdown=settings.graceful_shutdown_s + settings.shutdown_reply_s,
        **kw,
    )
    return DrainingServer(config, app, settings.graceful_shutdown_s)


def serve(app: FastAPI, settings: ServerSettings) -> None:
    server_for(app, settings).run()
