"""Which numbers the main table shows, and how to find them in a benchmark's metrics.

A column is ``BENCH:METRIC`` (``strongreject:asr``, ``xstest:compliance``,
``aime2024:pass@16``). The default lays the table out like the paper's: ASR on each harmful
set, XSTest compliance, the StrongREJECT score, verification F1, MATH pass@1, AIME pass@k.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

#: metric -> (path in a benchmark's metrics, label, higher is better)
METRICS: dict[str, tuple[tuple[str, ...], str, bool]] = {
    "asr": (("harmful", "asr"), "ASR", False),
    "harmful_no_answer": (("harmful", "no_answer"), "no answer (harmful)", False),
    "over_refusal": (("benign", "over_refusal"), "over-refusal", False),
    "full_refusal": (("benign", "full_refusal"), "full refusal", False),
    "partial_refusal": (("benign", "partial_refusal"), "partial refusal", False),
    "compliance": (("benign", "compliance"), "compliance", True),
    "strongreject": (("strongreject", "score"), "StrongREJECT score", False),
    "f1": (("verification", "f1"), "verification F1", True),
    "precision": (("verification", "precision"), "verification precision", True),
    "recall": (("verification", "recall"), "verification recall", True),
    "pass@1": (("math", "pass@1"), "pass@1", True),
    "mean@n": (("math", "mean@n"), "mean@n", True),
}


@dataclass(frozen=True)
class Column:
    bench: str
    metric: str
    label: str
    higher_is_better: bool

    @property
    def title(self) -> str:
        return f"{self.label} {'↑' if self.higher_is_better else '↓'}"


def lookup(bench_result: dict[str, Any] | None, metric: str) -> dict[str, Any] | None:
    """The rate dict (value, lo, hi, num, den) of ``metric`` or None when not measured."""
    if not bench_result:
        return None
    if metric.startswith("pass@") and metric != "pass@1":
        return (bench_result.get("math") or {}).get("pass@k", {}).get(metric[5:])
    if metric not in METRICS:
        return None
    node: Any = bench_result
    for part in METRICS[metric][0]:
        node = node.get(part) if isinstance(node, dict) else None
    return node if isinstance(node, dict) and "value" in node else None


def parse_column(text: str) -> Column:
    bench, sep, metric = text.partition(":")
    if not sep or not bench or not metric:
        raise ValueError(f"report column {text!r} is not BENCH:METRIC")
    if metric in METRICS:
        _, label, hib = METRICS[metric]
    elif metric.startswith("pass@") and metric[5:].isdigit():
        label, hib = metric, True
    else:
        raise ValueError(
            f"report column {text!r}: unknown metric {metric!r} (known: {', '.join(METRICS)}, pass@K)"
        )
    return Column(bench, metric, f"{bench} {label}", hib)


def default_columns(metrics: dict[str, Any]) -> list[Column]:
    cols: list[Column] = []
    for bench, info in metrics["benchmarks"].items():
        per_model = [metrics["results"][m].get(bench) or {} for m in metrics["results"]]

        def has(key: str, per_model: list[dict] = per_model) -> bool:
            return any(key in r for r in per_model)

        xs = info.get("registry") == "xstest"
        if has("harmful") and not xs:
            cols.append(Column(bench, "asr", f"{bench} ASR", False))
        if has("strongreject"):
            cols.append(Column(bench, "strongreject", f"{bench} score", False))
        if has("benign") and (xs or not has("harmful")):
            cols.append(Column(bench, "compliance", f"{bench} compliance", True))
        if has("verification"):
            cols.append(Column(bench, "f1", f"{bench} F1", True))
        if has("math"):
            cols.append(Column(bench, "pass@1", f"{bench} pass@1", True))
            ks = sorted(
                {int(k) for r in per_model for k in (r.get("math") or {}).get("pass@k", {}) if int(k) > 1}
            )
            if ks:
                cols.append(Column(bench, f"pass@{ks[-1]}", f"{bench} pass@{ks[-1]}", True))
    return cols


def columns_for(metrics: dict[str, Any]) -> list[Column]:
    wanted = metrics.get("columns") or []
    return [parse_column(c) for c in wanted] if wanted else default_columns(metrics)
