"""Guard settings: one definition, read from config, reward kwargs (``guard_<field>``) and env vars.

Precedence (highest first): the explicit value (hydra config, CLI flag, YAML), then the
``SINTERNAL_GUARD_*`` environment variables, then the defaults below. Env vars exist because
verl starts reward workers on every node; exporting them once in a Ray ``runtime_env``
reaches all of them. Unknown keys fail at start-up with the nearest key suggested.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, ClassVar, Literal

from pydantic import field_validator

from sinternal_verl.settings import ConfigError, load, setting

from .http import HTTPClientConfig
from .registry import get_kind

ENV_URLS = "SINTERNAL_GUARD_URLS"
ENV_MODEL = "SINTERNAL_GUARD_MODEL"
ENV_KIND = "SINTERNAL_GUARD_KIND"
ENV_API_KEY = "SINTERNAL_GUARD_API_KEY"
ENV_BACKEND = "SINTERNAL_GUARD_BACKEND"

#: prefix of the guard settings in verl's flat ``reward.reward_kwargs``
PREFIX = "guard_"


def _tuple_of_str(value: Any, sep: str) -> Any:
    if isinstance(value, str):
        return tuple(p.strip() for p in value.split(sep) if p.strip())
    if isinstance(value, (list, tuple)):
        return tuple(str(v).strip() for v in value if str(v).strip())
    return value


class GuardConfig(HTTPClientConfig):
    """A guard: which model family and how it is reached (the transport's settings are
    inherited from :class:`~.http.HTTPClientConfig`, defined there once)."""

    #: env vars that fill these fields when the config leaves them unset
    env_vars: ClassVar[dict[str, str]] = {
        "kind": ENV_KIND,
        "urls": ENV_URLS,
        "model": ENV_MODEL,
        "api_key": ENV_API_KEY,
        "backend": ENV_BACKEND,
    }

    kind: str = setting(
        "qwen3guard",
        "guard kind from the registry: qwen3guard, llamaguard, wildguard, or lexical "
        "(offline keyword baseline, only when asked for)",
    )
    model: str | None = setting(None, "served model name; empty means the kind's default")
    backend: Literal["http", "ray_pool"] = setting(
        "http",
        "http: OpenAI-compatible servers at urls; ray_pool: attach by name to guard replicas "
        "running as Ray actors in this cluster (no HTTP hop)",
    )
    pool_name: str = setting("sinternal_guard_pool", "ray_pool: name of the replica pool to attach to")
    pool_namespace: str = setting("sinternal", "ray_pool: Ray namespace of the pool")
    parse_retries: int = setting(1, "extra attempts when the guard answers text that cannot be parsed", ge=0)
    max_new_tokens: int = setting(128, "tokens the guard may generate per verdict", ge=1)
    cache_size: int = setting(
        100_000,
        "LRU of verdicts; identical (prompt, answer) pairs in flight share one request; 0 disables",
        ge=0,
    )
    cache_max_bytes: int = setting(
        64 * 1024 * 1024,
        "the verdict cache's bound in bytes (keys are 16-byte hashes, never the texts); 0 disables",
        ge=0,
    )
    rejected_message_max_chars: int = setting(
        500,
        "a guard rejection's message is cut to this many characters "
        "(the upstream body is never relayed whole)",
        ge=0,
    )
    soft_score: bool = setting(
        False, "Qwen3Guard: probability of unsafe from the logprobs of the label token"
    )
    top_logprobs: int = setting(5, "alternatives requested per token when soft_score is on", ge=1, le=20)
    lexical_refusal_phrases: tuple[str, ...] | None = setting(
        None, "lexical judge: refusal phrases ('|'-separated); empty means the built-in list"
    )
    lexical_harmful_keywords: tuple[str, ...] | None = setting(
        None, "lexical judge: harmful-prompt keywords ('|'-separated); empty means the built-in list"
    )
    lexical_refusal_mode: Literal["structure", "gcg_keywords", "xstest_prefix"] | None = setting(
        None,
        "lexical judge: how refusal is read; empty means structure, or gcg_keywords when "
        "lexical_refusal_phrases is set",
    )

    @field_validator("kind")
    @classmethod
    def _known_kind(cls, value: str) -> str:
        get_kind(value)  # unknown kinds fail here, with the nearest registered name
        return value

    @field_validator("lexical_refusal_phrases", "lexical_harmful_keywords", mode="before")
    @classmethod
    def _split_phrases(cls, value: Any) -> Any:
        return _tuple_of_str(value, "|") if value is not None else None

    @field_validator("api_key", mode="before")
    @classmethod
    def _strip_key(cls, value: Any) -> Any:
        return value.strip() or None if isinstance(value, str) else value

    def require_urls(self) -> GuardConfig:
        """Raise unless a guard can be built: a model guard over HTTP needs a URL. Checked when
        the guard is built, not when settings are read, so a math-only run needs no guard."""
        if not get_kind(self.kind).local and self.backend == "http" and not self.urls:
            raise ConfigError(
                f"guard kind {self.kind!r} needs at least one URL: set guard_urls in config or "
                f"{ENV_URLS}=http://host:port[,http://host2:port]; use guard_kind=lexical for the "
                "offline baseline judge"
            )
        return self

    @property
    def model_name(self) -> str:
        return self.model or get_kind(self.kind).default_model

    @classmethod
    def from_mapping(
        cls, cfg: Mapping[str, Any] | None = None, env: Mapping[str, str] | None = None
    ) -> GuardConfig:
        """From a mapping of guard settings, keys with or without the ``guard_`` prefix (CLI flags,
        YAML sections, the guard part of reward kwargs); env vars fill unset fields. Unknown keys
        raise :class:`~sinternal_verl.settings.ConfigError` with a suggestion."""
        values: dict[str, Any] = {}
        for key, value in dict(cfg or {}).items():
            name = (
                key[len(PREFIX) :]
                if key.startswith(PREFIX) and key[len(PREFIX) :] in cls.model_fields
                else key
            )
            if value is not None:
                values[name] = value
        return load(cls, values, env=os.environ if env is None else env, where="guard settings")


__all__ = ["ConfigError", "GuardConfig", "PREFIX"]
