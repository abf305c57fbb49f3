"""The run's report (``<run_dir>/report.md``) and the last screen.

Per stage: status, time, peak memory and the number that says whether it did its job
(teaching loss, verification data counts, verification-SFT loss, GRPO reward per step), then
the evaluation's base / SFT / RL table as the harness computed it (its own report.md and
plots sit in ``eval/``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .manifest import Manifest


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.3f}"
    if isinstance(v, list) and len(v) > 6:
        return f"{_fmt(v[0])} -> {_fmt(v[-1])} ({len(v)} values)"
    if isinstance(v, list):
        return " -> ".join(_fmt(x) for x in v)
    if isinstance(v, dict):
        return ", ".join(f"{k} {_fmt(x)}" for k, x in v.items())
    return str(v)


def headline(name: str, summary: dict) -> str:
    """One line per stage: the number that moved (or not)."""
    if name in ("teach", "verification_sft") and "loss_first" in summary:
        return f"loss {summary['loss_first']:.3f} -> {summary['loss_last']:.3f} over {summary['steps']} steps"
    if name == "verification_data":
        return f"{summary.get('sft_rows')} SFT rows; labels {_fmt(summary.get('labels') or {})}; verdicts {_fmt(summary.get('by_verdict') or {})}"
    if name == "rl" and "critic/score/mean" in summary:
        s = summary["critic/score/mean"]
        k = max(1, min(3, len(s) // 3))
        first, last = sum(s[:k]) / k, sum(s[-k:]) / k
        line = f"rollout reward {first:.3f} (first {k} steps) -> {last:.3f} (last {k}) over {len(s)} steps"
        val = summary.get("validation") or {}
        moved = [f"{src} {pts[0][1]:.3f} -> {pts[-1][1]:.3f}" for src, pts in val.items() if len(pts) > 1]
        return line + ("; greedy validation " + ", ".join(moved) if moved else "")
    if name == "rl_data":
        return f"train {summary.get('train')} (safety {summary.get('train_safety')}, math {summary.get('train_math')}), val {summary.get('val')}"
    if name == "eval":
        return "see the table below"
    if name == "merge":
        return f"merged ({summary.get('merged')})"
    return ""


def eval_table(result: dict) -> list[str]:
    """A markdown table from the harness's numbers, when they are ``{model: {metric: x}}``
    (under ``models`` or at the top level); otherwise the flat numbers."""
    models = result.get("models") if isinstance(result.get("models"), dict) else result
    rows = {k: v for k, v in models.items() if isinstance(v, dict)} if isinstance(models, dict) else {}

    def walk(prefix: str, value: Any, flat: dict[str, float]) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(f"{prefix}{k}/" if prefix or k else k, v, flat)
        elif isinstance(value, (int, float)):
            flat[prefix.rstrip("/")] = float(value)

    flat_rows: dict[str, dict[str, float]] = {}
    for model, metrics in rows.items():
        flat: dict[str, float] = {}
        walk("", metrics, flat)
        if flat:
            flat_rows[model] = flat
    if not flat_rows:
        return ["```", json.dumps(result, indent=2)[:4000], "```"]
    cols = sorted({c for r in flat_rows.values() for c in r})
    lines = ["| model | " + " | ".join(cols) + " |", "|---|" + "---|" * len(cols)]
    for model, r in flat_rows.items():
        lines.append(f"| {model} | " + " | ".join(f"{r[c]:.3f}" if c in r else "" for c in cols) + " |")
    return lines


def harness_table(eval_dir: Path) -> list[str]:
    """The first markdown table of the harness's own ``report.md`` (its main table), else []."""
    report = eval_dir / "report.md"
    if not report.exists():
        return []
    lines, table = report.read_text().splitlines(), []
    for line in lines:
        if line.startswith("|"):
            table.append(line)
        elif table:
            break
    return table


def write_report(ctx) -> Path:
    manifest = Manifest(ctx.run_dir)
    stages = manifest.data["stages"]
    lines = [f"# sinternal-verl run: {ctx.run_dir.name}", ""]
    if ctx.cfg.toy.enabled:
        lines += [
            "Toy world (CPU preset): a tiny policy taught a few dozen toy answers; the numbers show the",
            "method's machinery working end to end on real trainers, not a safer language model.",
            "",
        ]
    lines += [
        "| stage | status | runs | seconds | peak RSS GB | what it moved |",
        "|---|---|---|---|---|---|",
    ]
    total = 0.0
    for name in ctx.cfg.stages:
        st = stages.get(name, {})
        if name == "report":
            continue
        total += float(st.get("seconds") or 0)
        lines.append(
            f"| {name} | {st.get('status', 'pending')} | {st.get('runs', 0)} | {st.get('seconds', '')} | "
            f"{st.get('peak_rss_gb', '')} | {headline(name, st.get('summary') or {})} |"
        )
    lines += ["", f"Stage time, summed: {total:.0f} s.", ""]
    ev = stages.get("eval", {})
    if ev.get("status") == "done":
        lines += ["## Evaluation (base / SFT / RL)", ""]
        table = harness_table(ctx.dir("eval"))
        if not table:
            result_path = ctx.dir("eval", "run_result.json")
            table = eval_table(json.loads(result_path.read_text()) if result_path.exists() else {})
        lines += table
        lines += ["", f"The harness's own report and plots: `{ctx.dir('eval')}`.", ""]
    rl = (stages.get("rl") or {}).get("summary") or {}
    plot = _reward_plot(ctx, rl.get("critic/score/mean"))
    if plot:
        lines += ["## GRPO reward per step", "", f"![reward]({plot.name})", ""]
    if rl.get("critic/score/mean"):
        lines += [
            "Reward (mean over the step's rollouts): "
            + ", ".join(f"{v:.3f}" for v in rl["critic/score/mean"]),
            "",
        ]
    lines += ["Manifest (config, versions, input/output hashes): `manifest.json`; logs: `logs/`.", ""]
    path = ctx.dir("report.md")
    path.write_text("\n".join(lines))
    return path


def _reward_plot(ctx, values: list[float] | None) -> Path | None:
    if not values:
        return None
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, ax = plt.subplots(figsize=(5, 3))
    ax.plot(range(1, len(values) + 1), values, marker="o")
    ax.set_xlabel("GRPO step")
    ax.set_ylabel("mean reward")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path = ctx.dir("rl_reward.png")
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def last_screen(console, data: dict, run_dir: Path) -> None:
    """The numbers of the run and where the report is."""
    from rich.table import Table

    table = Table(title="sinternal-verl run", show_lines=False)
    for col in ("stage", "status", "runs", "s", "peak GB", "what it moved"):
        table.add_column(col, overflow="fold")
    for name, st in data["stages"].items():
        table.add_row(
            name, st.get("status", ""), str(st.get("runs", 0)), f"{float(st.get('seconds') or 0):.0f}",
            f"{float(st.get('peak_rss_gb') or 0):.2f}", headline(name, st.get("summary") or {}),
        )  # fmt: skip
    console.print(table)
    table = (
        harness_table(run_dir / "eval") if (data["stages"].get("eval") or {}).get("status") == "done" else []
    )
    if table:
        from rich.markdown import Markdown

        console.print(
            Markdown("**Evaluation, held-out prompts** (the harness's main table)\n\n" + "\n".join(table))
        )
    report = run_dir / "report.md"
    if report.exists():
        console.print(f"Report: [bold]{report}[/bold]")
