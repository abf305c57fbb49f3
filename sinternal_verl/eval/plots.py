"""Plots a person would rather look at than a table (matplotlib, Agg backend, PNG):

* ``tradeoff.png``: ASR (mean over harmful sets) against over-refusal (mean over benign sets),
  one point per model: the safety / helpfulness trade-off the method moves along;
* ``benchmarks.png``: the main table's columns as grouped bars with 95% intervals;
* ``categories_<bench>.png``: ASR per category (over-refusal for benign-only sets).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .columns import Column, lookup


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _err(rates: list[dict | None]) -> list[list[float]]:
    lo, hi = [], []
    for r in rates:
        v = r.get("value") if r else None
        if v is None or r.get("lo") is None:
            lo.append(0.0)
            hi.append(0.0)
        else:
            lo.append(max(0.0, 100 * (v - r["lo"])))
            hi.append(max(0.0, 100 * (r["hi"] - v)))
    return [lo, hi]


def _val(r: dict | None) -> float:
    return 100 * r["value"] if r and r.get("value") is not None else float("nan")


def tradeoff(metrics: dict[str, Any], path: Path) -> Path:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 4.5))
    for model, res in metrics["results"].items():
        asr = [
            r["harmful"]["asr"]["value"]
            for r in res.values()
            if r.get("harmful") and r["harmful"]["asr"]["value"] is not None
        ]
        orr = [
            r["benign"]["over_refusal"]["value"]
            for r in res.values()
            if r.get("benign") and r["benign"]["over_refusal"]["value"] is not None
        ]
        x = 100 * sum(orr) / len(orr) if orr else float("nan")
        y = 100 * sum(asr) / len(asr) if asr else float("nan")
        ax.scatter([x], [y], s=60)
        ax.annotate(model, (x, y), textcoords="offset points", xytext=(6, 4))
    ax.set_xlabel("over-refusal on benign prompts, % (lower is better)")
    ax.set_ylabel("attack success rate, % (lower is better)")
    ax.set_title("safety vs over-refusal (mean over sets)")
    ax.set_xlim(-5, 105)
    ax.set_ylim(-5, 105)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def benchmark_bars(metrics: dict[str, Any], columns: list[Column], path: Path) -> Path:
    plt = _plt()
    models = list(metrics["results"])
    fig, ax = plt.subplots(figsize=(max(6, 1.4 * len(columns) + 2), 4.5))
    width = 0.8 / max(1, len(models))
    for i, model in enumerate(models):
        rates = [lookup(metrics["results"][model].get(c.bench), c.metric) for c in columns]
        xs = [j + (i - (len(models) - 1) / 2) * width for j in range(len(columns))]
        ax.bar(xs, [_val(r) for r in rates], width, yerr=_err(rates), capsize=3, label=model)
    return _finish(
        plt, fig, ax, [c.title for c in columns], "%", "benchmarks (95% bootstrap intervals)", path
    )


def category_bars(metrics: dict[str, Any], bench: str, path: Path) -> Path | None:
    section, what = "harmful", "ASR"
    per_model = {m: (res.get(bench) or {}) for m, res in metrics["results"].items()}
    if not any((r.get("harmful") or {}).get("per_category") for r in per_model.values()):
        section, what = "benign", "over-refusal"
    cats = sorted({c for r in per_model.values() for c in ((r.get(section) or {}).get("per_category") or {})})
    if not cats:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(max(6, 0.6 * len(cats) * max(1, len(per_model)) + 2), 4.5))
    width = 0.8 / max(1, len(per_model))
    for i, (model, r) in enumerate(per_model.items()):
        pc = (r.get(section) or {}).get("per_category") or {}
        rates = [pc.get(c) for c in cats]
        xs = [j + (i - (len(per_model) - 1) / 2) * width for j in range(len(cats))]
        ax.bar(xs, [_val(x) for x in rates], width, yerr=_err(rates), capsize=3, label=model)
    return _finish(plt, fig, ax, cats, f"{what}, %", f"{bench}: {what} per category", path)


def _finish(plt, fig, ax, labels: list[str], ylabel: str, title: str, path: Path) -> Path:
    """The grouped-bar charts' common axes, legend and file."""
    ax.set_xticks(range(len(labels)))
    ax.set_xticklabels(labels, rotation=25, ha="right", fontsize=8)
    ax.set_ylabel(ylabel)
    ax.set_ylim(0, 105)
    ax.set_title(title)
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_plots(metrics: dict[str, Any], columns: list[Column], out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = [
        tradeoff(metrics, out / "tradeoff.png"),
        benchmark_bars(metrics, columns, out / "benchmarks.png"),
    ]
    for bench in metrics["benchmarks"]:
        safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in bench)
        p = category_bars(metrics, bench, out / f"categories_{safe}.png")
        if p is not None:
            paths.append(p)
    return paths
