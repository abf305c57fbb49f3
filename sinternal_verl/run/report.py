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
    """One line per stage: the number that moved (or not), and the toy servers it reached."""
    line = _headline(name, summary)
    served = summary.get("served_requests")
    if served:
        line += "; over HTTP: " + ", ".join(f"toy {k} {n} requests" for k, n in served.items())
    return line


def _headline(name: str, summary: dict) -> str:
    if name in ("teach", "verification_sft") and "loss_first" in summary:
        return f"loss {summary['loss_first']:.3f} -> {summary['loss_last']:.3f} over {summary['steps']} steps"
    if name == "verification_data":
        return (
            f"{summary.get('sft_rows')} SFT rows; labels {_fmt(summary.get('labels') or {})}; verdicts "
            f"{_fmt(summary.get('by_verdict') or {})}; examples by mode {_fmt(summary.get('by_mode') or {})} "
            f"(expert: {summary.get('expert')})"
        )
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


#: benchmark kind -> (the harness's metric, which direction is better)
HEADLINE_METRICS: dict[str, tuple[str, str]] = {
    "harmful": ("asr", "lower"),
    "benign": ("compliance", "higher"),
    "verification": ("f1", "higher"),
    "math": ("pass@1", "higher"),
}
#: which stage is judged by which kinds: verification SFT by the verdicts it learnt to write,
#: RL by the rewards it was given (and math retention)
STAGE_TARGETS: tuple[tuple[str, str, str, tuple[str, ...]], ...] = (
    ("verification SFT", "base", "sft", ("verification", "harmful", "benign", "math")),
    ("RL", "sft", "rl", ("harmful", "benign", "math", "verification")),
)


def moved(before: dict, after: dict, better: str) -> str:
    """``before``/``after`` are the harness's ``{value, lo, hi}`` (95% bootstrap interval).
    A move counts only when the intervals do not overlap."""
    if after["lo"] > before["hi"]:
        word = "up"
    elif after["hi"] < before["lo"]:
        word = "down"
    else:
        return "no clear move (95% intervals overlap)"
    good = (word == "up") == (better == "higher")
    return f"moved {word} ({'better' if good else 'worse'})"


def stage_moves(metrics: dict) -> list[str]:
    """Markdown lines: for each trained stage, each headline number before -> after and whether
    it moved beyond the bootstrap noise."""
    results = metrics.get("results") or {}
    lines = []
    for stage, a, b, kinds in STAGE_TARGETS:
        if a not in results or b not in results:
            continue
        for kind in kinds:
            metric, better = HEADLINE_METRICS[kind]
            for bench, by_kind in results[b].items():
                after = ((by_kind or {}).get(kind) or {}).get(metric)
                before = (((results[a].get(bench) or {}).get(kind)) or {}).get(metric)
                if not (
                    isinstance(after, dict) and isinstance(before, dict) and "lo" in after and "lo" in before
                ):
                    continue
                lines.append(
                    f"| {stage} | {bench} {metric} ({better} is better) | {100 * before['value']:.1f} "
                    f"[{100 * before['lo']:.1f}, {100 * before['hi']:.1f}] | {100 * after['value']:.1f} "
                    f"[{100 * after['lo']:.1f}, {100 * after['hi']:.1f}] | {moved(before, after, better)} |"
                )
    if not lines:
        return []
    return [
        "| stage | number | before [95% CI] | after [95% CI] | moved? |",
        "|---|---|---|---|---|",
        *lines,
    ]


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
        "| stage | status | runs | seconds | peak PSS GB | peak RSS GB | what it moved |",
        "|---|---|---|---|---|---|---|",
    ]
    total = 0.0
    for name in ctx.cfg.stages:
        st = stages.get(name, {})
        if name == "report":
            continue
        total += float(st.get("seconds") or 0)
        lines.append(
            f"| {name} | {st.get('status', 'pending')} | {st.get('runs', 0)} | {st.get('seconds', '')} | "
            f"{st.get('peak_pss_gb', '')} | {st.get('peak_rss_gb', '')} | {headline(name, st.get('summary') or {})} |"
        )
    lines += [
        "",
        f"Stage time, summed: {total:.0f} s. Memory is the peak over the stage of the sum over its whole "
        "process tree (torchrun children, Ray workers): PSS splits shared pages between the processes "
        "that map them (what the machine gives the run); the RSS sum counts them once per process.",
        "",
    ]
    ev = stages.get("eval", {})
    if ev.get("status") == "done":
        lines += ["## Evaluation (base / SFT / RL)", ""]
        table = harness_table(ctx.dir("eval"))
        if not table:
            result_path = ctx.dir("eval", "run_result.json")
            table = eval_table(json.loads(result_path.read_text()) if result_path.exists() else {})
        lines += table
        lines += ["", f"The harness's own report and plots: `{ctx.dir('eval')}`.", ""]
        metrics_path = ctx.dir("eval", "metrics.json")
        moves = stage_moves(json.loads(metrics_path.read_text())) if metrics_path.exists() else []
        if moves:
            lines += [
                "## Did each stage move its number?",
                "",
                "Verification SFT is judged by the verdicts it learnt to write (verification F1), RL by the "
                "rewards it was given (ASR on harmful prompts, compliance on benign look-alikes) and math "
                "retention; each is also shown for the other stage. A move counts when the 95% bootstrap "
                "intervals do not overlap.",
                "",
                *moves,
                "",
            ]
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
    for col in ("stage", "status", "runs", "s", "peak GB (PSS)", "what it moved"):
        table.add_column(col, overflow="fold")
    for name, st in data["stages"].items():
        table.add_row(
            name, st.get("status", ""), str(st.get("runs", 0)), f"{float(st.get('seconds') or 0):.0f}",
            f"{float(st.get('peak_pss_gb') or st.get('peak_rss_gb') or 0):.2f}", headline(name, st.get("summary") or {}),
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
