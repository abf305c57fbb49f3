"""``build_guard(config) -> Guard``: the one place that turns guard settings into a guard.

Used by the verl reward manager, the reward server, the verification-data pipeline and the
evaluation harness, for every backend:

* ``kind=lexical``: the offline judge, only ever when asked for explicitly; a missing URL
  for a model guard is an error, never a quiet fallback to the baseline. Asking for
  ``lexical`` while guard URLs are configured is allowed (e.g. a baseline run on a cluster
  that exports ``SINTERNAL_GUARD_URLS``) but logged as a warning, so it is never silent;
* ``backend=http``: the OpenAI-compatible client over ``urls``;
* ``backend=ray_pool``: attach by name to guard replicas running as Ray actors. Attaching
  makes blocking Ray calls: build such a guard outside the event loop that scores.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from .config import GuardConfig
from .registry import get_kind
from .types import Guard

log = logging.getLogger(__name__)


def build_guard(config: GuardConfig | Mapping[str, Any] | None = None) -> Guard:
    """A ready-to-use guard. ``config`` may be a :class:`GuardConfig` or a mapping for
    :meth:`GuardConfig.from_mapping` (keys with or without ``guard_``; env vars fill the gaps)."""
    if not isinstance(config, GuardConfig):
        config = GuardConfig.from_mapping(config)
    kind = get_kind(config.kind)
    if kind.local:
        if config.urls:
            log.warning(
                "guard kind %r (a local judge) chosen although guard URLs are configured (%s); the URLs are ignored",
                config.kind,
                ", ".join(config.urls),
            )
        return kind.build_local(config)
    if config.backend == "ray_pool":
        from .ray_pool import RayGuardPool

        return RayGuardPool.connect(config.pool_name, config.pool_namespace)
    from .client import OpenAIGuardClient

    return OpenAIGuardClient(config.require_urls())
