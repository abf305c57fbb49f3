"""Ray Serve application for the reward server (optional: needs ``ray[serve]``).

The same FastAPI app as ``sinternal-verl serve``, mounted with ``@serve.ingress`` so Ray
Serve runs N replicas (autoscaling in ``deploy/serve_config.yaml``) behind its HTTP proxy.
The deployment's ``args`` are :class:`ServerSettings` keys (checked strictly: a misspelt
key fails the deployment with a suggestion); the guard is described by the reward kwargs
(``reward_kwargs: {guard_backend: ray_pool, guard_pool_name: ...}`` or ``guard_urls`` ...)
and built in each replica at start-up by the reward router.

``serve run sinternal_verl.server.serve_app:app`` or
``serve deploy sinternal_verl/server/deploy/serve_config.yaml``.
"""

from __future__ import annotations

from typing import Any

try:
    from ray import serve
except ImportError as exc:  # pragma: no cover - depends on the install
    raise ImportError("sinternal_verl.server.serve_app needs Ray Serve: pip install 'ray[serve]'") from exc

from sinternal_verl.settings import load

from .app import build_app
from .scoring import guard_from_settings
from .settings import ServerSettings


def build_deployment(args: dict[str, Any] | None = None):
    """The bound Serve application (``serve.run(build_deployment({...}))``)."""
    settings = load(ServerSettings, dict(args or {}), where="Ray Serve args")
    fastapi_app = build_app(settings, guard_factory=lambda: guard_from_settings(settings.reward_kwargs))

    @serve.deployment(name="sinternal_reward_server")
    @serve.ingress(fastapi_app)
    class RewardServer:
        pass

    return RewardServer.bind()


def app_builder(args: dict[str, Any]):
    """Serve's application builder: ``import_path: sinternal_verl.server.serve_app:app_builder``."""
    return build_deployment(args)


#: ``serve run sinternal_verl.server.serve_app:app`` (guard settings from SINTERNAL_GUARD_* env vars)
app = build_deployment({}) if __name__ != "__main__" else None
