"""Guard configuration: one dataclass, filled from keyword arguments and env vars.

Precedence (highest first): explicit keyword / hydra config value, then the
``SINTERNAL_GUARD_*`` environment variables, then the defaults below. Env vars exist
because verl starts reward workers on every node; exporting them once in a Ray
``runtime_env`` reaches all of them.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from typing import Any, Mapping

GUARD_KINDS = ("qwen3guard", "llamaguard", "wildguard", "lexical")

DEFAULT_MODELS = {
    "qwen3guard": "Qwen/Qwen3Guard-Gen-4B",
    "llamaguard": "meta-llama/Llama-Guard-4-12B",
    "wildguard": "allenai/wildguard",
    "lexical": "lexical",
}

ENV_URLS = "SINTERNAL_GUARD_URLS"
ENV_MODEL = "SINTERNAL_GUARD_MODEL"
ENV_KIND = "SINTERNAL_GUARD_KIND"
ENV_API_KEY = "SINTERNAL_GUARD_API_KEY"


@dataclass(frozen=True)
class GuardConfig:
    kind: str = "qwen3guard"
    #: base URLs of OpenAI-compatible servers, e.g. ``http://host:8000`` (``/v1`` optional).
    urls: tuple[str, ...] = ()
    #: served model name; ``None`` means the kind's default (see ``DEFAULT_MODELS``).
    model: str | None = None
    api_key: str | None = field(default=None, repr=False)
    #: requests in flight per URL; the rest wait (backpressure, not errors).
    max_concurrency_per_url: int = 64
    #: seconds for one HTTP request (connect + read).
    timeout_s: float = 60.0
    #: retries after the first attempt on connect errors, timeouts, 5xx and 429.
    max_retries: int = 4
    backoff_base_s: float = 0.5
    backoff_max_s: float = 8.0
    #: extra attempts when the guard answers text that cannot be parsed (greedy decoding
    #: makes repeats rare; 0 disables).
    parse_retries: int = 1
    max_new_tokens: int = 128
    #: LRU cache of verdicts keyed by (kind, model, prompt, response); 0 disables.
    cache_size: int = 100_000
    #: ask for logprobs of the first token after ``Safety:`` (Qwen3Guard) for ``p_unsafe``.
    soft_score: bool = False
    #: alternatives requested per token when ``soft_score`` is on (vLLM allows up to 20).
    top_logprobs: int = 5
    #: cap on a server's ``Retry-After`` seconds.
    retry_after_max_s: float = 60.0
    #: timeout of one readiness probe (``GET /v1/models``).
    ready_timeout_s: float = 5.0
    #: lexical judge: refusal phrases (substring match); ``None`` = the GCG/AdvBench list.
    lexical_refusal_phrases: tuple[str, ...] | None = None
    #: lexical judge: harmful-prompt keywords (word match); ``None`` = the built-in list.
    lexical_harmful_keywords: tuple[str, ...] | None = None
    #: lexical judge: how refusal is read (``structure``, ``gcg_keywords``, ``xstest_prefix``);
    #: ``None`` = ``structure``, or ``gcg_keywords`` when ``lexical_refusal_phrases`` is set.
    lexical_refusal_mode: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in GUARD_KINDS:
            raise ValueError(f"unknown guard kind {self.kind!r}; known kinds: {', '.join(GUARD_KINDS)}")
        if self.max_concurrency_per_url < 1:
            raise ValueError("max_concurrency_per_url must be >= 1")
        if self.kind != "lexical" and not self.urls:
            raise ValueError(
                f"guard kind {self.kind!r} needs at least one URL: set guard_urls in config or "
                f"{ENV_URLS}=http://host:port[,http://host2:port]; use guard_kind=lexical for the "
                "offline baseline judge"
            )

    @property
    def model_name(self) -> str:
        return self.model or DEFAULT_MODELS[self.kind]

    @classmethod
    def from_mapping(cls, cfg: Mapping[str, Any] | None = None, env: Mapping[str, str] | None = None) -> "GuardConfig":
        """Build from a flat mapping (hydra ``reward_kwargs``, CLI flags, JSON) plus env vars.

        Recognised keys: the field names, also with a ``guard_`` prefix (``guard_urls``,
        ``guard_kind``, ...). ``urls`` may be a list or a comma-separated string. Unknown
        keys are ignored here (they belong to the reward config).
        """
        cfg = dict(cfg or {})
        env = os.environ if env is None else env
        names = {f.name for f in dataclasses.fields(cls)}
        values: dict[str, Any] = {}
        for key, value in cfg.items():
            name = key[len("guard_") :] if key.startswith("guard_") and key[len("guard_") :] in names else key
            if name in names and value is not None:
                values[name] = value
        if "urls" not in values and env.get(ENV_URLS):
            values["urls"] = env[ENV_URLS]
        if "model" not in values and env.get(ENV_MODEL):
            values["model"] = env[ENV_MODEL]
        if "kind" not in values and env.get(ENV_KIND):
            values["kind"] = env[ENV_KIND]
        if "api_key" not in values and env.get(ENV_API_KEY):
            values["api_key"] = env[ENV_API_KEY]
        if "urls" in values:
            values["urls"] = _split_urls(values["urls"])
        for name in ("lexical_refusal_phrases", "lexical_harmful_keywords"):
            if name in values and not isinstance(values[name], tuple):
                v = values[name]
                values[name] = tuple(v.split("|")) if isinstance(v, str) else tuple(v)
        return cls(**values)


def _split_urls(urls: Any) -> tuple[str, ...]:
    if isinstance(urls, str):
        parts = urls.split(",")
    else:
        parts = list(urls)
    return tuple(u.strip().rstrip("/") for u in parts if u and str(u).strip())
