"""Relations read as the sets they describe, and ratios read as numbers.

``-793 < a < 10`` is the interval ``(-793, 10)``, ``5 \\geq x`` is ``x \\leq 5`` is
``(-\\infty, 5]``: a mathematician compares the solution sets, not the spelling. Only a
relation between one variable and constants becomes an interval here (exactly, without
sympy); anything else (``-x > -1``, ``2x+4y-3=0``) is left to the symbolic comparison,
which compares relations as relations (see ``symbolic_worker``).
"""

from __future__ import annotations

import re
from fractions import Fraction

from .normalize import Structure, parse_number, split_top

_OPS = ("\\leq", "\\geq", "<", ">")
_VARIABLE_RE = re.compile(
    r"(?:[A-Za-z]|\\(?:alpha|beta|gamma|theta|lambda|mu|phi|varphi|omega|tau|sigma|rho))"
    r"(?:_\{?[A-Za-z0-9]+\}?)?"
)
#: a side with no letters outside LaTeX commands is a constant (``\\sqrt{2}``, ``-\\infty``)
_COMMANDS_RE = re.compile(r"\\[A-Za-z]+")


def _split_relation(s: str) -> tuple[list[str], list[str]] | None:
    """``a<x\\leq b`` -> (["a", "x", "b"], ["<", "\\leq"]); None without a top-level relation."""
    parts, ops, start, i, depth = [], [], 0, 0, 0
    while i < len(s):
        c = s[i]
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        elif depth == 0:
            for op in _OPS:
                if s.startswith(op, i) and not (op[0] == "\\" and s[i + len(op) : i + len(op) + 1].isalpha()):
                    parts.append(s[start:i])
                    ops.append(op)
                    i += len(op)
                    start = i
                    break
            else:
                i += 1
                continue
            continue
        i += 1
    if not ops:
        return None
    parts.append(s[start:])
    return [x.strip() for x in parts], ops


def is_relation(s: str) -> bool:
    return _split_relation(s) is not None


def _constant(side: str) -> bool:
    return bool(side) and "=" not in side and not re.search(r"[A-Za-z]", _COMMANDS_RE.sub("", side))


def _strict(op: str) -> bool:
    return op in ("<", ">")


def to_interval(s: str) -> Structure | None:
    """The interval a one-variable relation with constant bounds describes, else None."""
    split = _split_relation(s)
    if split is None:
        return None
    parts, ops = split
    if any(not p for p in parts):
        return None
    lo: tuple[str, bool] | None = None
    hi: tuple[str, bool] | None = None
    if len(parts) == 2:
        (a, b), op = parts, ops[0]
        if _VARIABLE_RE.fullmatch(a) and _constant(b):
            bound, var_left = b, True
        elif _VARIABLE_RE.fullmatch(b) and _constant(a):
            bound, var_left = a, False
        else:
            return None
        upper = (op in ("<", "\\leq")) == var_left  # x < b, or b > x
        if upper:
            hi = (bound, _strict(op))
        else:
            lo = (bound, _strict(op))
    elif len(parts) == 3:
        a, x, b = parts
        if not (_VARIABLE_RE.fullmatch(x) and _constant(a) and _constant(b)):
            return None
        up = [op in ("<", "\\leq") for op in ops]
        if up[0] != up[1]:
            return None
        if up[0]:
            lo, hi = (a, _strict(ops[0])), (b, _strict(ops[1]))
        else:
            hi, lo = (a, _strict(ops[0])), (b, _strict(ops[1]))
    else:
        return None
    lo = lo or ("-\\infty", True)
    hi = hi or ("\\infty", True)
    brackets = ("(" if lo[1] else "[") + (")" if hi[1] else "]")
    return Structure("ordered", (Structure("atom", (lo[0],)), Structure("atom", (hi[0],))), brackets)


def ratio(s: str, max_exponent: int = 1000) -> Fraction | None:
    """``3:2`` -> 3/2. A ratio with a zero second term (``1:00``, a clock time) is no
    number at all: None, so it can only equal the same string."""
    parts = split_top(s, ":")
    if len(parts) != 2:
        return None
    a, b = parse_number(parts[0], max_exponent), parse_number(parts[1], max_exponent)
    if a is None or b is None or b == 0:
        return None
    return a / b
