"""verl plugin entry point (``[project.entry-points."verl.plugins"] sinternal``).

verl imports this module in every process that imports verl: the driver, the TaskRunner,
every RewardLoopWorker on every node, torchrun children. That is how our registrations
reach them without file paths. verl swallows plugin import errors at DEBUG level, so we
log failures at WARNING ourselves and keep them for ``sinternal-verl doctor``.
"""

from __future__ import annotations

import logging
import os

logger = logging.getLogger("sinternal_verl.plugin")

#: what loaded and what failed, for ``sinternal-verl doctor``
LOADED: list[str] = []
FAILED: dict[str, str] = {}


def _load(name: str, module: str) -> None:
    import importlib

    try:
        importlib.import_module(module)
        LOADED.append(name)
    except Exception as exc:  # noqa: BLE001 - reported, then re-raised
        FAILED[name] = f"{type(exc).__name__}: {exc}"
        logger.warning("sinternal-verl plugin: %s (%s) failed to load: %s", name, module, exc)
        raise


# the platform first: verl resolves its platform lazily, and it must be registered before any
# code asks for it, even if a later registration fails
if os.environ.get("VERL_PLATFORM", "").strip().lower() == "cpu":
    _load("platform:cpu", "sinternal_verl.cpu.platform")
_load("reward_manager:sinternal", "sinternal_verl.managers.sinternal")
_load("reward_manager:sinternal_overlong", "sinternal_verl.managers.overlong")
