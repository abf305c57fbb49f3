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


def _build_comparator():
    import sympy
    from latex2sympy2_extended import latex2sympy
    from latex2sympy2_extended.latex2sympy2 import ConversionConfig
    from sympy.core.relational import Relational
    from sympy.matrices import MatrixBase

    conv = ConversionConfig(interpret_as_mixed_fractions=True, lowercase_symbols=False)
    cache: dict[str, object] = {}
    imag = sympy.Symbol("i")
    #: never a value: division by zero (``1:00`` read as 1/0), 0/0, undefined limits
    undefined = (sympy.zoo, sympy.nan)
    infinite = (sympy.oo, -sympy.oo, sympy.zoo)

    def canon(e):
        """Unevaluated sums and products rebuilt, so ``F_{n-k-1} F_k`` and ``F_k F_{n-k-1}``
        become the same object (latex2sympy keeps the order in which they were written)."""
        if not isinstance(e, sympy.Basic) or not e.args or isinstance(e, (MatrixBase, sympy.MatrixExpr)):
            return e
        args = [canon(a) for a in e.args]
        try:
            if isinstance(e, (sympy.Add, sympy.Mul)):
                return e.func(*args)
            if any(x is not y for x, y in zip(args, e.args)):
                return e.func(*args, evaluate=False) if isinstance(e, Relational) else e.func(*args)
        except Exception:  # noqa: BLE001 - a node that cannot be rebuilt stays as parsed
            return e
        return e

    def exact(e):
        """Decimals as exact rationals (0.1+0.2 is 0.3), the symbol i as the imaginary unit."""
        if not isinstance(e, sympy.Basic):
            return e
        e = canon(e)
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
    probe_cache: dict[int, list] = {}

    def probes(n: int) -> list:
        """``n`` probe points: values for the 1st, 2nd, ... symbol; mixed signs, never integers."""
        if n not in probe_cache:
            probe_cache[n] = [[sympy.Float(rng.uniform(-3.0, 3.0), 30) for _ in range(8)] for _ in range(n)]
        return probe_cache[n]

    #: sums, products, integrals and limits with a symbolic bound: evalf at a probe point is
    #: slow and meaningless (a sum to n = 1.37); only structural equality decides them
    unevaluated = (sympy.Sum, sympy.Product, sympy.Integral, sympy.Limit)

    def opaque(e) -> bool:
        return isinstance(e, sympy.Basic) and bool(e.free_symbols) and e.has(*unevaluated)

    def values(exprs, n: int):
        """Each expression evaluated at the same ``n`` points (one value per symbol, shared by
        all expressions so ``x`` means the same in both), or None when a value is not finite."""
        if any(opaque(e) for e in exprs):
            return None
        syms = sorted(set().union(*(getattr(e, "free_symbols", set()) for e in exprs)), key=str)
        if len(syms) > 8:
            return None
        points = [dict(zip(syms, p)) for p in probes(n)] if syms else [{}]
        out = []
        for e in exprs:
            vals = [e.evalf(30, subs=pt) if pt else e.evalf(30) for pt in points]
            if not all(v.is_number and v.is_finite for v in vals):
                return None
            out.append(vals)
        return out

    def zero(d, n: int, tol) -> bool:
        """Is ``d`` identically 0? Evaluated, not simplified: at 30 digits for a constant, at
        ``n`` fixed random points for an expression in symbols (a nonzero expression vanishing
        at all of them is vanishingly unlikely). ``simplify`` only when it cannot be evaluated."""
        if d == 0:
            return True
        vals = values([d], n)
        if vals is not None:
            return all(abs(v) < tol for v in vals[0])
        if opaque(d):
            return False  # not structurally equal (checked first) and not evaluable: unequal
        return sympy.simplify(d) == 0

    def proportional(da, db, n: int, tol, positive: bool) -> bool:
        """``da == k * db`` for one constant k != 0 (k > 0 when ``positive``): the same
        equation (or inequality) written with its sides moved or scaled."""
        vals = values([da, db], n)
        if vals is None:
            return False
        va, vb = vals
        k = next((x / y for x, y in zip(va, vb) if abs(y) > tol), None)
        if k is None or abs(k) < tol or (positive and k < 0):
            return False
        return all(abs(x - k * y) <= tol * max(1, abs(x)) for x, y in zip(va, vb))

    def relation(e):
        """(kind, lhs - rhs) with ``>``/``>=`` turned around: ``5 >= x`` is ``x - 5 <= 0``."""
        if isinstance(e, (sympy.StrictGreaterThan, sympy.GreaterThan)):
            kind = "lt" if isinstance(e, sympy.StrictGreaterThan) else "le"
            return kind, e.rhs - e.lhs
        if isinstance(e, (sympy.StrictLessThan, sympy.LessThan)):
            return ("lt" if isinstance(e, sympy.StrictLessThan) else "le"), e.lhs - e.rhs
        if isinstance(e, sympy.Eq):
            return "eq", e.lhs - e.rhs
        if isinstance(e, sympy.Ne):
            return "ne", e.lhs - e.rhs
        return None, None

    def matrix(e):
        if isinstance(e, MatrixBase):
            return e
        if isinstance(e, sympy.MatrixExpr):
            return sympy.Matrix(e.doit())
        return None

    def equal(a: str, b: str, n: int = 4, tol=None) -> bool:
        tol = sympy.Float(tol if tol is not None else 1e-20)
        ea, eb = parse(a), parse(b)
        for e in (ea, eb):
            if isinstance(e, sympy.Basic) and e.has(*undefined):
                return False
        if ea == eb:  # structurally the same (sympy orders commutative products and sums)
            return True
        if isinstance(ea, Relational) or isinstance(eb, Relational):
            (ka, da), (kb, db) = relation(ea), relation(eb)
            if ka is None or ka != kb:
                return False
            return proportional(da, db, n, tol, positive=ka in ("lt", "le"))
        ma, mb = matrix(ea), matrix(eb)
        if ma is not None or mb is not None:
            if ma is None or mb is None or ma.shape != mb.shape:
                return False
            return all(zero(x - y, n, tol) for x, y in zip(ma, mb))
        if isinstance(ea, sympy.Expr) and isinstance(eb, sympy.Expr):
            if ea.has(*infinite) or eb.has(*infinite):  # oo - oo is nan: only the same infinity
                return False
            return zero(ea - eb, n, tol)
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
    ("2x+4y-3=0", "y=-\\frac{1}{2}x+\\frac{3}{4}"),
    ("-x>-1", "x<1"),
    (
        "\\begin{pmatrix}1&2\\\\3&4\\end{pmatrix}+\\begin{pmatrix}1&0\\\\0&1\\end{pmatrix}",
        "\\begin{pmatrix}2&2\\\\3&5\\end{pmatrix}",
    ),
    ("\\tan^2(y)+1", "\\sec^2(y)"),
    ("e^{i\\pi}", "-1"),
    ("F_n=\\sum_{k=0}^{n-1}F_k F_{n-k-1}", "F_n=\\sum_{k=0}^{n-2}F_k F_{n-k-2}"),
    ("\\emptyset", "\\{1\\}"),
    ("\\ln e^2", "2"),
    ("204_5", "54"),
    ("\\int_0^1 x\\,dx", "\\frac{1}{2}"),
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
            eq = equal(req["a"], req["b"], int(req.get("probes", 4)), req.get("tol"))
            resp = {"id": req.get("id"), "eq": bool(eq), "err": None}
        except MemoryError:
            resp = {"id": req.get("id"), "eq": False, "err": "MemoryError"}
        except Exception as exc:  # noqa: BLE001 - an unparsable answer is an unequal answer
            resp = {"id": req.get("id"), "eq": False, "err": f"{type(exc).__name__}: {str(exc)[:200]}"}
        out.write(json.dumps(resp) + "\n")
        out.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
