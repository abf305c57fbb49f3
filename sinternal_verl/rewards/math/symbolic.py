"""Symbolic equivalence under a hard time limit, safe in threads, asyncio executors and
Ray actors.

Why a child process (and not ``signal.alarm`` or a thread):

* ``signal.alarm`` (math-verify's way) only works in the main thread of the main
  interpreter; verl scores in Ray actors and thread-pool executors, where it raises or
  silently does nothing.
* A thread cannot be stopped: a thread stuck in sympy's ``9**387420489`` (a C-level
  big-integer power that never releases the GIL) keeps burning a core and holds the GIL.
* ``multiprocessing`` pools refuse to start from daemonic processes, re-import
  ``__main__`` under spawn, and fork is unsafe in a process that already runs threads
  (every Ray worker does).

So each host process keeps a few long-lived workers started with ``subprocess.Popen``
(``python -m ...symbolic_worker``), speaking JSON lines over pipes. A comparison that
overruns its limit gets its worker SIGKILLed; the next one starts a fresh worker. The
worker imports sympy once (~0.5 s), so the steady-state cost is one pipe round trip.
Plain numbers never get here (see :mod:`.verify`).
"""

from __future__ import annotations

import atexit
import json
import os
import queue
import selectors
import subprocess
import sys
import tempfile
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass


class SymbolicWorkerError(RuntimeError):
    """The worker process could not be started (environment problem, not an answer's)."""


@dataclass(frozen=True)
class SymbolicResult:
    equal: bool
    timed_out: bool = False
    #: the worker died or the expression could not be handled (still "not equal")
    error: str | None = None


