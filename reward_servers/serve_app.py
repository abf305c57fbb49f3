"""Ray Serve application for the reward server (optional: needs ``ray[serve]``).

The same FastAPI app as ``sinternal-verl serve``, mounted with ``@serve.ingress`` so Ray
Serve runs N replicas (autoscaling in ``deploy/serve_config.yaml``) behind its HTTP proxy.
Each replica builds its guard at start-up from the deployment's ``args``: HTTP upstreams
(``guard_urls`` ...) or, with ``guard_backend: ray_pool``, the named guard replica pool in
the same cluster (``RayGuardPool.connect``).

``serve run reward_servers.serve_app:app`` or ``serve deploy reward_servers/deploy/serve_config.yaml``.
"""

from __future__ import annotations

from typing import Any

try:
    from ray import serve
except ImportError as exc:  # pragma: no cover - depends on the install
    raise ImportError("reward_servers.serve_app needs Ray Serve: pip install 'ray[serve]'") from exc

from reward_servers.app import build_app
from reward_servers.config import ServerConfig
from reward_servers.protocol import Limits


def _guard_factory(args: dict[str, Any]):
    backend = args.get("guard_backend", "http")  # "openai" is an alias of "http"
    if backend == "ray_pool":
        def make_pool():
            from sinternal_verl.guards.ray_pool import RayGuardPool

            return RayGuardPool.connect(args.get("ray_pool_name", "sinternal_guard_pool"),
                                        args.get("ray_pool_namespace", "sinternal"))
        return make_pool
    from sinternal_verl.guards import GuardConfig, build_guard

    mapping = {k: v for k, v in args.items() if k.startswith("guard_") and k != "guard_backend"}
    if backend == "lexical":
        mapping["guard_kind"] = "lexical"
    config = GuardConfig.from_mapping(mapping)
    return lambda: build_guard(config)


def _server_config(args: dict[str, Any]) -> ServerConfig:
    keys = ("max_concurrent_requests", "max_queued_requests", "request_timeout_s", "reward_kwargs", "openrlhf_error_reward", "api_key")
    limits = Limits(**{k: args[k] for k in ("max_items", "max_text_chars") if k in args})
    return ServerConfig(limits=limits, **{k: args[k] for k in keys if k in args})


def build_deployment(args: dict[str, Any] | None = None):
    """The bound Serve application (``serve.run(build_deployment({...}))``)."""
    args = dict(args or {})
    fastapi_app = build_app(_server_config(args), guard_factory=_guard_factory(args))

    @serve.deployment(name="sinternal_reward_server")
    @serve.ingress(fastapi_app)
    class RewardServer:
        pass

    return RewardServer.bind()


def app_builder(args: dict[str, Any]):
    """Serve's application builder: ``import_path: reward_servers.serve_app:app_builder``."""
    return build_deployment(args)


#: ``serve run reward_servers.serve_app:app`` (guard settings from SINTERNAL_GUARD_* env vars)
app = None
if __name__ != "__main__":
    try:
        app = build_deployment({})
    except ValueError:  # no guard configured in this process's env: use app_builder with args
        app = None
