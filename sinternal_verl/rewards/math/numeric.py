"""In-process fast path for expressions: read a small, unambiguous LaTeX subset into a tree
and evaluate both answers with mpmath at 30 digits, at the same probe points for their
symbols. This is the worker's own identity test (see ``symbolic_worker.zero``), minus
latex2sympy's parse, which costs 5-50 ms per answer and dominated the reward's time.

Anything outside the subset, or ambiguous to read (``1/2x``, ``\\sin 2x``, ``2^3^2``), or not
finite at a probe point (a division by zero, ``1:00`` read as 1/0), returns None and goes to
the worker, which then decides exactly as before. So this path can only decide what the
worker would decide the same way.
"""

from __future__ import annotations

import operator
import random
import re
from collections.abc import Callable

import mpmath

_TOKEN_RE = re.compile(
    r"\s*(?:(?P<mat>\\begin\{pmatrix\}(?P<body>(?:(?!\\begin\{).)*?)\\end\{pmatrix\})|(?P<num>\d+(?:\.\d*)?|\.\d+)|(?P<cmd>\\[A-Za-z]+)|(?P<var>[A-Za-z])(?P<sub>_(?:\{[^{}]*\}|[A-Za-z0-9]))?"
    r"|(?P<op>[-+*/^(){}!\[\]_]))"
)
_FUNCS: dict[str, Callable] = {
    "\\sin": mpmath.sin,
    "\\cos": mpmath.cos,
    "\\tan": mpmath.tan,
    "\\sec": mpmath.sec,
    "\\csc": mpmath.csc,
    "\\cot": mpmath.cot,
    "\\arcsin": mpmath.asin,
    "\\arccos": mpmath.acos,
    "\\arctan": mpmath.atan,
    "\\sinh": mpmath.sinh,
    "\\cosh": mpmath.cosh,
    "\\tanh": mpmath.tanh,
    "\\ln": mpmath.log,
    "\\exp": mpmath.exp,
}
_MUL_CMDS = ("\\cdot", "\\times")
#: beyond this many decimal digits a power is left to the worker (its time limit and size checks)
_MAX_MAGNITUDE_DIGITS = 10_000
#: values are compared with an absolute tolerance (the worker's test on the difference); the
#: difference of two values computed apart carries ~|value| x 1e-30 of rounding, so values
#: larger than this go to the worker, which evaluates the difference itself
_MAX_VALUE = mpmath.mpf(10) ** 6
#: a decimal with more significant digits could pass for an exact value (0.333...3 for 1/3):
#: the worker reads decimals as exact rationals, so those go there
_MAX_DECIMAL_DIGITS = 12


class _Unsupported(Exception):
    pass


