"""Standalone reward server: the sinternal safety + math reward over HTTP for any trainer
(OpenRLHF ``--reward.remote_url``, TRL ``reward_funcs``, home-grown loops).

``build_app(ServerConfig(...), guard_factory=...)`` builds the FastAPI app;
``sinternal-verl serve`` runs it. See ``reward_servers/README.md``.
"""

from reward_servers.config import ServerConfig
from reward_servers.protocol import Limits

__all__ = ["Limits", "ServerConfig", "build_app"]


def __getattr__(name: str):
    if name == "build_app":  # FastAPI imported only when the app is wanted
        from reward_servers.app import build_app

        return build_app
    raise AttributeError(name)
