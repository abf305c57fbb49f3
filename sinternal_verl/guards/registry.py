"""One registry of guard kinds.

A kind is one module (``qwen3guard``, ``llamaguard``, ``wildguard``) that registers itself
once with :func:`register_kind`: how to build its request, how to read its answer, its default
model, whether it has a refusal head and a soft score. Everything that speaks to guards (the
HTTP client, the Ray pool, config validation, docs) asks the registry, so adding a kind is
adding a module, and no caller branches on a kind's name.

Every model kind has the same two functions:

* ``build_payload(item, model, max_tokens, soft_score=False, top_logprobs=5) -> dict`` (the
  OpenAI request body for ``endpoint``; control tokens in the item already neutralised);
* ``parse(text, item, source="") -> GuardVerdict`` (never raises on any text).

``lexical`` (the offline judge) is registered as a *local* kind: no endpoint, no parser, a
``build_local(config)`` factory imported lazily so the registry does not depend on it.
"""

from __future__ import annotations

import difflib
import importlib
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..settings import ConfigError
from .types import GuardVerdict, ModerationItem

BuildPayload = Callable[..., dict]
Parse = Callable[[str, ModerationItem, str], GuardVerdict]


@dataclass(frozen=True)
class GuardKind:
    """What the rest of the code needs to know about one guard kind."""

    name: str
    default_model: str
    #: the guard says whether an answer is a refusal (Qwen3Guard, WildGuard; not Llama Guard)
    supports_refusal: bool
    #: HTTP path of the OpenAI-compatible endpoint; ``None`` for local kinds
    endpoint: str | None = None
    build_payload: BuildPayload | None = None
    parse: Parse | None = None
    #: ``soft_score(chat logprobs content) -> (p_unsafe, p_controversial) | None``, if any
    soft_score: Callable[[Any], tuple[float, float] | None] | None = None
    #: local kinds only: ``build_local(guard_config) -> Guard``
    build_local: Callable[[Any], Any] | None = None

    @property
    def local(self) -> bool:
        return self.endpoint is None

    @property
    def supports_soft_score(self) -> bool:
        return self.soft_score is not None

    def __post_init__(self) -> None:
        if self.local:
            if self.build_local is None:
                raise ConfigError(f"guard kind {self.name!r}: a local kind (no endpoint) needs build_local")
        elif self.build_payload is None or self.parse is None:
            raise ConfigError(f"guard kind {self.name!r}: a model kind needs build_payload and parse")


_KINDS: dict[str, GuardKind] = {}
_LOCK = threading.Lock()
_BUILTIN_MODULES = (
    "sinternal_verl.guards.qwen3guard",
    "sinternal_verl.guards.llamaguard",
    "sinternal_verl.guards.wildguard",
)
_builtins_loaded = False


def register_kind(spec: GuardKind) -> GuardKind:
    """Register ``spec`` under ``spec.name``; registering the same spec again is a no-op (a
    module re-import), a *different* spec under a taken name is a :class:`ConfigError`."""
    with _LOCK:
        old = _KINDS.get(spec.name)
        if old is not None and old != spec and not _same_origin(old, spec):
            raise ConfigError(f"guard kind {spec.name!r} is already registered (by {_origin(old)})")
        _KINDS[spec.name] = spec
    return spec


def get_kind(name: str) -> GuardKind:
    """The kind called ``name``; unknown names fail with the nearest known name suggested."""
    _load_builtins()
    spec = _KINDS.get(name)
    if spec is None:
        known = kind_names()
        close = difflib.get_close_matches(str(name), known, n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ConfigError(f"unknown guard kind {name!r}{hint} (known kinds: {', '.join(known)})")
    return spec


def kind_names() -> tuple[str, ...]:
    """Registered kind names, in registration order (built-ins first)."""
    _load_builtins()
    return tuple(_KINDS)


def _origin(spec: GuardKind) -> str:
    fn = spec.parse or spec.build_local
    return getattr(fn, "__module__", "?")


def _same_origin(a: GuardKind, b: GuardKind) -> bool:
    return _origin(a) == _origin(b)


def _build_lexical(config: Any) -> Any:
    from .lexical import LexicalJudge  # lazy: the lexical module is optional to the registry

    return LexicalJudge.from_config(config)


def _load_builtins() -> None:
    global _builtins_loaded
    if _builtins_loaded:
        return
    for mod in _BUILTIN_MODULES:
        importlib.import_module(mod)  # each module calls register_kind at import
    register_kind(
        GuardKind(name="lexical", default_model="lexical", supports_refusal=True, build_local=_build_lexical)
    )
    _builtins_loaded = True
