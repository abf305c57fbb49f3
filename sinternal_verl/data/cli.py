"""``sinternal-verl build-verification-data <config.yaml>``: run or resume the pipeline."""

from __future__ import annotations

import argparse
import json
import sys

from .pipeline import STAGES


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", help="pipeline YAML (see examples/verification_pipeline/config.yaml)")
    parser.add_argument("overrides", nargs="*", help="dotted.key=value overrides, e.g. sample.params.n=4")
    parser.add_argument("--until", choices=STAGES, default="build", help="stop after this stage")
    parser.add_argument(
        "--redo", choices=STAGES, default=None, help="clear this stage and all later ones first"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bars (logs, CI)")


def run(args: argparse.Namespace) -> int:
    from .config import PipelineConfig
    from .pipeline import run_pipeline

    try:
        cfg = PipelineConfig.from_yaml(args.config, args.overrides)
    except (ValueError, FileNotFoundError, TypeError) as exc:
        print(f"error: bad config {args.config}: {exc}", file=sys.stderr)
        return 2
    if args.no_progress:
        cfg = cfg.model_copy(update={"progress": False})
    result = run_pipeline(cfg, until=args.until, redo=args.redo)
    _print_summary(result.summary)
    if args.until == "build":
        print(f"train: {result.train_path}\nval:   {result.val_path}")
    return 0


def _print_summary(summary: dict) -> None:
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:  # pragma: no cover
        print(json.dumps(summary, indent=2))
        return
    table = Table(title="verification data: counts per stage")
    table.add_column("stage")
    table.add_column("counts")
    table.add_column("seconds", justify="right")
    for name, st in summary.get("stages", {}).items():
        shown = {k: v for k, v in st.items() if k != "seconds_last_run"}
        table.add_row(name, json.dumps(shown, sort_keys=True), str(st.get("seconds_last_run", "")))
    Console(stderr=False).print(table)
