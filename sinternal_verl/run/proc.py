"""Child processes of a run (torchrun, main_ppo, the model merger): output tee'd to the
stage's log file, a live status line, the log's tail on failure, and the whole process
group ended when the run is interrupted.

Why a new session per child: torchrun and Ray start process trees of their own; killing the
group is the only way to leave no trainer running behind an interrupted run.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..cpu.measure import tree_memory_bytes


class StageFailed(RuntimeError):
    """A stage's child process exited non-zero (the message carries the log's tail)."""


class PeakSampler:
    """Samples this process tree's memory in a thread while a stage runs: the peak of the RSS
    sum (shared pages once per process, an over-count) and of the PSS sum (what the tree takes
    from the machine)."""

    def __init__(self, every_s: float = 0.5):
        self.every_s = every_s
        self.peak = 0
        self.peak_pss = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _sample(self) -> None:
        rss, pss = tree_memory_bytes()
        self.peak, self.peak_pss = max(self.peak, rss), max(self.peak_pss, pss)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._sample()
            self._stop.wait(self.every_s)

    def __enter__(self) -> PeakSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()


@dataclass
class ChildResult:
    returncode: int
    seconds: float
    log_path: Path


def run_child(
    args: Sequence[str],
    *,
    log_path: Path,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    console=None,
    label: str = "",
    tail_lines: int = 40,
) -> ChildResult:
    """Run ``args``; every output line goes to ``log_path``; a status line shows the label,
    the elapsed time and the child's latest line. Non-zero exit -> :class:`StageFailed` with
    the log's last ``tail_lines`` lines. Interrupted (Ctrl-C / SIGTERM) -> the child's whole
    process group is ended before the exception propagates."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    tail: deque[str] = deque(maxlen=max(1, tail_lines))
    t0 = time.monotonic()
    status = console.status(label) if console is not None else None
    with open(log_path, "a", encoding="utf-8", errors="replace") as log:
        log.write(f"$ {' '.join(map(str, args))}\n")
        log.flush()
        proc = subprocess.Popen(
            [str(a) for a in args], env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, text=True, errors="replace", bufsize=1, start_new_session=True,
        )  # fmt: skip
        try:
            if status is not None:
                status.start()
            assert proc.stdout is not None
            for line in proc.stdout:
                log.write(line)
                log.flush()
                line = line.rstrip()
                if line:
                    tail.append(line)
                    if status is not None:
                        status.update(f"{label}  [dim]{time.monotonic() - t0:5.0f} s  {_short(line)}[/dim]")
            rc = proc.wait()
        except BaseException:
            _end_group(proc)
            raise
        finally:
            if status is not None:
                status.stop()
    if rc != 0:
        shown = "\n".join(tail)
        raise StageFailed(
            f"{args[0]} ... exited with code {rc}; last {len(tail)} lines of {log_path}:\n{shown}"
        )
    return ChildResult(rc, time.monotonic() - t0, log_path)


def _short(line: str, width: int = 90) -> str:
    from rich.markup import escape

    line = line.replace("\t", " ")
    return escape(line if len(line) <= width else line[: width - 1] + "…")


def _end_group(proc: subprocess.Popen, grace_s: float = 10.0) -> None:
    """SIGTERM the child's process group, SIGKILL what is left after ``grace_s``."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()
