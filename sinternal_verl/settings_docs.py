"""The README's settings tables, generated from the settings classes.

Each table sits between ``<!-- settings:NAME -->`` and ``<!-- /settings:NAME -->`` markers;
``python -m sinternal_verl.settings_docs README.md`` rewrites them, and a test fails when the
README and the definitions disagree, so the documentation cannot drift from the code again.
"""

from __future__ import annotations

import argparse
import importlib
import re
import sys
from collections.abc import Callable
from pathlib import Path

from sinternal_verl.settings import settings_table

Rows = list[tuple[str, str, str]]


def _reward_rows() -> Rows:
    from sinternal_verl.rewards.settings import settings_rows

    return settings_rows()


def _class_rows(path: str) -> Callable[[], Rows]:
    def rows() -> Rows:
        module, _, name = path.rpartition(".")
        return settings_table(getattr(importlib.import_module(module), name))

    return rows


#: table name -> rows; every entry point's settings are documented here
TABLES: dict[str, Callable[[], Rows]] = {
    "reward": _reward_rows,
    "pipeline": _class_rows("sinternal_verl.data.config.PipelineConfig"),
    "server": _class_rows("sinternal_verl.server.settings.ServerSettings"),
    "eval": _class_rows("sinternal_verl.eval.config.EvalConfig"),
    "eval_model": _class_rows("sinternal_verl.eval.config.ModelSpec"),
    "eval_benchmark": _class_rows("sinternal_verl.eval.config.BenchmarkSpec"),
    "run": _class_rows("sinternal_verl.run.config.RunConfig"),
}


def render(rows: Rows) -> str:
    lines = ["| key | default | meaning |", "|---|---|---|"]
    for key, default, doc in rows:
        shown = f"`{default}`" if default not in ("", "(required)") else default
        lines.append(f"| `{key}` | {shown} | {_cell(doc)} |")
    return "\n".join(lines)


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _pattern(name: str) -> re.Pattern:
    return re.compile(rf"(<!-- settings:{name} -->\n)(.*?)(<!-- /settings:{name} -->)", re.S)


def update(text: str) -> str:
    """``text`` with every marked table regenerated."""
    for name, rows in TABLES.items():
        text = _pattern(name).sub(lambda m, r=rows: m.group(1) + render(r()) + "\n" + m.group(3), text)
    return text


def stale(text: str) -> list[str]:
    """Names of the marked tables that differ from the definitions (missing markers included)."""
    out = []
    for name, rows in TABLES.items():
        m = _pattern(name).search(text)
        if m is None or m.group(2) != render(rows()) + "\n":
            out.append(name)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument(
        "--check", action="store_true", help="exit 1 if a table is stale instead of rewriting"
    )
    args = parser.parse_args(argv)
    status = 0
    for path in args.files:
        text = path.read_text()
        if args.check:
            bad = [n for n in stale(text) if f"<!-- settings:{n} -->" in text]
            if bad:
                print(f"{path}: stale settings tables: {', '.join(bad)}", file=sys.stderr)
                status = 1
        else:
            path.write_text(update(text))
    return status


if __name__ == "__main__":
    sys.exit(main())
