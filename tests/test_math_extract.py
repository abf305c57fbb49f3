"""Where the answer comes from: the last box of the final answer, never the trace."""

from __future__ import annotations

import pytest

from sinternal_verl.rewards.math import clean_ground_truth, extract_answer
from sinternal_verl.rewards.math.extract import last_boxed, match_brace


@pytest.mark.parametrize(
    ("text", "answer", "reason"),
    [
        ("so \\boxed{5}.", "5", ""),
        ("\\boxed{1} then \\boxed{2}", "2", ""),
        ("\\fbox{7}", "7", ""),
        ("\\boxed{3} and finally \\fbox{4}", "4", ""),
        ("$\\boxed 5$", "5", ""),
        ("\\boxed 12.", "12", ""),
        ("\\boxed{\\frac{\\frac{1}{2}}{3}}", "\\frac{\\frac{1}{2}}{3}", ""),
        ("\\boxed{\\{1,2\\}}", "\\{1,2\\}", ""),  # escaped braces are not structural
        ("\\boxed{\\frac{1}{2", None, "unterminated_box"),
        ("\\boxed{ }", None, "empty_box"),
        ("the answer is 5", None, "no_box"),
        ("\\boxedfoo{5}", None, "no_box"),
    ],
)
def test_last_boxed(text, answer, reason):
    ext = last_boxed(text)
    assert ext.answer == answer
    assert ext.reason == reason


def test_box_in_trace_only_is_no_answer():
    ext = extract_answer("<think>it is \\boxed{5}</think>\nThe answer is 5.")
    assert ext.answer is None and ext.reason == "no_box"


def test_final_box_wins_over_trace_box():
    assert extract_answer("<think>\\boxed{4}</think> so \\boxed{5}").answer == "5"


def test_truncated_trace_has_no_answer_even_with_a_box():
    ext = extract_answer("<think>maybe \\boxed{5} but let me check")
    assert ext.answer is None and ext.reason == "truncated"


def test_custom_think_tags():
    ext = extract_answer("<reason>\\boxed{1}</reason> \\boxed{2}", "<reason>", "</reason>")
    assert ext.answer == "2"


def test_match_brace():
    s = "{a{b}\\}c}d"
    assert match_brace(s, 0) == len(s) - 2
    assert match_brace("{a{b}", 0) == -1


@pytest.mark.parametrize(
    ("gt", "clean"),
    [
        ("\\boxed{12}", "12"),
        ("$12$", "12"),
        ("$$\\frac{1}{2}$$", "\\frac{1}{2}"),
        ("\\(x\\)", "x"),
        ("  7 ", "7"),
        ("$\\boxed{3}$", "3"),
    ],
)
def test_clean_ground_truth(gt, clean):
    assert clean_ground_truth(gt) == clean
