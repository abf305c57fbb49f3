"""Run a command and measure its wall time and peak RSS summed over its whole process tree.

Why: a verl run is many processes (torchrun children, Ray's GCS/raylet/workers); the figure that
matters on a laptop is the peak of their sum, which ``/usr/bin/time`` does not give.
"""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class MeasuredRun:
    returncode: int
    wall_s: float
    peak_rss_bytes: int
    log_path: Path

    @property
    def peak_rss_gb(self) -> float:
        return self.peak_rss_bytes / 1024**3

    def log_tail(self, chars: int = 4000) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return text[-chars:]


def _tree(pid: int | None):
    import os

    import psutil

    try:
        root = psutil.Process(pid or os.getpid())
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return []


def tree_rss_bytes(pid: int | None = None) -> int:
    """RSS summed over a process and all its descendants (shared pages count once per process)."""
    import psutil

    total = 0
    for p in _tree(pid):
        try:
            total += p.memory_info().rss
        except psutil.Error:
            pass
    return total


def tree_memory_bytes(pid: int | None = None) -> tuple[int, int]:
    """``(RSS sum, PSS sum)`` over a process and its descendants, in one walk of the tree.

    PSS splits each shared page between the processes that map them, so its sum is what the
    tree takes from the machine (Ray workers and torchrun children share torch's libraries;
    their RSS sum counts them once per process). A process whose ``smaps_rollup`` cannot be
    read counts its RSS in both."""
    import psutil

    rss = pss = 0
    for p in _tree(pid):
        try:
            full = p.memory_full_info()
            rss, pss = rss + full.rss, pss + full.pss
        except (psutil.Error, AttributeError):
            try:
                one = p.memory_info().rss
            except psutil.Error:
                continue
            rss, pss = rss + one, pss + one
    return rss, pss


def tree_pss_bytes(pid: int | None = None) -> int:
    """PSS summed over a process and its descendants (see :func:`tree_memory_bytes`)."""
    return tree_memory_bytes(pid)[1]


def run_measured(
    args: Sequence[str],
    *,
    log_path: str | Path,
    env: dict[str, str] | None = None,
    cwd: str | Path | None = None,
    timeout_s: float = 900.0,
    sample_every_s: float = 0.5,
) -> MeasuredRun:
    """Run ``args`` with stdout+stderr to ``log_path``; kill the whole tree on timeout."""
    import psutil

    log_path = Path(log_path)
    peak = 0
    stop = threading.Event()
    t0 = time.monotonic()
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            list(args), env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        root = psutil.Process(proc.pid)

        def sample() -> None:
            nonlocal peak
            while not stop.is_set():
                peak = max(peak, tree_rss_bytes(root.pid))
                stop.wait(sample_every_s)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        try:
            rc = proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            for p in [*root.children(recursive=True), root]:
                try:
                    p.kill()
                except psutil.Error:
                    pass
            proc.wait()
            rc = -9
        finally:
            stop.set()
            sampler.join()
    return MeasuredRun(rc, time.monotonic() - t0, peak, log_path)
