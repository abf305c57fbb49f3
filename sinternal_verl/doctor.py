"""``sinternal-verl doctor``: what verl sees of us, installed versions, and the guard.

verl loads ``verl.plugins`` entry points and swallows their import errors at DEBUG level;
a broken install shows up much later as "Unknown reward manager: sinternal" inside a Ray
worker. This command makes the same load in the foreground and says what happened.
Exit code 0 when everything checked is fine, 1 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.metadata as md
import os
import platform
import sys


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--guard-url",
        action="append",
        default=None,
        help="guard server to probe (default: SINTERNAL_GUARD_URLS)",
    )
    p.add_argument("--guard-kind", default=None)
    p.add_argument("--guard-model", default=None)
    p.add_argument("--no-guard", action="store_true", help="skip the guard readiness probe")


def _version(dist: str) -> str:
    try:
        return md.version(dist)
    except md.PackageNotFoundError:
        return "not installed"


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    problems: list[str] = []

    versions = Table(title="installed", show_header=False)
    for name in ("sinternal-verl", "verl", "torch", "ray", "transformers", "vllm"):
        versions.add_row(name, _version(name))
    versions.add_row("python", platform.python_version())
    console.print(versions)

    from sinternal_verl.compat import check_verl_version

    try:
        check_verl_version()
    except Exception as exc:  # noqa: BLE001 - shown to the user
        problems.append(str(exc))

    eps = [ep for ep in md.entry_points(group="verl.plugins")]
    ours = [ep for ep in eps if ep.value.startswith("sinternal_verl")]
    if not ours:
        problems.append(
            "no 'verl.plugins' entry point for sinternal_verl: reinstall the package (pip install -e .)"
        )
    try:
        import verl  # noqa: F401  (loads the entry points, as every verl process does)
        from verl.experimental.reward_loop.reward_manager.registry import REWARD_MANAGER

        import sinternal_verl.plugin as plugin
    except Exception as exc:  # noqa: BLE001
        problems.append(f"importing verl with our plugin failed: {type(exc).__name__}: {exc}")
        plugin, REWARD_MANAGER = None, {}

    reg = Table(title="registered with verl")
    reg.add_column("what")
    reg.add_column("status")
    for ep in eps:
        reg.add_row(f"entry point {ep.name} -> {ep.value}", "found")
    if plugin is not None:
        for name in plugin.LOADED:
            reg.add_row(name, "[green]loaded[/]")
        for name, err in plugin.FAILED.items():
            reg.add_row(name, f"[red]failed: {err}[/]")
            problems.append(f"plugin part {name} failed: {err}")
    has_manager = "sinternal" in REWARD_MANAGER
    reg.add_row("reward manager 'sinternal'", "[green]registered[/]" if has_manager else "[red]missing[/]")
    if not has_manager:
        problems.append("reward manager 'sinternal' is not registered in verl's reward-loop registry")
    reg.add_row("VERL_PLATFORM", os.environ.get("VERL_PLATFORM", "(unset: verl picks cuda/npu)"))
    console.print(reg)

    if not args.no_guard:
        problems += _probe_guard(args, console)

    if problems:
        console.print("[bold red]problems:[/]")
        for p in problems:
            console.print(f"  - {p}")
        return 1
    console.print("[bold green]all checks passed[/]")
    return 0


def _probe_guard(args: argparse.Namespace, console) -> list[str]:
    from sinternal_verl.guards import build_guard
    from sinternal_verl.guards.config import GuardConfig

    try:
        config = GuardConfig.from_mapping(
            {"urls": args.guard_url, "kind": args.guard_kind, "model": args.guard_model}
        )
        config.require_urls()
    except ValueError as exc:
        console.print(f"guard: not configured ({exc})")
        return []
    guard = build_guard(config)

    async def probe():
        try:
            return await guard.check_ready()
        finally:
            await guard.aclose()

    report = asyncio.run(probe())
    console.print(f"guard kind={config.kind} model={config.model_name}")
    for url, status in report.detail.items():
        console.print(f"  {url}: {status}")
    return [] if report.ready else [f"guard not ready: {report.detail}"]


if __name__ == "__main__":
    ns = argparse.ArgumentParser()
    add_arguments(ns)
    sys.exit(run(ns.parse_args()))
