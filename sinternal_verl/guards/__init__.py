"""Guard models behind one typed interface.

``build_guard(GuardConfig(...))`` returns a :class:`Guard`; ``await guard.moderate(items)``
returns one :class:`GuardVerdict` per :class:`ModerationItem`. Kinds: ``qwen3guard``
(default), ``llamaguard``, ``wildguard`` (OpenAI-compatible servers through
:class:`OpenAIGuardClient`) and ``lexical`` (offline baseline). The plain transport,
:class:`OpenAIHTTPClient`, is reusable for any OpenAI-compatible endpoint.
"""

from .categories import CATEGORIES
from .client import GuardStats, OpenAIGuardClient
from .config import GUARD_KINDS, GuardConfig
from .factory import build_guard
from .http import HTTPClientConfig, OpenAIHTTPClient
from .lexical import GCG_REFUSAL_PHRASES, HARMFUL_PROMPT_KEYWORDS, LexicalJudge
from .types import (
    Guard,
    GuardConfigError,
    GuardError,
    GuardUnavailableError,
    GuardVerdict,
    GuardVerdictError,
    ModerationItem,
    ReadyReport,
    Refusal,
    SafetyLabel,
    UpstreamRequestError,
    UpstreamUnavailableError,
)

__all__ = [
    "CATEGORIES",
    "GCG_REFUSAL_PHRASES",
    "GUARD_KINDS",
    "HARMFUL_PROMPT_KEYWORDS",
    "Guard",
    "GuardConfig",
    "GuardConfigError",
    "GuardError",
    "GuardStats",
    "GuardUnavailableError",
    "GuardVerdict",
    "GuardVerdictError",
    "HTTPClientConfig",
    "LexicalJudge",
    "ModerationItem",
    "OpenAIGuardClient",
    "OpenAIHTTPClient",
    "ReadyReport",
    "Refusal",
    "SafetyLabel",
    "UpstreamRequestError",
    "UpstreamUnavailableError",
    "build_guard",
]
