"""``sinternal-verl`` command line.

Each sub-command lives in its own module exposing ``add_arguments(parser)`` and
``run(args) -> int``; this file only maps names to modules, so ``sinternal-verl --help``
stays fast and a broken optional piece cannot break the others.
"""

from __future__ import annotations

import argparse
import importlib
import sys

#: name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "run": (
        "sinternal_verl.run.cli",
        "the whole method as resumable stages in one run directory (make demo: the CPU preset)",
    ),
    "demo-score": (
        "sinternal_verl.demo",
        "score the shipped example trajectories through the real reward path (no GPU, no downloads)",
    ),
    "doctor": (
        "sinternal_verl.doctor",
        "show what is registered with verl, installed versions, and whether the guard answers",
    ),
    "serve": (
        "sinternal_verl.server.cli",
        "run the standalone reward server (HTTP, OpenRLHF/TRL compatible)",
    ),
    "build-verification-data": (
        "sinternal_verl.data.cli",
        "run the SInternal verification-data pipeline from a config",
    ),
    "eval": (
        "sinternal_verl.eval.cli",
        "evaluate models (ASR, over-refusal, verification F1, pass@k); 'eval compare' joins runs",
    ),
    "prepare-data": (
        "sinternal_verl.data.rl_mix",
        "build the RL training set: safety prompts mixed with math problems, verl parquet",
    ),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="sinternal-verl", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    argv = sys.argv[1:] if argv is None else argv
    wanted = next((a for a in argv if not a.startswith("-")), None)
    for name, (module, help_) in COMMANDS.items():
        p = sub.add_parser(name, help=help_, description=help_)
        if name == wanted:  # import only the module that will run
            importlib.import_module(module).add_arguments(p)
    args, extra = parser.parse_known_args(argv)
    # argparse gives a positional list only the words before the first option, so
    # ``run CONFIG a=b --from rl c=d`` (the order the docs write) would reject ``c=d``.
    # Words after an option are more overrides; anything else is still an error.
    if (
        extra
        and isinstance(getattr(args, "overrides", None), list)
        and not any(e.startswith("-") for e in extra)
    ):
        args.overrides += extra
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if not args.command:
        parser.print_help()
        return 2
    return int(importlib.import_module(COMMANDS[args.command][0]).run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
