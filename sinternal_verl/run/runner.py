"""The stage runner: one run directory, stages in order, finished ones skipped.

* A stage whose manifest entry says ``done`` is skipped; anything else (never run, killed
  while ``running``, ``failed``, ``invalidated``) runs. The tools behind the stages resume
  on their own where they can (the data pipeline per prompt, verl from its checkpoints).
* ``--from STAGE`` removes that stage's outputs and everything after it, then runs them.
* A finished stage whose settings changed since it ran is *not* redone silently: the run
  says so and names the ``--from`` that would redo it.
"""

from __future__ import annotations

import shutil
import signal
import sys
import time
from pathlib import Path
from typing import Any

from .config import STAGES, RunConfig
from .manifest import Manifest, config_hash, path_hash
from .proc import PeakSampler, StageFailed
from .stages import STAGE_FUNCS, STAGE_SECTIONS, RunContext

#: what ``--from STAGE`` removes for each stage (relative to the run directory)
STAGE_OUTPUT_DIRS: dict[str, tuple[str, ...]] = {
    "toy": ("toy",),
    "teach": ("teach",),
    "verification_data": ("verification_data",),
    "verification_sft": ("verification_sft",),
    "merge": ("merge",),
    "rl_data": ("rl_data",),
    "rl": ("rl",),
    "eval": ("eval",),
    "report": ("report.md",),
}


class RunInterrupted(RuntimeError):
    """SIGTERM reached the runner (its child's process group has been ended)."""


class RunSetupError(ValueError):
    """The run cannot start as asked (``--from`` a stage it does not have, a bad hook)."""


def _section_hash(cfg: RunConfig, stage: str) -> str:
    dump = cfg.model_dump()
    return config_hash({k: dump[k] for k in STAGE_SECTIONS[stage]})


def _clear(run_dir: Path, stages: list[str]) -> None:
    for name in stages:
        for rel in STAGE_OUTPUT_DIRS[name]:
            p = run_dir / rel
            if p.is_dir():
                shutil.rmtree(p)
            elif p.exists():
                p.unlink()
        log = run_dir / "logs" / f"{name}.log"
        if log.exists():
            log.unlink()


def _on_sigterm(signum, frame) -> None:  # noqa: ANN001
    raise RunInterrupted(f"signal {signum}")


def run(
    cfg: RunConfig, *, from_stage: str | None = None, console=None, argv: list[str] | None = None
) -> dict[str, Any]:
    """Run (or resume) ``cfg``'s stages; returns the manifest's data."""
    from rich.console import Console

    console = console or Console(stderr=False)
    run_dir = Path(cfg.run_dir).expanduser().resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    if from_stage is not None and from_stage not in cfg.stages:
        raise RunSetupError(f"--from {from_stage!r}: not one of this run's stages ({', '.join(cfg.stages)})")
    if cfg.hooks.hold_after_stage and cfg.hooks.hold_after_stage not in cfg.stages:
        raise RunSetupError(
            f"hooks.hold_after_stage {cfg.hooks.hold_after_stage!r} is not one of this run's stages"
        )
    needs_policy = {"verification_data", "verification_sft", "rl", "eval"} & set(cfg.stages)
    if needs_policy and not cfg.toy.enabled and not cfg.policy_path:
        raise RunSetupError(
            f"policy_path is required (stages {', '.join(sorted(needs_policy))}) unless toy.enabled=true"
        )
    manifest = Manifest(run_dir)
    manifest.start_invocation(cfg.model_dump(mode="json"), list(argv or sys.argv))
    if from_stage is not None:
        redo = [s for s in STAGES if STAGES.index(s) >= STAGES.index(from_stage)]
        _clear(run_dir, redo)
        manifest.invalidate(redo)
    ctx = RunContext(cfg, run_dir, console)
    previous = signal.signal(signal.SIGTERM, _on_sigterm) if _main_thread() else None
    full_max = int(cfg.full_hash_max_mb * 1024 * 1024)
    t_run = time.monotonic()
    try:
        for i, name in enumerate(cfg.stages, 1):
            header = f"[{i}/{len(cfg.stages)}] {name}"
            h = _section_hash(cfg, name)
            if manifest.is_done(name):
                st = manifest.stage(name)
                note = f"done earlier in {st.get('seconds', 0):.0f} s"
                if st.get("config_hash") not in (None, h):
                    note += (
                        f"; [yellow]its settings changed since: rerun with --from {name} to redo it[/yellow]"
                    )
                console.print(f"[dim]{header}: skipped ({note})[/dim]")
                continue
            console.rule(
                f"[bold]{header}[/bold]  [dim](run {time.monotonic() - t_run:.0f} s)[/dim]", align="left"
            )
            manifest.begin(name, h)
            t0 = time.monotonic()
            try:
                served = ctx.served_requests()
                with PeakSampler() as peak:
                    result = STAGE_FUNCS[name](ctx)
                after = ctx.served_requests()
                served = {k: n - served.get(k, 0) for k, n in after.items() if n > served.get(k, 0)}
                if served:
                    result.summary["served_requests"] = served
            except BaseException as exc:
                msg = str(exc) if not isinstance(exc, KeyboardInterrupt) else "interrupted"
                manifest.fail(name, seconds=time.monotonic() - t0, error=msg[-4000:])
                raise
            seconds = time.monotonic() - t0
            manifest.finish(
                name, seconds=seconds, peak_rss_gb=peak.peak / 1024**3, peak_pss_gb=peak.peak_pss / 1024**3,
                inputs={str(p): path_hash(p, full_max) for p in result.inputs},
                outputs={str(p): path_hash(p, full_max) for p in result.outputs},
                summary=result.summary,
            )  # fmt: skip
            console.print(
                f"[green]{header} done[/green] in {seconds:.1f} s, peak memory {peak.peak_pss / 1024**3:.2f} GB PSS "
                f"({peak.peak / 1024**3:.2f} GB RSS summed)"
            )
            if cfg.hooks.hold_after_stage == name:
                ctx.hold(f"_hold_after_{name}", cfg.hooks.hold_s)
    finally:
        ctx.close()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    manifest.data["wall_s_last_invocation"] = round(time.monotonic() - t_run, 2)
    manifest.save()
    return manifest.data


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


__all__ = ["run", "StageFailed", "RunInterrupted", "RunSetupError"]
