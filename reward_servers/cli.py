"""``sinternal-verl serve``: run the reward server with uvicorn.

Guard settings come from flags, else the same env vars as the reward manager
(``SINTERNAL_GUARD_URLS`` / ``_KIND`` / ``_MODEL`` / ``_API_KEY``). ``--guard-backend
ray_pool`` attaches to a running guard replica pool by name instead of HTTP upstreams.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
from typing import Any

from reward_servers.config import ENV_SERVER_API_KEY, ServerConfig
from reward_servers.protocol import Limits


def add_arguments(p: argparse.ArgumentParser) -> None:
    d = ServerConfig()
    lim = Limits()
    p.add_argument("--host", default=d.host, help="bind address (default %(default)s: loopback only)")
    p.add_argument("--port", type=int, default=d.port)
    p.add_argument("--api-key", default=None, help=f"bearer token clients must send (or env {ENV_SERVER_API_KEY})")
    g = p.add_argument_group("guard")
    g.add_argument("--guard-backend", choices=("http", "openai", "ray_pool", "lexical"), default="http",
                   help="http (alias openai): OpenAI-compatible upstreams (--guard-url), as the reward manager's "
                        "guard_backend=http; ray_pool: attach to a RayGuardPool by name; lexical: the offline judge")
    g.add_argument("--guard-url", action="append", default=None, help="OpenAI-compatible guard URL (repeatable)")
    g.add_argument("--guard-kind", default=None, help="qwen3guard | llamaguard | wildguard | lexical")
    g.add_argument("--guard-model", default=None, help="served model name (default: the kind's model)")
    g.add_argument("--guard-api-key", default=None, help="key for the guard upstream (or env SINTERNAL_GUARD_API_KEY)")
    g.add_argument("--guard-option", action="append", default=[], metavar="KEY=VALUE",
                   help="any other GuardConfig field, e.g. max_concurrency_per_url=128 (value parsed as JSON if possible)")
    g.add_argument("--ray-pool-name", default="sinternal_guard_pool", help="RayGuardPool name (--guard-backend ray_pool)")
    g.add_argument("--ray-pool-namespace", default="sinternal", help="RayGuardPool namespace (--guard-backend ray_pool)")
    g.add_argument("--ray-address", default=os.environ.get("RAY_ADDRESS", "auto"), help="Ray cluster for ray_pool")
    s = p.add_argument_group("limits and behaviour")
    s.add_argument("--max-items", type=int, default=lim.max_items, help="items per request")
    s.add_argument("--max-text-chars", type=int, default=lim.max_text_chars, help="characters per text field")
    s.add_argument("--max-concurrent-requests", type=int, default=d.max_concurrent_requests)
    s.add_argument("--max-queued-requests", type=int, default=d.max_queued_requests, help="beyond this: 429")
    s.add_argument("--request-timeout", type=float, default=d.request_timeout_s, help="seconds; past it: 503")
    s.add_argument("--graceful-shutdown", type=float, default=d.graceful_shutdown_s, help="seconds to finish in-flight work")
    s.add_argument("--reward-kwargs", default="{}", help="JSON object of reward settings (as reward.reward_kwargs in verl)")
    s.add_argument("--openrlhf-error-reward", type=float, default=None,
                   help="/get_reward: reward used for items that fail on their own (default: fail the request)")
    s.add_argument("--log-level", default="info")


def _value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def guard_mapping(args: argparse.Namespace) -> dict[str, Any]:
    """Flags as a GuardConfig mapping (env vars fill the rest in ``GuardConfig.from_mapping``)."""
    m: dict[str, Any] = {}
    for opt in args.guard_option:
        key, sep, value = opt.partition("=")
        if not sep:
            raise SystemExit(f"--guard-option needs KEY=VALUE, got {opt!r}")
        m[key.strip()] = _value(value)
    if args.guard_url:
        m["urls"] = args.guard_url
    if args.guard_kind:
        m["kind"] = args.guard_kind
    if args.guard_model:
        m["model"] = args.guard_model
    if args.guard_api_key:
        m["api_key"] = args.guard_api_key
    if args.guard_backend == "lexical":
        m["kind"] = "lexical"
    return m


def server_config(args: argparse.Namespace) -> ServerConfig:
    reward_kwargs = json.loads(args.reward_kwargs)
    if not isinstance(reward_kwargs, dict):
        raise SystemExit("--reward-kwargs must be a JSON object")
    return ServerConfig(
        host=args.host,
        port=args.port,
        api_key=args.api_key or os.environ.get(ENV_SERVER_API_KEY) or None,
        limits=Limits(max_items=args.max_items, max_text_chars=args.max_text_chars),
        max_concurrent_requests=args.max_concurrent_requests,
        max_queued_requests=args.max_queued_requests,
        request_timeout_s=args.request_timeout,
        reward_kwargs=reward_kwargs,
        openrlhf_error_reward=args.openrlhf_error_reward,
        graceful_shutdown_s=args.graceful_shutdown,
    )


def guard_factory(args: argparse.Namespace):
    """A zero-argument factory, called inside the server's event loop at start-up."""
    if args.guard_backend == "ray_pool":
        def make_pool():
            import ray

            from sinternal_verl.guards.ray_pool import RayGuardPool

            if not ray.is_initialized():
                ray.init(address=args.ray_address, namespace=None, log_to_driver=False)
            return RayGuardPool.connect(args.ray_pool_name, args.ray_pool_namespace)

        return make_pool

    from sinternal_verl.guards.config import GuardConfig

    config = GuardConfig.from_mapping(guard_mapping(args))  # validate now: bad flags fail before binding

    def make_guard():
        from sinternal_verl.guards import build_guard

        return build_guard(config)

    return make_guard


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from reward_servers.app import build_app

    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = server_config(args)
    try:
        factory = guard_factory(args)
    except ValueError as exc:
        raise SystemExit(f"sinternal-verl serve: {exc}") from None
    app = build_app(config, guard_factory=factory)
    if config.host not in ("127.0.0.1", "localhost", "::1") and not config.api_key:
        logging.getLogger("reward_servers").warning("binding %s without --api-key: anyone who can reach it can use it", config.host)
    uvicorn.run(app, host=config.host, port=config.port, log_level=args.log_level.lower(),
                timeout_graceful_shutdown=config.graceful_shutdown_s)
    return 0
