"""Normalization rules, exact numbers and answer structure."""

from __future__ import annotations

from fractions import Fraction

import pytest

from sinternal_verl.rewards.math.config import DEFAULT_UNITS
from sinternal_verl.rewards.math.normalize import (
    normalize,
    parse_decimal,
    parse_number,
    parse_structure,
    split_top,
    strip_assignment,
)


@pytest.mark.parametrize(
    ("raw", "norm"),
    [
        ("\\dfrac{1}{2}", "\\frac{1}{2}"),
        ("\\frac12", "\\frac{1}{2}"),
        ("\\frac1{72}", "\\frac{1}{72}"),
        ("\\sqrt3", "\\sqrt{3}"),
        ("\\left( 1, 2 \\right)", "(1,2)"),
        ("\\left\\{ 1 \\right\\}", "\\{1\\}"),
        ("30^\\circ", "30"),
        ("30^{\\circ}", "30"),
        ("25\\%", "25"),
        ("\\$1,000", "1000"),
        ("1{,}000", "1000"),
        ("1\\,000", "1000"),
        ("10\\text{ cm}", "10"),
        ("10 \\mbox{ cm}^2", "10"),
        ("12 inches", "12"),
        ("\\text{Monday}", "monday"),
        ("\\textbf{(C)}", "C"),
        ("3\\!0", "30"),
        ("5.", "5"),
        ("+5", "5"),
        ("\\log_2 8", "\\log_2 8"),
        ("\\sin x", "\\sin x"),
        ("x^{2}", "x^2"),
        ("1 \\text{ and } 2", "1,2"),
        ("2m", "2m"),  # no space: a product with a variable, not a unit
    ],
)
def test_normalize(raw, norm):
    assert normalize(raw, DEFAULT_UNITS) == norm


@pytest.mark.parametrize(
    ("s", "value"),
    [
        ("42", Fraction(42)),
        ("-7", Fraction(-7)),
        (".5", Fraction(1, 2)),
        ("3.50", Fraction(7, 2)),
        ("1.5e3", Fraction(1500)),
        ("1.5\\times10^{3}", Fraction(1500)),
        ("2\\cdot10^{-2}", Fraction(1, 50)),
        ("10^{6}", Fraction(10**6)),
        ("\\frac{3}{4}", Fraction(3, 4)),
        ("-\\frac{3}{4}", Fraction(-3, 4)),
        ("\\frac{-3}{4}", Fraction(-3, 4)),
        ("3/4", Fraction(3, 4)),
        ("2\\frac{1}{2}", Fraction(5, 2)),
        ("\\frac{0.5}{2}", Fraction(1, 4)),
    ],
)
def test_parse_number(s, value):
    assert parse_number(s) == value


@pytest.mark.parametrize(
    "s", ["x", "\\sqrt{2}", "\\frac{1}{0}", "1e999999999", "2\\frac{3}{2}", "", "1,2", "\\pi"]
)
def test_parse_number_refuses(s):
    assert parse_number(s) is None


def test_huge_exponent_compares_exactly_without_building_the_number():
    assert parse_decimal("1e999999999") == parse_decimal("10e999999998")
    assert parse_decimal("1e999999999") != parse_decimal("1e999999998")
    assert parse_number("1e999999999", max_exponent=10) is None


def test_split_top_respects_all_brackets():
    assert split_top("(1,2),\\{3,4\\},[5,6)", ",") == ["(1,2)", "\\{3,4\\}", "[5,6)"]
    assert split_top("a\\cupb", "\\cup") == ["a", "b"]


@pytest.mark.parametrize(
    ("s", "out"),
    [
        ("x=5", "5"),
        ("a_1=3", "3"),
        ("f(2)=9", "9"),
        ("x=2+3=5", "5"),
        ("x\\in[1,2]", "[1,2]"),
        ("x^2+y^2=1", "x^2+y^2=1"),
        ("5", "5"),
    ],
)
def test_strip_assignment(s, out):
    assert strip_assignment(s) == out


def test_structures():
    s = parse_structure("\\{1,2\\}")
    assert s.kind == "set" and [i.items[0] for i in s.items] == ["1", "2"]
    s = parse_structure("(1,2]")
    assert s.kind == "ordered" and s.brackets == "(]"
    s = parse_structure("(-\\infty,-1)\\cup(1,\\infty)")
    assert s.kind == "union" and len(s.items) == 2 and all(i.kind == "ordered" for i in s.items)
    s = parse_structure("x=1,x=2")
    assert s.kind == "set" and [i.items[0] for i in s.items] == ["1", "2"]
    assert parse_structure("(5)") == parse_structure("5")
    assert parse_structure("(x+1)(x-1)").kind == "atom"
    s = parse_structure("3\\pm2")
    assert s.kind == "set" and sorted(i.items[0] for i in s.items) == ["3+2", "3-2"]


def test_integer_powers_are_exact_or_refused_by_size():
    from sinternal_verl.rewards.math.normalize import power_log10

    assert parse_number("2^{10}") == 1024 and parse_number("-2^{3}") == -8
    assert parse_number("2^{10000}", max_exponent=1000) is None
    assert power_log10("9^{9^{9^9}}") == float("inf")
    assert 3010 < power_log10("2^{10000}") < 3011
    assert power_log10("1^{9^{9^9}}") is None and power_log10("x^2") is None
