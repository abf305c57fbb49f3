"""Standalone reward server: the sinternal safety + math reward over HTTP for any trainer
(OpenRLHF ``--reward.remote_url``, TRL ``reward_funcs``, home-grown loops).

``build_app(ServerSettings(...), guard_factory=...)`` builds the FastAPI app;
``sinternal-verl serve`` runs it; ``sinternal_verl.server.serve_app`` is the Ray Serve app.
See ``sinternal_verl/server/README.md``.
"""

from .settings import ServerSettings

__all__ = ["ServerSettings", "build_app"]


def __getattr__(name: str):
    if name == "build_app":  # FastAPI imported only when the app is wanted
        from .app import build_app

        return build_app
    raise AttributeError(name)