class _Parser:
    """Recursive descent over tokens -> closures ``f(env) -> mpc``; records symbol names."""

    def __init__(self, text: str):
        self.toks: list[tuple[str, str]] = []
        pos = 0
        text = text.strip()
        while pos < len(text):
            m = _TOKEN_RE.match(text, pos)
            if not m or m.end() == pos:
                raise _Unsupported(text[pos:])
            pos = m.end()
            if m.group("mat"):
                self.toks.append(("mat", m.group("body")))
            elif m.group("num"):
                if len(m.group("num").replace(".", "").lstrip("0")) > _MAX_DECIMAL_DIGITS:
                    raise _Unsupported("long decimal")
                self.toks.append(("num", m.group("num")))
            elif m.group("cmd"):
                self.toks.append(("cmd", m.group("cmd")))
            elif m.group("var"):
                self.toks.append(("var", m.group("var") + (m.group("sub") or "")))
            elif m.group("op"):
                self.toks.append(("op", m.group("op")))
        self.i = 0
        self.symbols: set[str] = set()

    def peek(self) -> tuple[str, str] | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def take(self, value: str | None = None) -> tuple[str, str]:
        tok = self.peek()
        if tok is None or (value is not None and tok[1] != value):
            raise _Unsupported(f"expected {value}")
        self.i += 1
        return tok

    def parse(self):
        f = self.expr()
        if self.peek() is not None:
            raise _Unsupported("trailing tokens")
        return f

    def expr(self):
        f = self.term()
        while (tok := self.peek()) and tok[1] in ("+", "-"):
            self.take()
            g, op = self.term(), tok[1]
            f = _binary(_add if op == "+" else _sub, f, g)
        return f

    def _starts_primary(self, tok) -> bool:
        return tok is not None and (
            tok[0] in ("num", "var", "mat")
            or tok[1] in ("(", "{")
            or (tok[0] == "cmd" and tok[1] not in _MUL_CMDS)
        )

    def term(self):
        f = self.unary()
        after_div = False
        while True:
            tok = self.peek()
            if tok and (tok[1] in ("*", "/") or tok[1] in _MUL_CMDS):
                self.take()
                g = self.unary()
                if tok[1] == "/":
                    f = _binary(_div, f, g)
                    after_div = True
                else:
                    f = _binary(_mul, f, g)
                    after_div = False
            elif self._starts_primary(tok):
                if after_div:  # ``1/2x``: (1/2)x or 1/(2x)? not ours to guess
                    raise _Unsupported("implicit product after /")
                g = self.power()
                f = _binary(_mul, f, g)
            else:
                return f

    def unary(self):
        tok = self.peek()
        if tok and tok[1] in ("-", "+"):
            self.take()
            f = self.unary()
            return _unary(operator.neg, f) if tok[1] == "-" else f
        return self.power()

    def exponent(self):
        tok = self.peek()
        if tok is None:
            raise _Unsupported("dangling ^")
        if tok[1] == "{":
            return self.group("{", "}")
        if tok[0] == "num" and len(tok[1]) == 1:
            self.take()
            v = mpmath.mpf(tok[1])
            return lambda e: v
        if tok[0] == "var" and len(tok[1]) == 1:
            return self.primary()
        raise _Unsupported("exponent")

    def power(self):
        base = self.primary()
        tok = self.peek()
        if tok and tok[1] == "^":
            self.take()
            ex = self.exponent()
            nxt = self.peek()
            if nxt and nxt[1] == "^":
                raise _Unsupported("a^b^c")
            base = _binary(_pow, base, ex)
        while (tok := self.peek()) and tok[1] == "!":
            self.take()
            base = _unary(_factorial, base)
        return base

    def group(self, open_: str, close: str):
        self.take(open_)
        f = self.expr()
        self.take(close)
        return f

    def primary(self):
        tok = self.peek()
        if tok is None:
            raise _Unsupported("unexpected end")
        kind, val = tok
        if kind == "mat":
            self.take()
            return self.matrix(val)
        if kind == "num":
            self.take()
            v = mpmath.mpf(val)
            return lambda e: v
        if kind == "var":
            self.take()
            if val == "e":
                return lambda e: mpmath.e
            if val == "i":
                return lambda e: mpmath.mpc(0, 1)
            self.symbols.add(val)
            return lambda e: e[val]
        if val == "(":
            return self.group("(", ")")
        if val == "{":
            return self.group("{", "}")
        if kind == "cmd":
            self.take()
            if val == "\\pi":
                return lambda e: mpmath.pi
            if val == "\\frac":
                a, b = self.group("{", "}"), self.group("{", "}")
                return lambda e: a(e) / b(e)
            if val == "\\binom":
                a, b = self.group("{", "}"), self.group("{", "}")
                return lambda e: _binom(a(e), b(e))
            if val == "\\sqrt":
                if self.peek() and self.peek()[1] == "[":
                    n = self.group("[", "]")
                    x = self.group("{", "}")
                    return lambda e: _root(x(e), n(e))
                x = self.group("{", "}")
                return lambda e: mpmath.sqrt(x(e))
            if val in _FUNCS or val == "\\log":
                return self.function(val)
        raise _Unsupported(val)

    def matrix(self, body: str):
        rows = [r for r in re.split(r"\\\\", body) if r.strip()]
        cells = []
        for r in rows:
            row = []
            for c in r.split("&"):
                sub = _Parser(c)
                row.append(sub.parse())
                self.symbols |= sub.symbols
            cells.append(row)
        if not cells or len({len(r) for r in cells}) != 1:
            raise _Unsupported("ragged matrix")
        return lambda e: mpmath.matrix([[mpmath.mpc(c(e)) for c in row] for row in cells])

    def function(self, name: str):
        power = None
        base = None
        if name == "\\log":
            tok = self.peek()
            if tok is None or tok[1] != "_":
                raise _Unsupported("\\log without a base")  # log10 or ln? conventions differ
            self.take("_")
            base = self.exponent()
        tok = self.peek()
        if tok and tok[1] == "^":
            self.take()
            power = self.exponent()
        tok = self.peek()
        if tok and tok[1] == "(":
            arg = self.group("(", ")")
        elif tok and tok[1] == "{":
            arg = self.group("{", "}")
        elif tok and (tok[0] in ("num", "var") and len(tok[1]) <= 3 or tok[1] == "\\frac"):
            arg = self.primary()
            nxt = self.peek()
            next_is_function = nxt is not None and (nxt[1] in _FUNCS or nxt[1] == "\\log")
            if (self._starts_primary(nxt) and not next_is_function) or (nxt and nxt[1] == "^"):  # ``\sin 2x``
                raise _Unsupported("ambiguous function argument")
        else:
            raise _Unsupported("function argument")
        if base is not None:
            log = _binary(_log_base, arg, base)
            return _binary(_pow, log, power) if power is not None else log
        fn = _FUNCS[name]
        if power is not None:
            return _binary(_pow, _unary(fn, arg), power)
        return _unary(fn, arg)


