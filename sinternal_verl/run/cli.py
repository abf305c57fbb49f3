"""``sinternal-verl run CONFIG [key=value ...] [--from STAGE]``."""

from __future__ import annotations

import argparse
import sys

from .config import STAGES


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", help="run config YAML (recipes/run/cpu_demo.yaml, recipes/run/gpu_paper.yaml)")
    p.add_argument(
        "overrides", nargs="*", metavar="key=value", help="config overrides, e.g. rl.steps=4 run_dir=runs/x"
    )
    p.add_argument(
        "--from",
        dest="from_stage",
        choices=STAGES,
        metavar="STAGE",
        help=f"redo this stage and every later one ({', '.join(STAGES)})",
    )


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from ..settings import ConfigError, load_yaml
    from .checks import check_sections
    from .config import RunConfig
    from .proc import StageFailed
    from .report import last_screen
    from .runner import RunInterrupted, RunSetupError
    from .runner import run as run_stages

    console = Console()
    try:
        cfg = load_yaml(RunConfig, args.config, args.overrides)
        check_sections(cfg)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        data = run_stages(cfg, from_stage=args.from_stage, console=console, argv=sys.argv)
    except RunSetupError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (KeyboardInterrupt, RunInterrupted):
        console.print(
            f"[yellow]interrupted[/yellow]: rerun the same command to resume (run dir {cfg.run_dir})"
        )
        return 130
    except Exception as exc:  # noqa: BLE001 - every stage failure ends here, with its cause and the way on
        what = "a child process failed" if isinstance(exc, StageFailed) else f"{type(exc).__name__}"
        console.print(f"[red]stage failed[/red] ({what})")
        print(str(exc), file=sys.stderr)
        console.print(
            f"Fix the cause and rerun the same command: it resumes at the failed stage (run dir {cfg.run_dir})."
        )
        return 1
    from pathlib import Path

    last_screen(console, data, Path(cfg.run_dir).expanduser().resolve())
    return 0
