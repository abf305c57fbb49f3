"""Find the answer a response commits to: the last ``\\boxed{}`` / ``\\fbox{}`` of its
final answer (after ``</think>``).

Strict on purpose: a box that only appears inside the reasoning trace is not an answer,
and a trace that never closed (cut off at the length limit) has no answer at all. A box
whose braces never close is not an answer either (the text was truncated mid-box).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sinternal_verl.trajectory import split_reasoning

_BOX_RE = re.compile(r"\\(?:boxed|fbox)(?![A-Za-z])")


@dataclass(frozen=True)
class Extraction:
    #: the box content, or None when there is no usable answer
    answer: str | None
    #: why there is no answer: "" | "truncated" | "no_box" | "unterminated_box" | "empty_box"
    reason: str = ""


def match_brace(text: str, open_at: int) -> int:
    """Index of the ``}`` closing the ``{`` at ``open_at`` (escaped ``\\{`` ``\\}`` are
    not structural), or -1 when it never closes."""
    depth = 0
    i = open_at
    n = len(text)
    while i < n:
        c = text[i]
        if c == "\\":
            i += 2
            continue
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    return -1


def _box_content(text: str, start: int, end_of_cmd: int) -> tuple[str | None, str]:
    i = end_of_cmd
    while i < len(text) and text[i] in " \t":
        i += 1
    if i < len(text) and text[i] == "{":
        close = match_brace(text, i)
        if close < 0:
            return None, "unterminated_box"
        inner = text[i + 1 : close].strip()
        return (inner, "") if inner else (None, "empty_box")
    # ``\boxed 5``: one token up to whitespace or ``$``
    m = re.match(r"\s*([^\s$]+)", text[end_of_cmd:])
    if not m or end_of_cmd == i:  # ``\boxed5`` is not a box command
        return None, "no_box"
    return m.group(1).rstrip(".,"), ""


def last_boxed(text: str) -> Extraction:
    """Content of the last ``\\boxed``/``\\fbox`` in ``text``."""
    matches = list(_BOX_RE.finditer(text))
    if not matches:
        return Extraction(None, "no_box")
    m = matches[-1]
    answer, reason = _box_content(text, m.start(), m.end())
    return Extraction(answer, reason)


def extract_answer(response: str, think_open: str = "<think>", think_close: str = "</think>") -> Extraction:
    """The answer of a model response: last box of the final answer (not the trace)."""
    split = split_reasoning(response, think_open, think_close)
    if split.truncated:
        return Extraction(None, "truncated")
    return last_boxed(split.answer)


_MATH_DELIMS = (("$$", "$$"), ("\\[", "\\]"), ("\\(", "\\)"), ("$", "$"))


def all_boxed(text: str) -> list[str]:
    """Contents of every complete ``\\boxed``/``\\fbox`` in ``text``, in order."""
    out = []
    for m in _BOX_RE.finditer(text):
        answer, _ = _box_content(text, m.start(), m.end())
        if answer is not None:
            out.append(answer)
    return out


def clean_ground_truth(gt: str) -> str:
    """A dataset answer may itself be boxed or wrapped in ``$``: reduce it to its content.
    A ground truth with several boxes (``\\boxed{1}\\boxed{2}``) means all of them: ``1,2``
    (a response, by contrast, is held to its last box)."""
    s = str(gt).strip()
    if _BOX_RE.search(s):
        boxes = all_boxed(s)
        nested = len(boxes) > 1 and any(_BOX_RE.search(b) for b in boxes)
        if boxes:
            s = boxes[-1] if len(boxes) == 1 or nested else ",".join(boxes)
    for left, right in _MATH_DELIMS:
        if s.startswith(left) and s.endswith(right) and len(s) >= len(left) + len(right):
            s = s[len(left) : len(s) - len(right)].strip()
            break
    return s