def _binary(fn: Callable, a: Callable, b: Callable) -> Callable:
    return lambda env: fn(a(env), b(env))


def _unary(fn: Callable, a: Callable) -> Callable:
    return lambda env: fn(a(env))


def _log_base(x, b):
    return mpmath.log(x) / mpmath.log(b)


def _sub(a, b):
    return _add(a, b, -1)


def _is_matrix(v) -> bool:
    return isinstance(v, mpmath.matrix)


def _add(a, b, sign: int = 1):
    if _is_matrix(a) != _is_matrix(b):
        raise _Unsupported("matrix plus scalar")
    if _is_matrix(a) and (a.rows, a.cols) != (b.rows, b.cols):
        raise _Unsupported("matrix shapes")
    return a + b if sign > 0 else a - b


def _mul(a, b):
    if _is_matrix(a) and _is_matrix(b) and a.cols != b.rows:
        raise _Unsupported("matrix shapes")
    return a * b


def _div(a, b):
    if _is_matrix(b):
        raise _Unsupported("division by a matrix")
    if _is_matrix(a):
        return a * (1 / b)
    return a / b


def _pow(a, b):
    if _is_matrix(a) or _is_matrix(b):
        raise _Unsupported("matrix power")
    if abs(b) * mpmath.log10(abs(a) + 2) > _MAX_MAGNITUDE_DIGITS:
        raise _Unsupported("power too large")
    if b == int(mpmath.re(b)) and mpmath.im(b) == 0 and a != 0:
        return mpmath.power(a, int(mpmath.re(b)))
    return mpmath.power(a, b)


def _root(x, n):
    if n != int(mpmath.re(n)) or n <= 0:
        raise _Unsupported("root index")
    n = int(mpmath.re(n))
    if mpmath.im(x) == 0 and mpmath.re(x) < 0:
        # real root or principal root? conventions differ (sympy takes the principal one):
        # the worker decides, so both paths give the same verdict
        raise _Unsupported("root of a negative number")
    return mpmath.root(x, n)


def _factorial(x):
    if mpmath.im(x) != 0 or x != int(mpmath.re(x)) or mpmath.re(x) < 0 or mpmath.re(x) > 1000:
        raise _Unsupported("factorial argument")
    return mpmath.factorial(int(mpmath.re(x)))


def _binom(n, k):
    if any(mpmath.im(v) != 0 or v != int(mpmath.re(v)) for v in (n, k)):
        raise _Unsupported("binomial arguments")
    return mpmath.binomial(int(mpmath.re(n)), int(mpmath.re(k)))


_PROBES: dict[int, list[list]] = {}


def _probes(n: int) -> list[list]:
    if n not in _PROBES:
        rng = random.Random(20240607)
        with mpmath.workdps(30):
            _PROBES[n] = [[mpmath.mpf(rng.uniform(-3.0, 3.0)) for _ in range(12)] for _ in range(n)]
    return _PROBES[n]


_REL_SPLIT_RE = re.compile(r"\\leq|\\geq|<|>|=")


