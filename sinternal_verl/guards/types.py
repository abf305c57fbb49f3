"""Typed boundary between guard models and everything that consumes their verdicts.

Every guard kind (Qwen3Guard, Llama Guard, WildGuard, the offline lexical judge, a Ray
replica pool) answers with the same :class:`GuardVerdict`, so rewards, the reward server
and the data pipeline never look at a guard's raw text.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable


class SafetyLabel(str, enum.Enum):
    SAFE = "safe"
    UNSAFE = "unsafe"
    CONTROVERSIAL = "controversial"


class Refusal(str, enum.Enum):
    YES = "yes"
    NO = "no"
    UNKNOWN = "unknown"  # the guard has no refusal head (Llama Guard) or did not say


@dataclass(frozen=True)
class ModerationItem:
    """One thing to judge.

    ``response is None`` asks for *prompt* moderation (is the request harmful?);
    otherwise *response* moderation (is this answer to this prompt harmful?).
    """

    prompt: str
    response: str | None = None
    #: the reasoning trace behind ``response``, when the caller wants the guard to see it.
    #: Qwen3Guard then gets Qwen's eval format ``<think>trace</think>\n\nresponse`` as the
    #: assistant turn; guards without a trace format ignore it.
    trace: str | None = None
    #: what the caller already knows about the prompt (dataset label): ``True`` harmful,
    #: ``False`` benign, ``None`` unknown. Only the offline lexical judge needs it (it cannot
    #: judge harm in an answer, only refusal); model guards ignore it. Not part of the
    #: cache key of model guards, since their verdict does not depend on it.
    prompt_harmful: bool | None = None

    @property
    def is_prompt_moderation(self) -> bool:
        return self.response is None


@dataclass(frozen=True)
class GuardVerdict:
    """A parsed guard answer.

    ``parse_ok=False`` means the guard answered but its text could not be read; ``label`` is
    then ``None``. Callers decide what that means (see the reward's ``on_guard_error``):
    a parse failure is never silently "safe".
    """

    label: SafetyLabel | None
    categories: tuple[str, ...] = ()
    refusal: Refusal = Refusal.UNKNOWN
    parse_ok: bool = True
    raw: str = ""
    #: probability that the label is unsafe, from the logprobs of the first token after
    #: ``Safety:`` (Qwen3Guard only, when requested); ``None`` otherwise.
    p_unsafe: float | None = None
    #: which guard produced it, for logs (e.g. the base URL or "lexical").
    source: str = ""
    extra: dict = field(default_factory=dict, compare=False, hash=False)
    #: the guard *refused to judge* this item (an HTTP 4xx for this request, e.g. vLLM's 400
    #: when prompt + answer exceed ``max_model_len``, or an engine's per-item length check).
    #: ``label`` is then ``None`` and ``parse_ok`` ``False``; the reward's ``on_guard_rejected``
    #: decides the score (see :mod:`sinternal_verl.guards.rejection`).
    rejected: bool = False
    #: HTTP status of a rejection (``None`` when not an HTTP rejection)
    status: int | None = None
    #: the guard's own message for a rejection or a parse failure (never an upstream body
    #: with headers: only the ``error.message`` field, truncated)
    message: str = ""

    @property
    def is_safe(self) -> bool | None:
        """Strict reading: controversial is not safe. ``None`` when unparsed."""
        if self.label is None:
            return None
        return self.label is SafetyLabel.SAFE


@dataclass(frozen=True)
class ReadyReport:
    """Result of a readiness probe (``GET /v1/models`` on each upstream)."""

    ready: bool
    detail: dict[str, str] = field(default_factory=dict)  # url -> "ok" or the reason


class GuardError(RuntimeError):
    """Base class for guard failures that are *not* a verdict."""


class UpstreamUnavailableError(RuntimeError):
    """An OpenAI-compatible upstream (guard, critic, sampler) could not be reached, timed
    out, or kept failing after all retries. Generic base so any HTTP client user can catch
    one type; :class:`GuardUnavailableError` is the guard-specific subclass."""

    def __init__(self, url: str, cause: str, attempts: int = 0):
        self.url = url
        self.cause = cause
        self.attempts = attempts
        super().__init__(f"upstream at {url} unavailable after {attempts} attempt(s): {cause}")


class UpstreamRequestError(RuntimeError):
    """The upstream rejected the request itself (4xx other than 429): retrying the same
    request cannot help, so it is raised at once with the status and the server's message."""

    def __init__(self, url: str, status: int, body: str):
        self.url = url
        self.status = status
        self.body = body
        shown = body if len(body) <= 300 else body[:300] + "..."
        super().__init__(f"upstream at {url} rejected the request with HTTP {status}: {shown}")


class GuardUnavailableError(GuardError, UpstreamUnavailableError):
    """The guard could not be reached, timed out, or kept failing after all retries.

    The message always names the URL and the cause so an operator can act on it.
    """

    def __init__(self, url: str, cause: str, attempts: int = 0):
        self.url = url
        self.cause = cause
        self.attempts = attempts
        RuntimeError.__init__(self, f"guard at {url} unavailable after {attempts} attempt(s): {cause}")


class GuardConfigError(GuardUnavailableError):
    """The guard refused us as a client (HTTP 401 / 403 / 404: bad key, model not served).
    Retrying cannot help; an operator must fix the configuration. A subclass of
    :class:`GuardUnavailableError`, so every handler of an unusable guard handles it too."""


@runtime_checkable
class Guard(Protocol):
    """What every guard backend implements.

    ``moderate`` returns one verdict per item, in order. Transport failures after retries
    raise :class:`GuardUnavailableError`; unreadable answers come back as verdicts with
    ``parse_ok=False`` so one bad item never sinks a batch.
    """

    kind: str

    async def moderate(self, items: Sequence[ModerationItem]) -> list[GuardVerdict]: ...

    async def check_ready(self) -> ReadyReport: ...

    def stats(self) -> Mapping[str, float]:
        """Flat counters (one shape for every guard: names to numbers, per-URL figures as
        ``name{url}`` keys), for logs and the reward server's Prometheus export."""
        ...

    async def aclose(self) -> None: ...


class GuardRejectedError(GuardError):
    """The guard rejected this item's request (HTTP 4xx for the item, e.g. over-long input),
    and the configuration says to raise (``on_guard_rejected: raise``). Carries the status
    and the guard's message, so the operator sees *why* (not an empty unparsable output)."""

    def __init__(self, source: str, status: int | None, message: str):
        self.source = source
        self.status = status
        self.message = message
        what = f"HTTP {status}" if status is not None else "a rejection"
        super().__init__(f"guard at {source or 'guard'} rejected the item with {what}: {message}")


def verdict_error(verdict: GuardVerdict) -> GuardError:
    """The exception that describes an unusable verdict: :class:`GuardRejectedError` for a
    rejection, :class:`GuardVerdictError` for unreadable text."""
    if verdict.rejected:
        return GuardRejectedError(verdict.source, verdict.status, verdict.message)
    return GuardVerdictError(verdict.raw, verdict.source)


class GuardVerdictError(GuardError):
    """The guard answered, but its verdict could not be read (after parse retries).

    Per-item: one unreadable verdict fails that item, never the whole batch.
    """

    def __init__(self, raw: str, source: str = ""):
        self.raw = raw
        self.source = source
        shown = raw if len(raw) <= 200 else raw[:200] + "..."
        super().__init__(f"unparsable guard output from {source or 'guard'}: {shown!r}")
