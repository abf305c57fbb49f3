"""``sinternal-verl run``: the whole method as resumable stages in one run directory.

See ``recipes/run/README.md``. Public API: :class:`RunConfig`, :func:`run`, :data:`STAGES`.
"""

from .config import STAGES, RunConfig
from .runner import run

__all__ = ["STAGES", "RunConfig", "run"]