def _compile(text: str):
    p = _Parser(text)
    return p.parse(), p.symbols


def _items(v) -> list:
    return [v[i, j] for i in range(v.rows) for j in range(v.cols)] if _is_matrix(v) else [v]


def _finite(v) -> bool:
    return all(mpmath.isfinite(mpmath.re(x)) and mpmath.isfinite(mpmath.im(x)) for x in _items(v))


def _small(v) -> bool:
    return all(abs(x) <= _MAX_VALUE for x in _items(v))


def _close(x, y, tol) -> bool:
    if _is_matrix(x) or _is_matrix(y):
        if not (_is_matrix(x) and _is_matrix(y)) or (x.rows, x.cols) != (y.rows, y.cols):
            return False
        return all(abs(x[i, j] - y[i, j]) <= tol for i in range(x.rows) for j in range(x.cols))
    return abs(x - y) <= tol


def _values(fns, symbols: set[str], n: int) -> list[list] | None:
    names = sorted(symbols)
    if len(names) > 12:
        return None
    points = [dict(zip(names, pt)) for pt in _probes(n)] if names else [{}]
    out = []
    for f in fns:
        vals = []
        for env in points:
            v = f(env)
            v = v if _is_matrix(v) else mpmath.mpc(v)
            if not (_finite(v) and _small(v)):
                return None
            vals.append(v)
        out.append(vals)
    return out


def _relation(text: str):
    """(kind, lhs - rhs closure, symbols) for one top-level relation, None for a plain expression."""
    parts = _REL_SPLIT_RE.split(text)
    ops = _REL_SPLIT_RE.findall(text)
    if not ops:
        return None
    if len(ops) != 1:
        raise _Unsupported("chained relation")
    (lf, ls), (rf, rs) = _compile(parts[0]), _compile(parts[1])
    op = ops[0]
    if op in (">", "\\geq"):
        return ("lt" if op == ">" else "le"), _binary(_sub, rf, lf), ls | rs
    if op in ("<", "\\leq"):
        return ("lt" if op == "<" else "le"), _binary(_sub, lf, rf), ls | rs
    return "eq", _binary(_sub, lf, rf), ls | rs


def numeric_equal(a: str, b: str, probes: int = 4, tol: float = 1e-20) -> bool | None:
    """True / False when both answers are in the subset and finite at every probe point,
    else None (the caller asks the worker). A constant that divides by zero is undefined
    and equals nothing: False."""
    try:
        with mpmath.workdps(30):
            tolm = mpmath.mpf(tol)
            ra, rb = _relation(a), _relation(b)
            if (ra is None) != (rb is None):
                _compile(a if ra is None else b)  # both read: a relation is not a value
                return False
            if ra is not None:
                return _relations_equal(ra, rb, probes, tolm)
            (fa, sa), (fb, sb) = _compile(a), _compile(b)
            if not (sa or sb):
                for f in (fa, fb):
                    try:
                        if not _finite(_value(f)):
                            return False
                    except ZeroDivisionError:
                        return False
            vals = _values([fa, fb], sa | sb, probes)
            if vals is None:
                return None
            va, vb = vals
            return all(_close(x, y, tolm) for x, y in zip(va, vb))
    except (_Unsupported, ZeroDivisionError, ValueError, OverflowError, TypeError, KeyError, AttributeError):
        return None


def _value(f):
    v = f({})
    return v if _is_matrix(v) else mpmath.mpc(v)


def _relations_equal(ra, rb, probes: int, tolm) -> bool | None:
    (ka, da, sa), (kb, db, sb) = ra, rb
    if ka != kb:
        return False
    vals = _values([da, db], sa | sb, probes)
    if vals is None:
        return None
    va, vb = vals
    if any(_is_matrix(x) for x in va + vb):
        return None
    k = next((x / y for x, y in zip(va, vb) if abs(y) > tolm), None)
    if k is None or abs(k) < tolm:
        return None
    if ka in ("lt", "le") and (abs(mpmath.im(k)) > tolm or mpmath.re(k) < 0):
        return False
    if abs(k) > _MAX_VALUE or abs(k) < 1 / _MAX_VALUE:
        return None
    return all(abs(x - k * y) <= tolm for x, y in zip(va, vb))
