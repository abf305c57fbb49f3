"""``build_guard(config) -> Guard``: the one place that turns configuration into a guard.

The offline lexical judge is only ever returned for ``kind="lexical"``, asked for
explicitly; a missing URL for a model guard is an error (raised by :class:`GuardConfig`),
never a quiet fallback to the baseline. Asking for ``lexical`` while guard URLs are
configured is allowed (e.g. a baseline run on a cluster that exports
``SINTERNAL_GUARD_URLS``) but logged as a warning, so it is never silent.
"""

from __future__ import annotations

import logging
from typing import Any, Mapping

from .config import GuardConfig
from .types import Guard

log = logging.getLogger(__name__)


def build_guard(config: GuardConfig | Mapping[str, Any] | None = None) -> Guard:
    """A ready-to-use guard. ``config`` may be a :class:`GuardConfig` or a flat mapping
    for :meth:`GuardConfig.from_mapping` (env vars fill the gaps)."""
    if not isinstance(config, GuardConfig):
        config = GuardConfig.from_mapping(config)
    if config.kind == "lexical":
        from .lexical import LexicalJudge

        if config.urls:
            log.warning(
                "guard kind 'lexical' (offline keyword baseline) chosen although guard URLs are configured (%s); "
                "the URLs are ignored",
                ", ".join(config.urls),
            )
        return LexicalJudge.from_config(config)
    from .client import OpenAIGuardClient

    return OpenAIGuardClient(config)
