"""Decide whether an extracted answer equals the ground truth.

Order of the checks, cheapest first: normalized strings; choice letters; exact rational
arithmetic for plain numbers (ints, decimals, fractions, scientific: these never reach
sympy); element-wise comparison of sets / tuples / intervals; finally sympy in a worker
process under a time limit (:mod:`.symbolic`).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from fractions import Fraction

from .config import MathRewardConfig
from .normalize import (
    Structure,
    normalize,
    parse_decimal,
    parse_number,
    parse_structure,
    power_log10,
    split_top,
    strip_assignment,
)
from .numeric import numeric_equal
from .relations import is_relation, ratio, to_interval
from .symbolic import get_pool

_CHOICE_PRED_RE = re.compile(r"^\(?([A-Z])(?:\)|\.|:|$)")
_WORD_RE = re.compile(r"[a-z']{2,}")
_INFINITIES = {"\\infty": 1, "+\\infty": 1, "-\\infty": -1, "\\infin": 1, "-\\infin": -1, "oo": 1, "-oo": -1}


@dataclass(frozen=True)
class Verdict:
    correct: bool
    #: a symbolic comparison hit its time limit (its answer counted as not equal)
    timed_out: bool = False
    #: symbolic comparisons made (0 = decided by strings / exact numbers)
    symbolic_calls: int = 0
    #: the symbolic worker failed on this input (counted as not equal)
    error: str | None = None
    pred_norm: str = ""
    gold_norm: str = ""
    #: comparisons decided in-process by the 30-digit evaluator (:mod:`.numeric`)
    numeric_calls: int = 0


_POW_BASE_RE = re.compile(r"(\d+)\^")


def _brace_group(s: str, start: int) -> str | None:
    """The text of the ``{...}`` group opening at ``s[start]`` (nesting respected)."""
    depth = 0
    for i in range(start, len(s)):
        if s[i] == "{":
            depth += 1
        elif s[i] == "}":
            depth -= 1
            if depth == 0:
                return s[start + 1 : i]
    return None


def max_power_digits(s: str) -> float:
    """Decimal digits of the largest integer power written anywhere in ``s`` (0 if none).

    Looks at every ``<int>^{...}`` / ``<int>^<digit>`` inside a larger expression, which
    :func:`power_log10` alone (a whole-string check) does not."""
    worst = 0.0
    for m in _POW_BASE_RE.finditer(s):
        after = m.end()
        if after >= len(s):
            continue
        exp = _brace_group(s, after) if s[after] == "{" else (s[after] if s[after].isdigit() else None)
        if exp is None:
            continue
        lg = power_log10(f"{m.group(1)}^{{{exp}}}")
        if lg is not None and lg > worst:
            worst = lg
    return worst


class _Ctx:
    def __init__(self, cfg: MathRewardConfig):
        self.cfg = cfg
        self.deadline = time.monotonic() + cfg.symbolic_budget_s
        self.timed_out = False
        self.calls = 0
        #: decided in-process by :mod:`.numeric` (no worker round trip)
        self.fast = 0
        self.error: str | None = None


def _numbers_equal(
    a: Fraction, b: Fraction, cfg: MathRewardConfig, a_text: str = "", b_text: str = ""
) -> bool:
    if a == b:
        return True
    if cfg.numeric_rel_tol > 0 and abs(a - b) <= Fraction(cfg.numeric_rel_tol) * max(abs(a), abs(b)):
        return True
    if cfg.numeric_round_digits > 0:
        return _rounds_to(a_text, b, cfg.numeric_round_digits) or _rounds_to(
            b_text, a, cfg.numeric_round_digits
        )
    return False


_PLAIN_DECIMAL_RE = re.compile(r"-?\d*\.(\d+)")


def _rounds_to(decimal_text: str, exact: Fraction, min_digits: int) -> bool:
    """``0.3333`` written for 1/3: the exact value rounded to the decimal's places gives it back,
    and the decimal carries at least ``min_digits`` significant digits."""
    m = _PLAIN_DECIMAL_RE.fullmatch(decimal_text)
    if not m or len(decimal_text.lstrip("-0.").replace(".", "")) < min_digits:
        return False
    places = len(m.group(1))
    scaled = exact * 10**places
    rounded = (scaled.numerator * 2 + scaled.denominator) // (2 * scaled.denominator)  # half up
    return Fraction(rounded, 10**places) == Fraction(decimal_text)


def _symbolic(p: str, g: str, ctx: _Ctx) -> bool:
    cfg = ctx.cfg
    if not cfg.symbolic or len(p) > cfg.symbolic_max_chars or len(g) > cfg.symbolic_max_chars:
        return False
    limit = cfg.symbolic_max_power_digits
    if limit and (max_power_digits(p) > limit or max_power_digits(g) > limit):
        return False
    if cfg.numeric_fast_path:
        fast = numeric_equal(p, g, cfg.symbolic_probes, cfg.symbolic_zero_tol)
        if fast is not None:
            ctx.fast += 1
            return fast
    left = ctx.deadline - time.monotonic()
    if left <= 0:
        ctx.timed_out = True
        return False
    pool = get_pool(
        cfg.symbolic_workers,
        cfg.symbolic_max_memory_mb,
        cfg.symbolic_startup_timeout_s,
        cfg.symbolic_cache_size,
        cfg.symbolic_warmup,
    )
    ctx.calls += 1
    res = pool.compare(
        p,
        g,
        min(cfg.symbolic_timeout_s, left),
        options={"probes": cfg.symbolic_probes, "tol": cfg.symbolic_zero_tol},
    )
    if res.timed_out:
        ctx.timed_out = True
    if res.error and res.error.startswith("worker"):
        ctx.error = res.error
    return res.equal


#: digits separated by a space (``12 34``): not a number and never guessed at by sympy
_DIGIT_GAP_RE = re.compile(r"(?<![_^\d])\d+ \d")


def _equal_atom(p: str, g: str, ctx: _Ctx) -> bool:
    if p == g:
        return True
    cfg = ctx.cfg
    np_, ng = parse_number(p, cfg.numeric_max_exponent), parse_number(g, cfg.numeric_max_exponent)
    if np_ is None and ":" in p:
        np_ = ratio(p, cfg.numeric_max_exponent)
    if ng is None and ":" in g:
        ng = ratio(g, cfg.numeric_max_exponent)
    if np_ is not None and ng is not None:
        return _numbers_equal(np_, ng, cfg, p, g)
    # an integer power too large to build cannot equal a number we could build
    if (np_ is not None and (power_log10(g) or 0) > cfg.numeric_max_exponent) or (
        ng is not None and (power_log10(p) or 0) > cfg.numeric_max_exponent
    ):
        return False
    dp, dg = parse_decimal(p), parse_decimal(g)  # a number too large for the exact path
    if dp is not None and dg is not None:
        return dp == dg
    if p in _INFINITIES or g in _INFINITIES:  # only another spelling of the same infinity
        return _INFINITIES.get(p) == _INFINITIES.get(g) is not None
    if _WORD_RE.fullmatch(p) or _WORD_RE.fullmatch(g):  # words are compared as words
        return False
    if _DIGIT_GAP_RE.search(p) or _DIGIT_GAP_RE.search(g):
        return False
    # a ``:`` that is not a ratio of numbers (``1:00``, ``12:00``: clock times) is compared as
    # written; sympy would read it as a division by zero, and every zoo equals every other
    if ":" in p or ":" in g:
        return False
    return _symbolic(p, g, ctx)


def _covers(xs: tuple, ys: tuple, ctx: _Ctx) -> bool:
    return all(any(_equal_struct(x, y, ctx) for y in ys) for x in xs)


def _match_unordered(ps: tuple, gs: tuple, ctx: _Ctx) -> bool:
    """Equal as sets: every element of each side is on the other side (``2, 2, 3`` is ``3, 2``).
    Distinct-length lists try the cheap one-to-one matching first."""
    if len(ps) == len(gs):
        left = list(gs)
        for p in ps:
            for i, g in enumerate(left):
                if _equal_struct(p, g, ctx):
                    del left[i]
                    break
            else:
                break
        else:
            return True
    return _covers(ps, gs, ctx) and _covers(gs, ps, ctx)


def _as_union(s: Structure) -> Structure | None:
    """A list of intervals (``x<-1 or x>1``) is their union."""
    if s.kind == "union":
        return s
    if s.kind == "set" and s.items and all(i.kind == "ordered" and len(i.items) == 2 for i in s.items):
        return Structure("union", s.items)
    if s.kind == "ordered" and len(s.items) == 2:
        return Structure("union", (s,))
    return None


def _equal_struct(p: Structure, g: Structure, ctx: _Ctx) -> bool:
    if p.kind == "atom" and g.kind == "atom":
        return _equal_atom(p.items[0], g.items[0], ctx)
    # a one-element set and a bare value are the same answer
    if p.kind == "set" and len(p.items) == 1 and g.kind == "atom":
        return _equal_struct(p.items[0], g, ctx)
    if g.kind == "set" and len(g.items) == 1 and p.kind == "atom":
        return _equal_struct(p, g.items[0], ctx)
    if p.kind != g.kind:
        if "union" in (p.kind, g.kind):
            up, ug = _as_union(p), _as_union(g)
            if up is not None and ug is not None:
                return _match_unordered(up.items, ug.items, ctx)
        return False
    if p.kind == "ordered":
        return (
            p.brackets == g.brackets
            and len(p.items) == len(g.items)
            and all(_equal_struct(a, b, ctx) for a, b in zip(p.items, g.items))
        )
    return _match_unordered(p.items, g.items, ctx)


def _equation(s: str) -> bool:
    """One top-level ``=``, no list around it and none inside it (``D=(0,1)`` names a point)."""
    return len(split_top(s, "=")) == 2 and "," not in s and ";" not in s


def _numeric_value(s: str, cfg: MathRewardConfig) -> bool:
    return parse_number(strip_assignment(s), cfg.numeric_max_exponent) is not None


def verify(pred: str, gold: str, cfg: MathRewardConfig | None = None) -> Verdict:
    """Is ``pred`` (a box's content) the same answer as ``gold``?"""
    cfg = cfg or MathRewardConfig()
    p = normalize(pred, cfg.units, cfg.percent_words, cfg.thousands_separators)
    g = normalize(gold, cfg.units, cfg.percent_words, cfg.thousands_separators)
    if p == g:
        return Verdict(True, pred_norm=p, gold_norm=g)
    if len(g) == 1 and "A" <= g <= "Z":  # a multiple-choice letter
        m = _CHOICE_PRED_RE.match(p)
        return Verdict(bool(m) and m.group(1) == g, pred_norm=p, gold_norm=g)
    ctx = _Ctx(cfg)
    if is_relation(p) and is_relation(g):
        ip, ig = to_interval(p), to_interval(g)
        ok = _equal_struct(ip, ig, ctx) if ip is not None and ig is not None else _symbolic(p, g, ctx)
        return Verdict(ok, ctx.timed_out, ctx.calls, ctx.error, p, g, ctx.fast)
    # two equations are the same equation when they have the same solutions (either side
    # arrangement, any nonzero multiple): ``2x+y=3`` answers ``y=3-2x``
    if _equation(p) and _equation(g) and not (_numeric_value(p, cfg) and _numeric_value(g, cfg)):
        if _symbolic(p, g, ctx):
            return Verdict(True, ctx.timed_out, ctx.calls, ctx.error, p, g, ctx.fast)
        if split_top(p, "=")[0] == split_top(g, "=")[0] and not ctx.timed_out and ctx.error is None:
            # same left side (``F_n = A`` vs ``F_n = B``): the equations differ exactly when the
            # right sides do, which was just decided; no second comparison of A and B
            return Verdict(False, ctx.timed_out, ctx.calls, ctx.error, p, g, ctx.fast)
    ok = _equal_struct(parse_structure(p), parse_structure(g), ctx)
    return Verdict(ok, ctx.timed_out, ctx.calls, ctx.error, p, g, ctx.fast)
