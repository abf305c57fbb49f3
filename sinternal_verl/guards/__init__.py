"""Guard models behind one typed interface.

``build_guard(GuardConfig(...))`` returns a :class:`Guard`; ``await guard.moderate(items)``
returns one :class:`GuardVerdict` per :class:`ModerationItem`. Kinds live in one registry
(:func:`get_kind`, :func:`register_kind`): ``qwen3guard`` (default), ``llamaguard`` and
``wildguard`` over OpenAI-compatible servers, ``lexical`` (the offline baseline). The
transport (``guards.http``), the client (``guards.client``) and the Ray replica pool
(``guards.ray_pool``) are reached through their modules.
"""

from .config import GuardConfig
from .factory import build_guard
from .registry import GuardKind, get_kind, kind_names, register_kind
from .types import (
    Guard,
    GuardError,
    GuardRejectedError,
    GuardUnavailableError,
    GuardVerdict,
    GuardVerdictError,
    ModerationItem,
    Refusal,
    SafetyLabel,
)

__all__ = [
    "Guard",
    "GuardConfig",
    "GuardError",
    "GuardKind",
    "GuardRejectedError",
    "GuardUnavailableError",
    "GuardVerdict",
    "GuardVerdictError",
    "ModerationItem",
    "Refusal",
    "SafetyLabel",
    "build_guard",
    "get_kind",
    "kind_names",
    "register_kind",
]
