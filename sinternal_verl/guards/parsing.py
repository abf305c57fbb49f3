"""Label-based field reading shared by the guard parsers.

Guards answer with ``Label: value`` lines. Parsers seen in the wild read them by line
position and broke when Qwen3Guard added a ``Refusal:`` line, or on stray whitespace. Here
each field is found by its label: case, spacing, markdown emphasis, extra lines, reordered
lines and even lost newlines (``Safety: Unsafe Categories: Violent``) are tolerated.
"""

from __future__ import annotations

import re
from functools import lru_cache

from .types import GuardVerdict

_EMPHASIS = "*_`#>"


@lru_cache(maxsize=32)
def _label_splitter(labels: tuple[str, ...]) -> re.Pattern[str]:
    alts = "|".join(
        re.escape(label).replace(r"\ ", r"\s+") for label in sorted(labels, key=len, reverse=True)
    )
    # a known label, optionally wrapped in emphasis, followed by a colon
    return re.compile(rf"(?i)[{re.escape(_EMPHASIS)}]*\b({alts})\b[{re.escape(_EMPHASIS)}]*\s*:")


def read_fields(text: str, labels: tuple[str, ...]) -> dict[str, str]:
    """Return ``{label: value}`` for each of ``labels`` (lower case) found in ``text``.

    The first occurrence of a label wins (guards state a field once; later repeats are
    echoes). A value runs until the end of its line or the next known label.
    """
    splitter = _label_splitter(labels)
    matches = list(splitter.finditer(text))
    out: dict[str, str] = {}
    for k, m in enumerate(matches):
        label = re.sub(r"\s+", " ", m.group(1).lower())
        if label in out:
            continue
        end = matches[k + 1].start() if k + 1 < len(matches) else len(text)
        value = text[m.end() : end]
        nl = value.find("\n")
        if nl >= 0 and value[:nl].strip():
            value = value[:nl]
        out[label] = value.strip().strip(_EMPHASIS).strip()
    return out


def first_word(value: str) -> str:
    """``"Unsafe."`` / ``"**yes**"`` / ``" N/A "`` -> ``"unsafe"`` / ``"yes"`` / ``"n/a"``."""
    m = re.match(r"\s*[*_`\"']*([A-Za-z/]+)", value)
    return m.group(1).lower() if m else ""


def unparsed(raw: str, reason: str, source: str = "") -> GuardVerdict:
    """A verdict that says the guard's text could not be read: never a silent "safe"."""
    return GuardVerdict(label=None, parse_ok=False, raw=raw, source=source, extra={"parse_error": reason})
