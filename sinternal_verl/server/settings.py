"""Server settings: one :class:`~sinternal_verl.settings.Settings` class, filled by the
``sinternal-verl serve`` flags, a ``--config`` YAML, the Ray Serve deployment's ``args`` or
code. Unknown keys fail at start-up with the nearest known key suggested.

Guard and reward settings are *not* repeated here: they are the reward kwargs
(``reward_kwargs``: ``guard_backend``, ``guard_urls``, ``guard_kind``, ``guard_pool_name``,
safety values, ``math_*`` ...), the same keys as verl's ``reward.reward_kwargs``, handed to
the reward router, which builds the guard.
"""

from __future__ import annotations

from typing import Any

from pydantic import field_validator

from sinternal_verl.settings import Settings, setting

ENV_SERVER_API_KEY = "SINTERNAL_SERVER_API_KEY"


class ServerSettings(Settings):
    host: str = setting("127.0.0.1", "bind address (loopback by default: set api_key before binding wider)")
    port: int = setting(8900, "TCP port", ge=0, le=65535)
    api_key: str | None = setting(
        None,
        "bearer token clients must send on every route but /health and the docs (surrounding whitespace stripped)",
        env=ENV_SERVER_API_KEY,
        repr=False,
    )
    max_items: int = setting(
        1024, "items per request (/v1/score items, /get_reward queries); more: 413", ge=1
    )
    max_text_chars: int = setting(
        200_000, "characters per text field (prompt, response, query, label); more: 413", ge=1
    )
    max_body_bytes: int = setting(
        64 * 2**20, "request body size limit, checked before the body is read or parsed; more: 413", ge=1024
    )
    max_concurrent_requests: int = setting(64, "scoring requests worked on at once", ge=1)
    max_queued_requests: int = setting(
        1024, "requests allowed to wait for a slot; one more is answered 429 at once", ge=0
    )
    request_timeout_s: float = setting(
        150.0,
        "whole-request deadline, queue wait included; past it: 503. Below OpenRLHF's 180 s client timeout, so "
        "clients get an answer instead of timing out and re-sending work that is still running",
        gt=0,
    )
    retry_after_s: int = setting(1, "Retry-After seconds sent with 429 and 503", ge=0)
    ready_timeout_s: float = setting(
        30.0, "/ready: seconds the guard's readiness check may take; past it: 503", gt=0
    )
    graceful_shutdown_s: float = setting(
        30.0, "on SIGTERM: seconds queued and in-flight requests may still finish", ge=0
    )
    shutdown_reply_s: float = setting(
        2.0,
        "after the grace period: seconds to answer the requests still open with 503 before connections close",
        gt=0,
    )
    openrlhf_error_reward: float | None = setting(
        None,
        "/get_reward: reward for items that fail on their own (flagged reward_error=1); unset: the request fails",
    )
    reward_kwargs: dict[str, Any] = setting(
        {},
        "reward and guard settings, the keys of verl's reward.reward_kwargs (guard_backend, guard_urls, ...)",
    )
    ray_address: str = setting("auto", "Ray cluster to join for guard_backend=ray_pool", env="RAY_ADDRESS")
    log_level: str = setting("info", "uvicorn and server log level")

    @field_validator("api_key")
    @classmethod
    def _clean_key(cls, value: str | None) -> str | None:
        # a trailing newline or space (``$(cat key.txt)``, a YAML block) could never match the
        # header a client sends; a key with inner whitespace cannot be sent at all
        if value is None:
            return None
        value = value.strip()
        if not value:
            return None
        if any(c.isspace() for c in value):
            raise ValueError("api_key must not contain whitespace")
        return value
