"""The symbolic-equivalence worker: a child process speaking JSON lines on stdin/stdout.

Run as ``python -m sinternal_verl.rewards.math.symbolic_worker``. It imports sympy and
latex2sympy2_extended once, prints ``{"ready": true}``, then answers one request per line:
``{"id": n, "a": latex, "b": latex}`` -> ``{"id": n, "eq": true|false, "err": str|null}``.
The parent kills it when an answer overruns its time limit. It exits on stdin EOF, and on
Linux the kernel kills it when its parent dies (PR_SET_PDEATHSIG), so it cannot outlive a
crashed trainer even while stuck inside a C-level big-integer power.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys


def _die_with_parent() -> None:
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL("libc.so.6", use_errno=True)
            libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        except OSError:
            pass


def _limit_memory(mb: int) -> None:
    if mb > 0:
        try:
            import resource

            cap = mb * 1024 * 1024
            resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
        except (ImportError, ValueError, OSError):
            pass


def _build_comparator():
    import sympy
    from latex2sympy2_extended import latex2sympy
    from latex2sympy2_extended.latex2sympy2 import ConversionConfig
    from sympy.core.relational import Relational

    conv = ConversionConfig(interpret_as_mixed_fractions=True, lowercase_symbols=False)
    cache: dict[str, object] = {}

    def parse(s: str):
        if s not in cache:
            if len(cache) > 2048:
                cache.clear()
            cache[s] = latex2sympy(s, normalization_config=None, conversion_config=conv)
        return cache[s]

    def zero(d) -> bool:
        if d == 0:
            return True
        d = sympy.simplify(d)
        if d == 0:
            return True
        if getattr(d, "free_symbols", None) == set() and d.is_number:
            v = sympy.N(d, 30)
            return bool(v.is_real is not False and abs(v) < sympy.Float("1e-20"))
        return False

    def equal(a: str, b: str) -> bool:
        ea, eb = parse(a), parse(b)
        if ea == eb:
            return True
        if isinstance(ea, Relational) or isinstance(eb, Relational):
            if not (isinstance(ea, Relational) and isinstance(eb, Relational)) or type(ea) is not type(eb):
                return False
            da, db = ea.lhs - ea.rhs, eb.lhs - eb.rhs
            return zero(da - db) or (isinstance(ea, sympy.Eq) and zero(da + db))
        if isinstance(ea, sympy.Expr) and isinstance(eb, sympy.Expr):
            return zero(ea - eb)
        try:
            return bool(sympy.simplify(ea) == sympy.simplify(eb))
        except Exception:  # noqa: BLE001 - unsupported objects are simply unequal
            return False

    return equal


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--max-memory-mb", type=int, default=0)
    args = ap.parse_args(argv)
    _die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C goes to the parent; it kills us
    equal = _build_comparator()
    _limit_memory(args.max_memory_mb)  # after the imports: they need the room once
    out = sys.stdout
    out.write(json.dumps({"ready": True, "pid": os.getpid()}) + "\n")
    out.flush()
    for line in sys.stdin:
        try:
            req = json.loads(line)
        except ValueError:
            continue
        try:
            resp = {"id": req.get("id"), "eq": bool(equal(req["a"], req["b"])), "err": None}
        except MemoryError:
            resp = {"id": req.get("id"), "eq": False, "err": "MemoryError"}
        except Exception as exc:  # noqa: BLE001 - an unparsable answer is an unequal answer
            resp = {"id": req.get("id"), "eq": False, "err": f"{type(exc).__name__}: {str(exc)[:200]}"}
        out.write(json.dumps(resp) + "\n")
        out.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
