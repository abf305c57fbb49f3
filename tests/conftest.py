"""Shared fixtures. ``tests/`` is a plain folder (no ``__init__.py``): the verl wheel
installs a top-level package named ``tests`` and ours must not shadow it."""

from __future__ import annotations

import os

import httpx
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


class FakeGuard:
    """Handle on a running fake OpenAI-compatible guard server."""

    def __init__(self, url: str, app):
        self.url = url
        self.app = app

    def fault(self, mode: str, count: int = -1, delay_s: float = 0.0) -> None:
        httpx.post(f"{self.url}/_control", json={"mode": mode, "count": count, "delay_s": delay_s}).raise_for_status()

    def reset(self) -> None:
        httpx.post(f"{self.url}/_reset").raise_for_status()

    def stats(self) -> dict:
        return httpx.get(f"{self.url}/_stats").json()


@pytest.fixture
def fake_guard():
    """A Qwen3Guard-speaking fake server on 127.0.0.1 (also serves Llama Guard and WildGuard
    model names), with fault injection."""
    from sinternal_verl.testing.fake_openai import build_app
    from sinternal_verl.testing.server import ThreadedServer

    app = build_app(models=("Qwen/Qwen3Guard-Gen-4B", "meta-llama/Llama-Guard-4-12B", "allenai/wildguard"))
    with ThreadedServer(app) as srv:
        yield FakeGuard(srv.url, app)
