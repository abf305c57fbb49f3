"""``sinternal-verl eval CONFIG [key=value ...]`` and ``sinternal-verl eval compare RUN... --out DIR``."""

from __future__ import annotations

import argparse
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "args",
        nargs="+",
        metavar="CONFIG [key=value ...] | compare RUN_DIR ...",
        help="an eval YAML and overrides (e.g. output_dir=runs/x), or 'compare' and earlier run folders",
    )
    parser.add_argument(
        "--out", default=None, help="compare: folder for the combined report (required for compare)"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bars (logs, CI)")


def run(args: argparse.Namespace) -> int:
    from ..settings import ConfigError
    from . import compare, evaluate
    from .config import load_eval_config
    from .report import main_table

    if args.args[0] == "compare":
        if not args.out or len(args.args) < 2:
            print(
                "error: usage: sinternal-verl eval compare RUN_DIR [RUN_DIR ...] --out DIR", file=sys.stderr
            )
            return 2
        try:
            merged = compare(args.args[1:], args.out)
        except (FileNotFoundError, ValueError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        print(main_table(merged, ci=True))
        print(f"\nreport: {args.out}/report.md")
        return 0
    config, overrides = args.args[0], args.args[1:]
    if args.no_progress:
        overrides = [*overrides, "progress=false"]
    try:
        cfg = load_eval_config(config, overrides)
        metrics = evaluate(cfg)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(main_table(metrics, ci=True))
    print(f"\nreport: {cfg.out}/report.md")
    return 0
