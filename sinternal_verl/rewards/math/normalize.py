"""Turn a boxed answer into a canonical string, an exact number, or a structure
(set / tuple / interval / union) of those.

The rules are the ones a careful grader applies without thinking: ``\\dfrac`` is
``\\frac``, ``\\left(`` is ``(``, units, degrees, percent signs, ``\\text{}`` wrappers,
thousands separators, spacing and a trailing period do not matter, ``x = 5`` answers
``5``, ``(A)`` answers ``A``. Written from the answer conventions of MATH / AIME / DAPO
data, not copied from any grader.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import MAX_EMAX, MIN_EMIN, Context, Decimal, InvalidOperation
from fractions import Fraction

from .extract import match_brace

# --- string normalization --------------------------------------------------------------

_TEXT_CMDS = (
    "text",
    "textbf",
    "textit",
    "textrm",
    "textup",
    "textnormal",
    "textsf",
    "mbox",
    "mathrm",
    "mathbf",
    "mathit",
    "mathsf",
    "mathtt",
    "rm",
    "bf",
    "operatorname",
    "boxed",
    "fbox",
    "hbox",
)
_TEXT_CMD_RE = re.compile(r"\\(" + "|".join(_TEXT_CMDS) + r")\s*\{")
_UNIT_TEXT_RE = re.compile(
    r"\\(?:text|textbf|textit|textsf|mbox|mathrm|mathbf|textrm|textup|rm|textnormal)\s*"
    r"\{\s*([A-Za-z][A-Za-z .]*)\}\s*(\^\{?[23]\}?)?$"
)
_SPACING = (
    "\\displaystyle",
    "\\textstyle",
    "\\qquad",
    "\\quad",
    "\\,",
    "\\;",
    "\\:",
    "\\ ",
    "~",
    "\\limits",
    "\\nolimits",
)
_LEFT_RIGHT_RE = re.compile(
    r"\\(?:left|right|bigl|bigr|Bigl|Bigr|biggl|biggr|big|Big|bigg|Bigg)(?![A-Za-z])\s*(\.)?"
)
_DEGREE_RE = re.compile(r"\^\s*\{\s*\\circ\s*\}|\^\s*\\circ|\\circ|°|\\degree(?![A-Za-z])")
_PERCENT_RE = re.compile(r"\\%|%|\\text\{\s*percent\s*\}")
_SQRT_SHORT_RE = re.compile(r"\\sqrt\s*([0-9A-Za-z])")
_FRAC_SHORT_RE = re.compile(r"\\frac\s*([0-9A-Za-z])\s*([0-9A-Za-z])")
_FRAC_HALF_SHORT_RE = re.compile(r"\\frac\s*([0-9A-Za-z])\s*\{")
_THOUSANDS_RE = re.compile(r"-?\d{1,3}(?:,\d{3})+(?:\.\d+)?")
#: ``12 345`` (groups written with spaces): one number only when every group has 3 digits
_SPACE_GROUPS_RE = re.compile(r"(?<![\d.,])\d{1,3}(?: \d{3})+(?![\d,])")
_LATEX_THOUSANDS_RE = re.compile(r"(?<=\d),\s*\\!\s*(?=\d{3}(?!\d))")
_KEEP_SPACE_RE = re.compile(r"(\\[A-Za-z]+|_[A-Za-z0-9])\s+(?=[A-Za-z0-9])")
_SINGLE_BRACE_SCRIPT_RE = re.compile(r"([\^_])\{([A-Za-z0-9])\}")
_CHOICE_RE = re.compile(r"^\(([A-Z])\)$")
_RELATION_SPELLINGS = (
    (re.compile(r">="), r"\\geq "),
    (re.compile(r"<="), r"\\leq "),
    (re.compile(r"!="), r"\\neq "),
    (re.compile(r"≥|\\geqslant(?![A-Za-z])|\\ge(?![A-Za-z])"), r"\\geq "),
    (re.compile(r"≤|\\leqslant(?![A-Za-z])|\\le(?![A-Za-z])"), r"\\leq "),
    (re.compile(r"≠|\\ne(?![A-Za-z])"), r"\\neq "),
    (re.compile(r"\\lt(?![A-Za-z])"), "<"),
    (re.compile(r"\\gt(?![A-Za-z])"), ">"),
)
_MATRIX_RE = re.compile(r"\[?\s*\\begin\{array\}\{[^{}]*\}(.*?)\\end\{array\}\s*\]?", re.DOTALL)
_OR_BETWEEN_RE = re.compile(r"(?<=[)\]}])\s*(?:or|and)\s*(?=[(\[{\\])|\\(?:lor|vee)(?![A-Za-z])")
_WORD_LIST_RE = re.compile(r"\\text\s*\{\s*(?:and|or)\s*\}|,?\s+(?:and|or)\s+")


def _unwrap_text_commands(s: str) -> str:
    """``\\text{abc}`` -> ``abc`` (brace-matched, innermost content kept)."""
    for _ in range(50):  # bounded: each pass removes one wrapper
        m = _TEXT_CMD_RE.search(s)
        if not m:
            break
        open_at = m.end() - 1
        close = match_brace(s, open_at)
        if close < 0:
            break
        s = s[: m.start()] + s[open_at + 1 : close] + s[close + 1 :]
    return s


def _drop_units(s: str, units: Iterable[str]) -> str:
    """Drop a trailing unit: ``\\text{ cm}`` after a math part, or ``5 cm`` (space-separated)."""
    for _ in range(3):
        m = _UNIT_TEXT_RE.search(s)
        if m and s[: m.start()].strip() and re.search(r"[\d}\)]\s*$", s[: m.start()]):
            s = s[: m.start()].rstrip()
            continue
        break
    words = sorted(units, key=len, reverse=True)
    if words:
        pat = r"(?<=[\d}\)])\s+(?:" + "|".join(re.escape(w) for w in words) + r")\.?(?:\^\{?[23]\}?)?$"
        s = re.sub(pat, "", s)
    return s


def _drop_percent_words(s: str, words: Iterable[str]) -> str:
    """``28 percent`` / ``28 pct`` / ``28\\text{ percentage}`` -> ``28`` (the sign itself is dropped too)."""
    words = sorted(words, key=len, reverse=True)
    if not words:
        return s
    alt = "|".join(re.escape(w) for w in words)
    return re.sub(r"(?<=[\d}])\s*(?:\\text(?:bf|rm|normal)?\s*\{\s*)?(?:" + alt + r")\s*\}?\s*\.?$", "", s)


def _matrix(m: re.Match) -> str:
    return "\\begin{pmatrix}" + m.group(1) + "\\end{pmatrix}"


def normalize(
    answer: str,
    units: Iterable[str] = (),
    percent_words: Iterable[str] = ("percentage", "percent", "pct"),
    thousands: bool = True,
) -> str:
    """Canonical string form of one answer (the whole answer, structure included)."""
    s = str(answer).strip()
    s = s.replace("\\$", "").replace("$", "").replace("\\euro", "")
    s = re.sub(r"[€£¥]|\\pounds(?![A-Za-z])", "", s)  # currency signs, as the dollar sign
    # sentence punctuation inside the box (``\\frac{1}{3},`` ``5 \\text{ cm}.``), never an ellipsis
    s = re.sub(r"(?<![.,])[.,]\s*$", "", s).strip()
    s = s.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac").replace("\\cfrac", "\\frac")
    s = s.replace("\\langle", "(").replace("\\rangle", ")")
    s = s.replace("\\lbrace", "\\{").replace("\\rbrace", "\\}")
    s = re.sub(r"\\begin\{[bB]matrix\}", r"\\begin{pmatrix}", s)
    s = re.sub(r"\\end\{[bB]matrix\}", r"\\end{pmatrix}", s)
    s = _LEFT_RIGHT_RE.sub("", s)
    s = _MATRIX_RE.sub(_matrix, s)
    s = _DEGREE_RE.sub("", s)
    s = _PERCENT_RE.sub("", s)
    s = _drop_percent_words(s, percent_words)
    if thousands:
        s = re.sub(r"\{\s*,\s*\}", "", s)
        s = _LATEX_THOUSANDS_RE.sub(",", s)
    s = re.sub(r"\s*\\!\s*", "", s)  # a negative thin space glues (``3\\!0``), it never separates
    s = s.replace("\\\\", "\x01")  # a matrix row break is not the spacing command ``\\ ``
    for sp in _SPACING:
        s = s.replace(sp, " ")
    s = s.replace("\x01", "\\\\")
    for pat, rep in _RELATION_SPELLINGS:
        s = pat.sub(rep, s)
    s = _drop_units(s, units)
    s = _OR_BETWEEN_RE.sub(",", s)
    s = (
        _WORD_LIST_RE.sub(",", s)
        if re.search(r"[\d}]", s)
        else re.sub(r"\\text\s*\{\s*(?:and|or)\s*\}", ",", s)
    )
    s = _unwrap_text_commands(s)
    s = _SQRT_SHORT_RE.sub(r"\\sqrt{\1}", s)
    s = _FRAC_SHORT_RE.sub(r"\\frac{\1}{\2}", s)
    s = _FRAC_HALF_SHORT_RE.sub(r"\\frac{\1}{", s)
    s = s.replace("\\infinity", "\\infty").replace("∞", "\\infty")
    s = re.sub(r"\s+", " ", s).strip()
    # ``32, 349`` is a list of two numbers; ``32,349`` and ``32 349`` are one number
    list_comma = re.search(r",\s", s) is not None
    if thousands:
        s = _SPACE_GROUPS_RE.sub(lambda m: m.group(0).replace(" ", ""), s)
    # any other space between two digits separates them: never glue ``12 34`` into 1234
    s = re.sub(r"(?<![_^\d])(\d+) (?=\d)", "\\1\x00", s)
    # keep the one space that separates tokens (``\\log_2 8``, ``\\sin x``), drop the rest
    s = _KEEP_SPACE_RE.sub("\\1\x00", s)
    s = re.sub(r"\s+", "", s).replace("\x00", " ")
    s = _SINGLE_BRACE_SCRIPT_RE.sub(r"\1\2", s)
    s = re.sub(r"(?<!\.)\.$", "", s).rstrip("\\")  # a trailing period (and a dangling ``\\`` of ``\\.``)
    if thousands and not list_comma and _THOUSANDS_RE.fullmatch(s):
        s = s.replace(",", "")
    s = s.removeprefix("+")
    if len(s) >= 2 and s[0] == "{" and match_brace(s, 0) == len(s) - 1:
        inner = s[1:-1]  # ``{2,3,5}`` written with plain braces is a set; ``{x}`` is just x
        s = f"\\{{{inner}\\}}" if len(split_top(inner, ",")) > 1 else inner
    m = _CHOICE_RE.match(s)
    if m:
        s = m.group(1)
    if re.fullmatch(r"[A-Za-z']{2,}", s):  # a word: yes/No/Monday
        s = s.lower()
    return s


#: what may stand left of ``=`` as the *name* of the answer: ``x``, ``a_1``, ``f(2)``,
#: ``(p,q)``, ``|AB|``, ``A:B``, ``S_{MBCN}:S``, ``\\angle ABC``, ``AB``
_LABEL_DECOR_RE = re.compile(
    r"_\{[^{}]*\}|_[A-Za-z0-9]|\^\{-1\}|\\(?:angle|measuredangle|overline|overrightarrow|vec|"
    r"widehat|hat|bar|triangle|mathbf|mathrm|operatorname)(?![A-Za-z])|[{}']"
)
_LABEL_RE = re.compile(r"(?:[A-Za-z|(),:\s]|\\[A-Za-z]+|(?<=[A-Za-z])\([^()]*\))+")


def is_label(lhs: str) -> bool:
    """Is ``lhs`` the name of a value rather than an expression (``2x+4y``, ``x^2``)?"""
    rest = _LABEL_DECOR_RE.sub("", lhs.strip())
    return bool(_LABEL_RE.fullmatch(rest)) and re.search(r"[A-Za-z|]", rest) is not None


def strip_assignment(item: str) -> str:
    """``x=5`` -> ``5``; ``x=2+3=5`` -> ``5``; ``(p,q)=(3,2)``, ``|AB|=1``, ``f(x)=...``,
    ``x\\in``, ``x\\approx 11`` too. An equation whose left side is an expression
    (``x^2+y^2=1``, ``2x+4y-3=0``) is kept whole."""
    if "\\approx" in item:
        head, _, tail = item.partition("\\approx")
        if "=" in head:
            item = head
        elif is_label(head):
            return tail
        else:
            return head
    m = re.match(r"^(.+?)\\in(?![A-Za-z])(.*)$", item)
    if m and "=" not in m.group(1) and is_label(m.group(1)):
        return m.group(2)
    parts = split_top(item, "=")
    if len(parts) >= 2 and is_label(parts[0]) and parts[-1]:
        return parts[-1]
    return item


# --- exact numbers --------------------------------------------------------------------

_NUM = r"(?:\d+(?:\.\d*)?|\.\d+)"
_DEC_RE = re.compile(rf"([+-]?{_NUM})(?:[eE]([+-]?\d+))?")
_SCI_TEX_RE = re.compile(rf"([+-]?{_NUM})(?:\\times|\\cdot|\*|x)10\^(?:\{{([+-]?\d+)\}}|([+-]?\d))")
_POW10_RE = re.compile(r"([+-]?)10\^(?:\{([+-]?\d+)\}|([+-]?\d))")
_FRAC_RE = re.compile(rf"([+-]?)\\frac\{{([+-]?{_NUM})\}}\{{([+-]?{_NUM})\}}")
_SLASH_RE = re.compile(rf"([+-]?{_NUM})/([+-]?{_NUM})")
_MIXED_RE = re.compile(r"([+-]?)(\d+)\\frac\{(\d+)\}\{(\d+)\}")


def _dec(text: str, exp: str | None, max_exp: int) -> Fraction | None:
    e = int(exp) if exp else 0
    if abs(e) > max_exp:
        return None
    try:
        return Fraction(text) * (Fraction(10) ** e)
    except (ValueError, ZeroDivisionError):
        return None


_INT_POW_RE = re.compile(r"([+-]?\d+)\^(?:\{(.+)\}|(\d))")


def power_log10(s: str, depth: int = 0) -> float | None:
    """log10 of the magnitude of an integer power tower (``9^{9^{9^9}}``), without building
    it; None when ``s`` is not one (or its base is 0 / +-1). ``inf`` for absurd towers."""
    if depth > 10 or len(s) > 200:
        return None
    m = _INT_POW_RE.fullmatch(s)
    if not m:
        return None
    base = abs(int(m.group(1)))
    if base <= 1:
        return None
    exp_s = m.group(2) if m.group(2) is not None else m.group(3)
    if re.fullmatch(r"\d{1,300}", exp_s):
        exp = float(int(exp_s))
    else:
        inner = power_log10(exp_s, depth + 1)
        if inner is None:
            return None
        exp = float("inf") if inner > 300 else 10.0**inner
    return exp * math.log10(base)


def _int_power(s: str, max_exponent: int) -> Fraction | None:
    """``2^{10}`` -> 1024 exactly, for results up to 10**max_exponent (no sympy)."""
    m = _INT_POW_RE.fullmatch(s)
    if not m:
        return None
    lg = power_log10(s)
    if lg is None or lg > max_exponent:
        return None
    exp_s = m.group(2) if m.group(2) is not None else m.group(3)
    exp = parse_number(exp_s, max_exponent)
    if exp is None or exp.denominator != 1:
        return None
    return Fraction(int(m.group(1))) ** int(exp)


def parse_number(s: str, max_exponent: int = 1000) -> Fraction | None:
    """Exact value of a plain number (int, decimal, scientific, ``a/b``, ``\\frac{a}{b}``,
    mixed number ``2\\frac{1}{2}``), or None when ``s`` is not one. Large exponents are
    refused (returns None) so that ``1e999999999`` never builds a huge integer."""
    if not s or len(s) > 200:
        return None
    m = _DEC_RE.fullmatch(s)
    if m:
        return _dec(m.group(1), m.group(2), max_exponent)
    m = _SCI_TEX_RE.fullmatch(s)
    if m:
        return _dec(m.group(1), m.group(2) or m.group(3), max_exponent)
    m = _POW10_RE.fullmatch(s)
    if m:
        v = _dec("1", m.group(2) or m.group(3), max_exponent)
        return None if v is None else (-v if m.group(1) == "-" else v)
    m = _FRAC_RE.fullmatch(s) or _SLASH_RE.fullmatch(s)
    if m:
        sign = -1 if (m.re is _FRAC_RE and m.group(1) == "-") else 1
        num, den = (m.group(2), m.group(3)) if m.re is _FRAC_RE else (m.group(1), m.group(2))
        a, b = _dec(num, None, max_exponent), _dec(den, None, max_exponent)
        if a is None or b is None or b == 0:
            return None
        return sign * a / b
    m = _MIXED_RE.fullmatch(s)
    if m and int(m.group(3)) < int(m.group(4)):  # a proper fraction after an integer: 2 1/2
        v = int(m.group(2)) + Fraction(int(m.group(3)), int(m.group(4)))
        return -v if m.group(1) == "-" else v
    if "^" in s:
        return _int_power(s, max_exponent)
    return None


def parse_decimal(s: str) -> Decimal | None:
    """Exact value of a decimal / scientific number of any exponent (``1e999999999``):
    Decimal compares exactly without expanding the power, where Fraction would build it."""
    m = _DEC_RE.fullmatch(s) or _SCI_TEX_RE.fullmatch(s)
    if not m or len(s) > 200:
        return None
    exp = m.group(2) if m.re is _DEC_RE else (m.group(2) or m.group(3))
    try:
        return Decimal(m.group(1)).scaleb(int(exp or 0), _WIDE)
    except (InvalidOperation, ValueError):
        return None


_WIDE = Context(prec=400, Emax=MAX_EMAX, Emin=MIN_EMIN)


# --- structure ------------------------------------------------------------------------

_OPENERS = "([{"
_CLOSERS = ")]}"


def split_top(s: str, sep: str) -> list[str]:
    """Split on ``sep`` where no bracket of any kind (``\\{`` included) is open."""
    out, depth, start, i, n, k = [], 0, 0, 0, len(s), len(sep)
    while i < n:
        if depth == 0 and s.startswith(sep, i):
            out.append(s[start:i])
            i += k
            start = i
            continue
        c = s[i]
        if c == "\\":
            nxt = s[i + 1] if i + 1 < n else ""
            if nxt in ("{", "}"):
                depth += 1 if nxt == "{" else -1
            i += 1 if nxt.isalpha() else 2
            continue
        if c in _OPENERS:
            depth += 1
        elif c in _CLOSERS:
            depth -= 1
        i += 1
    out.append(s[start:])
    return out


def _wraps_whole(s: str, open_len: int, close_len: int) -> bool:
    """True when the bracket opening ``s`` is the one closing it (``(1,2)`` yes, ``(1)(2)`` no)."""
    depth = 0
    i, n = 0, len(s)
    while i < n:
        c = s[i]
        if c == "\\" and i + 1 < n and s[i + 1] in "{}":
            depth += 1 if s[i + 1] == "{" else -1
            i += 2
        else:
            if c in _OPENERS:
                depth += 1
            elif c in _CLOSERS:
                depth -= 1
            i += 1
        if depth == 0 and i < n:
            return False
    return depth == 0


@dataclass(frozen=True)
class Structure:
    """``atom`` (items = (text,)), ``set`` (unordered: ``\\{..\\}`` or a bare list),
    ``ordered`` (tuple / interval, ``brackets`` like ``"[)"``) or ``union`` (of intervals)."""

    kind: str
    items: tuple
    brackets: str = ""


def _items(inner: str) -> list[str]:
    """Top-level items of a list: split on commas, or on semicolons when there are none
    (``(0;0;0)``, ``x=1; y=2``)."""
    items = split_top(inner, ",")
    if len(items) == 1 and ";" in inner:
        items = split_top(inner, ";")
    return [x for x in items if x != ""] if len(items) > 1 else items


def parse_structure(s: str, depth: int = 0) -> Structure:
    if depth > 20:
        return Structure("atom", (s,))
    parts = split_top(s, "\\cup")
    if len(parts) > 1:
        return Structure("union", tuple(parse_structure(p, depth + 1) for p in parts))
    if s.startswith("\\{") and s.endswith("\\}") and _wraps_whole(s, 2, 2):
        inner = s[2:-2]
        items = _items(inner) if inner else []
        return Structure("set", tuple(parse_structure(strip_assignment(x), depth + 1) for x in items))
    if len(s) >= 2 and s[0] in "([" and s[-1] in ")]" and _wraps_whole(s, 1, 1):
        inner = s[1:-1]
        items = _items(inner)
        if len(items) > 1:
            return Structure(
                "ordered", tuple(parse_structure(strip_assignment(x), depth + 1) for x in items), s[0] + s[-1]
            )
        if s[0] == "(" and s[-1] == ")":
            return parse_structure(inner, depth + 1)
    items = _items(s)
    if len(items) > 1:
        return Structure("set", tuple(parse_structure(strip_assignment(x), depth + 1) for x in items))
    stripped = strip_assignment(s)
    if stripped != s:
        return parse_structure(stripped, depth + 1)
    pm = split_top(s, "\\pm")
    if len(pm) == 2:  # ``a \pm b`` is the answer pair a+b, a-b
        a, b = pm[0].strip(), pm[1].strip()
        plus, minus = (f"{a}+{b}", f"{a}-{b}") if a else (b, f"-{b}")
        return Structure("set", (Structure("atom", (plus,)), Structure("atom", (minus,))))
    from .relations import to_interval  # relations builds on this module

    interval = to_interval(s)
    if interval is not None:
        return interval
    return Structure("atom", (s,))