class SymbolicWorker:
    """One child process; not thread-safe on its own (the pool hands it to one caller)."""

    def __init__(self, max_memory_mb: int = 0, startup_timeout_s: float = 60.0, warmup: bool = True):
        self.max_memory_mb = max_memory_mb
        self.warmup = warmup
        self.startup_timeout_s = startup_timeout_s
        self.proc: subprocess.Popen | None = None
        self._buf = b""
        self._next_id = 0
        self._stderr = None
        self._eof = False
        self._last_rc: int | None = None
        #: how many times a worker had to be (re)started; a timeout costs one restart
        self.starts = 0

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def start(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            return
        self.kill()
        self._stderr = tempfile.TemporaryFile()
        cmd = [
            sys.executable,
            "-m",
            "sinternal_verl.rewards.math.symbolic_worker",
            "--max-memory-mb",
            str(self.max_memory_mb),
        ] + ([] if self.warmup else ["--no-warmup"])
        try:
            self.proc = subprocess.Popen(
                cmd,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=self._stderr,
                bufsize=0,
                close_fds=True,
            )
        except OSError as exc:
            raise SymbolicWorkerError(f"cannot start symbolic worker {cmd}: {exc}") from exc
        self._buf = b""
        self.starts += 1
        line = self._readline(time.monotonic() + self.startup_timeout_s)
        if line is None or not json.loads(line or "{}").get("ready"):
            tail = self._stderr_tail()
            self.kill()
            raise SymbolicWorkerError(
                f"symbolic worker did not become ready within {self.startup_timeout_s}s: {tail or 'no output'}"
            )

    def _stderr_tail(self) -> str:
        if self._stderr is None:
            return ""
        try:
            self._stderr.seek(0)
            return self._stderr.read()[-2000:].decode("utf-8", "replace").strip()
        except OSError:
            return ""

    def _readline(self, deadline: float) -> str | None:
        """One line from the worker, or None on timeout / EOF (``self._eof`` tells which)."""
        self._eof = False
        assert self.proc is not None and self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        with selectors.DefaultSelector() as sel:
            sel.register(fd, selectors.EVENT_READ)
            while b"\n" not in self._buf:
                left = deadline - time.monotonic()
                if left <= 0 or not sel.select(left):
                    return None
                chunk = os.read(fd, 65536)
                if not chunk:
                    self._eof = True
                    return None
                self._buf += chunk
        line, _, self._buf = self._buf.partition(b"\n")
        return line.decode("utf-8", "replace")

    def compare(self, a: str, b: str, timeout_s: float, options: dict | None = None) -> SymbolicResult:
        """``options``: ``probes`` (random points per identity check), ``tol`` (zero threshold)."""
        self.start()
        assert self.proc is not None and self.proc.stdin is not None
        self._next_id += 1
        # the worker's own CPU backstop: well past the wall-clock limit we enforce from here
        req = (
            json.dumps(
                {"id": self._next_id, "a": a, "b": b, "cpu_s": 2 * timeout_s + 5, **(options or {})}
            ).encode()
            + b"\n"
        )
        deadline = time.monotonic() + timeout_s
        try:
            self.proc.stdin.write(req)
        except (BrokenPipeError, OSError) as exc:
            self.kill()
            return SymbolicResult(False, error=f"worker pipe closed: {exc}")
        line = self._readline(deadline)
        if line is None:
            died = self._eof or self.proc.poll() is not None
            tail = self._stderr_tail()[-300:] if died else ""
            self.kill()
            if died:
                return SymbolicResult(False, error=f"worker died (exit {self._last_rc}): {tail}")
            return SymbolicResult(False, timed_out=True)
        resp = json.loads(line)
        if resp.get("id") != self._next_id:  # cannot happen with one caller; be loud if it does
            self.kill()
            return SymbolicResult(False, error=f"worker replied out of order: {resp!r}")
        return SymbolicResult(bool(resp.get("eq")), error=resp.get("err"))

    def kill(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None:
            if proc.poll() is None:
                proc.kill()
            try:
                self._last_rc = proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
            for f in (proc.stdin, proc.stdout):
                try:
                    if f is not None:
                        f.close()
                except OSError:
                    pass
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None


class SymbolicPool:
    """A few workers shared by all threads of one process, plus a verdict cache."""

    def __init__(
        self,
        workers: int = 1,
        max_memory_mb: int = 0,
        startup_timeout_s: float = 60.0,
        cache_size: int = 4096,
        warmup: bool = True,
    ):
        self.workers = [SymbolicWorker(max_memory_mb, startup_timeout_s, warmup) for _ in range(workers)]
        self._idle: queue.Queue[SymbolicWorker] = queue.Queue()
        for w in self.workers:
            self._idle.put(w)
        self._cache: OrderedDict[tuple, SymbolicResult] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()
        self.closed = False
        self.restart_errors: list[str] = []

    def warmup(self) -> None:
        """Start every worker now (the first comparison would otherwise pay the start-up).
        Takes each worker out of the pool while starting it, so it is safe at any time."""
        held = [self._idle.get() for _ in self.workers]
        try:
            for w in held:
                w.start()
        finally:
            for w in held:
                self._idle.put(w)

    def compare(self, a: str, b: str, timeout_s: float, options: dict | None = None) -> SymbolicResult:
        key = ((a, b) if a <= b else (b, a)) + tuple(sorted((options or {}).items()))
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None:
                self._cache.move_to_end(key)
                return hit
        if self.closed:
            raise SymbolicWorkerError("symbolic pool is closed")
        w = self._idle.get()  # bounded wait: every holder is bounded by its own time limit
        try:
            res = w.compare(a, b, timeout_s, options)
        except BaseException:
            self._idle.put(w)
            raise
        if w.proc is None and not self.closed:
            # killed (timeout) or died: start its replacement now, off this caller's clock,
            # and hand it out again only once it is ready
            threading.Thread(target=self._restart, args=(w,), daemon=True).start()
        else:
            self._idle.put(w)
        if res.error is None or not res.error.startswith("worker"):
            with self._lock:
                self._cache[key] = res
                while len(self._cache) > self._cache_size:
                    self._cache.popitem(last=False)
        return res

    def _restart(self, w: SymbolicWorker) -> None:
        try:
            if not self.closed:
                w.start()
        except SymbolicWorkerError as exc:  # the next compare() retries and raises it
            self.restart_errors.append(str(exc))
        finally:
            self._idle.put(w)
            if self.closed:
                w.kill()

    def close(self) -> None:
        self.closed = True
        for w in self.workers:
            w.kill()


_POOLS: dict[tuple, SymbolicPool] = {}
_POOLS_LOCK = threading.Lock()
_POOLS_PID = os.getpid()


def get_pool(
    workers: int = 1,
    max_memory_mb: int = 0,
    startup_timeout_s: float = 60.0,
    cache_size: int = 4096,
    warmup: bool = True,
) -> SymbolicPool:
    """The process-wide pool for these settings (a forked child gets its own)."""
    global _POOLS_PID
    key = (workers, max_memory_mb, startup_timeout_s, cache_size, warmup)
    with _POOLS_LOCK:
        if os.getpid() != _POOLS_PID:  # inherited after fork: those workers are the parent's
            _POOLS.clear()
            _POOLS_PID = os.getpid()
        pool = _POOLS.get(key)
        if pool is None or pool.closed:
            pool = _POOLS[key] = SymbolicPool(workers, max_memory_mb, startup_timeout_s, cache_size, warmup)
        return pool


def shutdown_pools() -> None:
    """Kill every worker of this process (also run at interpreter exit)."""
    with _POOLS_LOCK:
        if os.getpid() != _POOLS_PID:
            _POOLS.clear()
            return
        for pool in _POOLS.values():
            pool.close()
        _POOLS.clear()


atexit.register(shutdown_pools)
