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
        httpx.post(
            f"{self.url}/_control", json={"mode": mode, "count": count, "delay_s": delay_s}
        ).raise_for_status()

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


# ---------------------------------------------------------------- real-vLLM tier
#: what the tier measured, printed at the end of the session (never asserted)
VLLM_TIMINGS: dict[str, float] = {}


def reward_guard_factory(url: str, timeout_s: float = 5.0, max_retries: int = 1, **kw):
    """A guard factory for the reward server: fast retries, no cache (each test sees every call)."""
    from sinternal_verl.guards import GuardConfig, build_guard

    cfg = GuardConfig(
        kind="qwen3guard",
        urls=(url,),
        max_retries=max_retries,
        backoff_base_s=0.01,
        backoff_max_s=0.05,
        timeout_s=timeout_s,
        cache_size=0,
        **kw,
    )
    return lambda: build_guard(cfg)


@pytest.fixture
def guard_factory_for():
    """:func:`reward_guard_factory`, for tests that build the server themselves."""
    return reward_guard_factory


@pytest.fixture
def reward_server(fake_guard):
    """``start(settings=None, guard=None, **guard_settings) -> ThreadedServer``: a reward server on
    loopback over the fake guard (or the given guard object); all are stopped at teardown."""
    from sinternal_verl.server.app import build_app
    from sinternal_verl.server.settings import ServerSettings
    from sinternal_verl.testing.server import ThreadedServer

    started: list[ThreadedServer] = []

    def start(settings=None, guard=None, **guard_kw) -> ThreadedServer:
        source = (
            {"guard": guard}
            if guard is not None
            else {"guard_factory": reward_guard_factory(fake_guard.url, **guard_kw)}
        )
        srv = ThreadedServer(build_app(settings or ServerSettings(), **source))
        started.append(srv.start())
        return srv

    yield start
    for s in started:
        s.stop()


def _vllm_python() -> str:
    from sinternal_verl.testing.vllm_server import ENV_VLLM_PYTHON

    py = os.environ.get(ENV_VLLM_PYTHON)
    if not py:
        pytest.skip(
            f"real-vLLM tier skipped: {ENV_VLLM_PYTHON} is unset. `make test` builds the vLLM venv and sets it; "
            f"by hand: make vllm-venv && {ENV_VLLM_PYTHON}=$PWD/.venv-vllm/bin/python pytest tests/test_vllm_*.py"
        )
    return py


@pytest.fixture(scope="session")
def vllm_python() -> str:
    """The vLLM venv's python (skips the test when the tier is off)."""
    return _vllm_python()


@pytest.fixture(scope="session")
def tiny_guard_dir(tmp_path_factory):
    """The vLLM-sized tiny Qwen3 trained to answer in Qwen3Guard's format (trigger word: bomb)."""
    import time

    _vllm_python()  # skip before paying for the training when the tier is off
    from sinternal_verl.testing.tiny_guard import train_tiny_guard

    t0 = time.perf_counter()
    out = train_tiny_guard(tmp_path_factory.mktemp("tiny_guard"))
    VLLM_TIMINGS["tiny guard training s"] = time.perf_counter() - t0
    return out


@pytest.fixture(scope="session")
def vllm_server(tiny_guard_dir, tmp_path_factory):
    """ONE real vLLM OpenAI server for the whole tier, serving the tiny guard under two names
    (``tiny-guard`` for guard tests, ``tiny-policy`` for sampling / expert tests)."""
    from sinternal_verl.testing.vllm_server import VLLMServer, VLLMServerSpec

    spec = VLLMServerSpec(
        python=_vllm_python(), model_dir=str(tiny_guard_dir), served_names=("tiny-guard", "tiny-policy")
    )
    log = tmp_path_factory.mktemp("vllm") / "server.log"
    with VLLMServer(spec, log) as srv:
        VLLM_TIMINGS["vLLM server start-up s"] = srv.startup_s or 0.0
        VLLM_TIMINGS["readiness polls"] = float(srv.polls)
        yield srv


def pytest_terminal_summary(terminalreporter):
    if VLLM_TIMINGS:
        terminalreporter.write_sep("-", "real-vLLM tier (measured, not asserted)")
        for k, v in VLLM_TIMINGS.items():
            terminalreporter.write_line(f"{k}: {v:.1f}")
