"""Server settings: one dataclass, filled by ``reward_servers.cli`` flags / env or by code."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from reward_servers.protocol import Limits

ENV_SERVER_API_KEY = "SINTERNAL_SERVER_API_KEY"


@dataclass(frozen=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 8900
    #: bearer token clients must send (``Authorization: Bearer ...``); ``None`` = open
    api_key: str | None = field(default=None, repr=False)
    limits: Limits = field(default_factory=Limits)
    #: scoring requests worked on at once; the guard client bounds its own HTTP concurrency
    max_concurrent_requests: int = 64
    #: requests allowed to wait for a slot; one more is answered 429 (Retry-After) at once
    #: rather than piling up until every client times out
    max_queued_requests: int = 1024
    #: whole-request deadline; past it the answer is 503 (the guard is too slow), never zeros
    request_timeout_s: float = 600.0
    #: reward settings passed to ``compute_score_async`` (safety values, ``on_guard_error``,
    #: ``math_*`` keys): the same keys as ``reward.reward_kwargs`` in verl
    reward_kwargs: dict[str, Any] = field(default_factory=dict)
    #: ``/get_reward`` only: OpenRLHF needs a number for every query. ``None`` (default)
    #: fails the whole request (HTTP 422) when any item fails on its own; a number is used
    #: instead for failed items, flagged with ``extra_logs.reward_error = 1``.
    openrlhf_error_reward: float | None = None
    #: seconds uvicorn waits for in-flight requests on shutdown
    graceful_shutdown_s: float = 30.0
    #: Retry-After seconds sent with 429
    retry_after_s: int = 1

    def __post_init__(self) -> None:
        if self.max_concurrent_requests < 1:
            raise ValueError("max_concurrent_requests must be >= 1")
        if self.max_queued_requests < 0:
            raise ValueError("max_queued_requests must be >= 0")
        if self.request_timeout_s <= 0:
            raise ValueError("request_timeout_s must be > 0")
