"""The symbolic-equivalence worker: a child process speaking JSON lines on stdin/stdout.

Run as ``python -m sinternal_verl.rewards.math.symbolic_worker``. It imports sympy and
latex2sympy2_extended once, prints ``{"ready": true}``, then answers one request per line:
``{"id": n, "a": latex, "b": latex}`` -> ``{"id": n, "eq": true|false, "err": str|null}``.
The parent kills it when an answer overruns its time limit. It exits on stdin EOF (parent
gone), and an RLIMIT_CPU set per request makes the kernel end it if a request runs far
past its limit, so it cannot outlive a crashed trainer while stuck inside a C-level
big-integer power.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sys


def _cpu_backstop(seconds: float) -> None:
    """Let the kernel end this process if one request burns more than ``seconds`` of CPU.

    The parent kills us when a request overruns its wall-clock limit; this covers the
    case where the parent itself died mid-request (we would otherwise spin on, orphaned,
    inside a GIL-holding big-integer power). Only the soft limit moves (an unprivileged
    process may raise it again later, never the hard one). PR_SET_PDEATHSIG is no use:
    it fires when the *thread* that started us exits, and we are started from executor
    threads that come and go.
    """
    try:
        import math
        import resource

        ru = resource.getrusage(resource.RUSAGE_SELF)
        soft = int(math.ceil(ru.ru_utime + ru.ru_stime + seconds))
        resource.setrlimit(resource.RLIMIT_CPU, (soft, resource.RLIM_INFINITY))
    except (ImportError, ValueError, OSError):
        pass


def _limit_memory(mb: int) -> None:
    if mb > 0:
        try:
            import resource

            cap = mb * 1024 * 1024
            resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
        except (ImportError, ValueError, OSError):
            pass


def _build_comparator(n_probes: int = 4):
    import sympy
    from latex2sympy2_extended import latex2sympy
    from latex2sympy2_extended.latex2sympy2 import ConversionConfig
    from sympy.core.relational import Relational

    tol = sympy.Float("1e-20")
    conv = ConversionConfig(interpret_as_mixed_fractions=True, lowercase_symbols=False)
    cache: dict[str, object] = {}

    imag = sympy.Symbol("i")

    def exact(e):
        """Decimals as exact rationals (0.1+0.2 is 0.3), the symbol i as the imaginary unit."""
        if not isinstance(e, sympy.Basic):
            return e
        floats = {f: sympy.Rational(str(f)) for f in e.atoms(sympy.Float)}
        if floats:
            e = e.xreplace(floats)
        if imag in getattr(e, "free_symbols", ()):
            e = e.xreplace({imag: sympy.I})
        return e

    def parse(s: str):
        if s not in cache:
            if len(cache) > 2048:
                cache.clear()
            cache[s] = exact(latex2sympy(s, normalization_config=None, conversion_config=conv))
        return cache[s]

    rng = random.Random(20240607)
    #: probe points: values for the 1st, 2nd, ... free symbol; mixed signs, never integers
    probes = [[sympy.Float(rng.uniform(-3.0, 3.0), 30) for _ in range(8)] for _ in range(n_probes)]

    def zero(d) -> bool:
        """Is ``d`` identically 0? Evaluated, not simplified: at 30 digits for a constant,
        at a few fixed random points for an expression in symbols (a nonzero expression
        vanishing at all of them is vanishingly unlikely). ``simplify`` only when the
        expression cannot be evaluated (unknown functions, matrices)."""
        if d == 0:
            return True
        syms = sorted(getattr(d, "free_symbols", ()), key=str)
        if len(syms) <= 8:
            points = [dict(zip(syms, p)) for p in probes] if syms else [{}]
            values = [d.evalf(30, subs=pt) if pt else d.evalf(30) for pt in points]
            if all(v.is_number and v.is_finite for v in values):
                return all(abs(v) < tol for v in values)
            if any(v.is_number and v.is_finite and abs(v) >= tol for v in values):
                return False
        return sympy.simplify(d) == 0

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


_WARMUP = (
    ("\\frac{\\sqrt{2}}{2}", "\\frac{1}{\\sqrt{2}}"),
    ("x^2+2x+1", "(x+1)^2"),
    ("\\frac{2\\pi}{3}", "2\\pi/3"),
    ("\\sin^2 x+\\cos^2 x", "1"),
    ("y=2x+3", "y=3+2x"),
    ("e^{i\\pi}", "-1"),
    ("\\log_2 8", "3"),
)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--max-memory-mb", type=int, default=0)
    ap.add_argument("--no-warmup", action="store_true")
    args = ap.parse_args(argv)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C goes to the parent; it kills us
    equal = _build_comparator()
    if not args.no_warmup:
        # sympy loads much of itself lazily on first use (simplify of a radical or a polynomial
        # costs ~1 s once): pay that before "ready", not inside some answer's time limit
        for a, b in _WARMUP:
            try:
                equal(a, b)
            except Exception:  # noqa: BLE001 - warm-up is best effort
                pass
    _limit_memory(args.max_memory_mb)  # after the imports: they need the room once
    out = sys.stdout
    out.write(json.dumps({"ready": True, "pid": os.getpid()}) + "\n")
    out.flush()
    for line in sys.stdin:
        try:
            req = json.loads(line)
        except ValueError:
            continue
        _cpu_backstop(float(req.get("cpu_s", 60.0)))
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
