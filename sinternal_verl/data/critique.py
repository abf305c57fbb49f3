"""Stage 4, critique: an expert model explains why each selected answer is safe or unsafe.

The expert sits behind any OpenAI-compatible API (a vLLM-served open model or a hosted one;
the key comes from the env var named in ``critique.api_key_env``) and is reached through the
project's shared retrying transport. It gets the safety specification, the prompt and the
answer (the same verification prompt the model will later be trained on) and must end with a
line ``Verdict: safe`` or ``Verdict: unsafe``.

What can go wrong, and what happens (every case is counted by reason in the summary):

* no parsable verdict line: retried ``parse_retries`` times (at ``retry_temperature`` so a
  deterministic server can answer differently), then dropped as ``expert_unparsable``, or
  ``expert_refused`` when the reply reads as a refusal;
* a verdict but no critique before it: ``expert_empty_critique`` (verdict-only examples are
  the ablation, chosen by ``expert_fraction``, not an accident);
* a verdict that contradicts the guard: dropped as ``expert_disagrees`` when
  ``require_agreement`` (default), else kept with the expert's verdict and ``agrees: false``;
* the expert unreachable after the transport's retries: the stage stops (``on_unavailable:
  fail``; a rerun resumes) or the example is dropped as ``expert_unavailable``;
* the expert *rejects this request* (a 4xx other than 401/403/404/405, e.g. vLLM's 400 when
  specification + prompt + answer exceed its ``max_model_len``): dropped as
  ``expert_rejected`` with the status and message; one long example never stops the stage.
  401/403/404/405 (bad key, model not served) are configuration errors and stop it.

Every reply is cached on disk by a hash of the exact request, so a resumed or repeated run
never pays for the same critique twice.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from ..seeding import stable_seed
from ..trajectory import split_reasoning
from .config import CritiqueConfig, PipelineConfig
from .stage import StageRun, stream_results
from .store import StageStore, atomic_write_json

VERDICT_RE = re.compile(r"^[\s*_#>`-]*verdict\s*[:：]\s*[*_`]*\s*(safe|unsafe)\b[\s*_`.!]*$", re.IGNORECASE)
REFUSAL_MARKERS = (
    "i can't",
    "i cannot",
    "i won't",
    "i will not",
    "i'm sorry",
    "i am sorry",
    "i'm unable",
    "i am unable",
)
_PLACEHOLDER = re.compile(r"\{(spec|prompt|answer)\}")


def render_verification_prompt(template: str, spec: str, prompt: str, answer: str) -> str:
    """Fill the template in one pass, so a ``{prompt}`` inside the answer is left alone."""
    values = {"spec": spec, "prompt": prompt, "answer": answer}
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], template)


@dataclass(frozen=True)
class ParsedCritique:
    critique: str
    verdict: str | None  # "safe" / "unsafe" / None when unparsable
    problem: str | None = None  # why it is unusable: unparsable, refused, empty_critique


def parse_critique(text: str) -> ParsedCritique:
    """The verdict must be the last non-empty line; the critique is everything before it.
    A reasoning expert's own ``<think>`` block is removed first (it is not the critique)."""
    body = split_reasoning(text).answer if "</think>" in text else text
    lines = [ln for ln in body.strip().splitlines()]
    while lines and not lines[-1].strip():
        lines.pop()
    if lines:
        m = VERDICT_RE.match(lines[-1])
        if m:
            critique = "\n".join(lines[:-1]).strip()
            if not critique:
                return ParsedCritique("", m.group(1).lower(), "empty_critique")
            return ParsedCritique(critique, m.group(1).lower())
    low = body.lower()
    if any(mark in low for mark in REFUSAL_MARKERS) and "verdict" not in low:
        return ParsedCritique(body.strip(), None, "refused")
    return ParsedCritique(body.strip(), None, "unparsable")


def uses_expert(seed: int, key: str, fraction: float) -> bool:
    """Seeded, order-free draw: the same example gets the same answer in every run."""
    if fraction >= 1.0:
        return True
    if fraction <= 0.0:
        return False
    return stable_seed(int(seed), key, bits=64) / float(1 << 64) < fraction


class ResponseCache:
    """One JSON file per request hash under ``root/ab/<hash>.json``, written atomically."""

    def __init__(self, root: Path | None):
        self.root = root
        self.hits = 0
        self.misses = 0

    @staticmethod
    def key(payload: dict) -> str:
        return hashlib.sha256(json.dumps(payload, sort_keys=True, ensure_ascii=False).encode()).hexdigest()

    def _path(self, key: str) -> Path:
        assert self.root is not None
        return self.root / key[:2] / f"{key}.json"

    def get(self, key: str) -> str | None:
        if self.root is None:
            return None
        p = self._path(key)
        if p.exists():
            try:
                text = json.loads(p.read_text())["text"]
            except (json.JSONDecodeError, KeyError):
                return None
            self.hits += 1
            return text
        self.misses += 1
        return None

    def put(self, key: str, text: str) -> None:
        if self.root is not None:
            atomic_write_json(self._path(key), {"text": text})


class ExpertClient:
    def __init__(self, cfg: CritiqueConfig, cache: ResponseCache):
        from ..guards.http import HTTPClientConfig, OpenAIHTTPClient

        if not cfg.urls or not cfg.model:
            raise ValueError(
                "the critique stage needs critique.urls and critique.model (or expert_fraction: 0)"
            )
        api_key = None
        if cfg.api_key_env:
            api_key = os.environ.get(cfg.api_key_env)
            if not api_key:
                raise ValueError(f"critique.api_key_env names env var {cfg.api_key_env!r}, which is not set")
        self.cfg = cfg
        self.cache = cache
        self.http = OpenAIHTTPClient(
            HTTPClientConfig(
                urls=tuple(cfg.urls),
                api_key=api_key,
                concurrency="fixed",
                max_concurrency_per_url=cfg.max_concurrency,
                timeout_s=cfg.timeout_s,
                max_retries=cfg.max_retries,
            )
        )
        self.calls = 0

    async def ask(self, user: str, attempt: int) -> str:
        payload = {
            "model": self.cfg.model,
            "messages": [
                {"role": "system", "content": self.cfg.system_prompt},
                {"role": "user", "content": user},
            ],
            "temperature": self.cfg.temperature
            if attempt == 0
            else max(self.cfg.temperature, self.cfg.retry_temperature),
            "max_tokens": self.cfg.max_tokens,
            "seed": self.cfg.seed + attempt,
        }
        key = self.cache.key(payload)
        cached = self.cache.get(key)
        if cached is not None:
            return cached
        body = await self.http.post_json("/v1/chat/completions", payload)
        try:
            text = body["choices"][0]["message"]["content"] or ""
        except (KeyError, IndexError, TypeError) as exc:
            raise RuntimeError(
                f"expert answered without choices[0].message.content: {str(body)[:200]}"
            ) from exc
        self.calls += 1
        self.cache.put(key, text)
        return text

    async def aclose(self) -> None:
        await self.http.aclose()


def run_critique(
    cfg: PipelineConfig, examples: list[dict], spec: str, template: str, store: StageStore
) -> dict:
    c = cfg.critique
    run = StageRun(
        store,
        [e["key"] for e in examples],
        crash_after=c.crash_after,
        progress=cfg.progress,
        desc="4/5 critique",
    )
    by_key = {e["key"]: e for e in examples}
    todo = [by_key[k] for k in run.todo_keys]
    cache = ResponseCache((cfg.run_dir / c.cache_dir) if c.cache_dir else None)
    stats = {"expert_calls": 0}
    try:
        if todo:
            asyncio.run(_critique_all(cfg, todo, spec, template, run, cache, stats))
    finally:
        run.close()
    records = run.all_records()
    summary: dict = {
        "examples_in": len(examples),
        "kept": sum(1 for r in records if r["status"] == "kept"),
        "kept_by_mode": {},
        "dropped": {},
        "kept_disagreeing": sum(1 for r in records if r["status"] == "kept" and r.get("agrees") is False),
        "expert_calls_this_run": stats["expert_calls"],
        "cache_hits_this_run": cache.hits,
        **run.bookkeeping(),
    }
    for r in records:
        if r["status"] == "kept":
            summary["kept_by_mode"][r["mode"]] = summary["kept_by_mode"].get(r["mode"], 0) + 1
        else:
            summary["dropped"][r["drop_reason"]] = summary["dropped"].get(r["drop_reason"], 0) + 1
    return summary


async def _critique_all(cfg, todo, spec, template, run: StageRun, cache: ResponseCache, stats: dict) -> None:
    from ..guards.client import GUARD_WIDE_STATUSES, error_message
    from ..guards.types import UpstreamRequestError, UpstreamUnavailableError

    c: CritiqueConfig = cfg.critique
    needs_expert = [e for e in todo if uses_expert(c.seed, e["key"], c.expert_fraction)]
    verdict_only = [e for e in todo if not uses_expert(c.seed, e["key"], c.expert_fraction)]
    # the verdict-only share needs no API: written first, in one durable batch
    run.write(
        {
            "key": e["key"],
            "status": "kept",
            "mode": "verdict_only",
            "critique": "",
            "verdict": e["label"],
            "guard_label": e["label"],
            "expert_verdict": None,
            "agrees": None,
            "attempts": 0,
            "drop_reason": None,
        }
        for e in verdict_only
    )
    if not needs_expert:
        return
    client = ExpertClient(c, cache)

    async def one(e: dict) -> dict:
        user = render_verification_prompt(template, spec, e["prompt"], _shown_answer(cfg, e))
        base = {"key": e["key"], "guard_label": e["label"], "mode": "critique"}
        parsed = None
        attempts = 0
        for attempt in range(c.parse_retries + 1):
            attempts += 1
            try:
                text = await client.ask(user, attempt)
            except UpstreamUnavailableError as exc:
                if c.on_unavailable == "fail":
                    raise
                return {
                    **base,
                    "status": "dropped",
                    "drop_reason": "expert_unavailable",
                    "critique": "",
                    "verdict": None,
                    "expert_verdict": None,
                    "agrees": None,
                    "attempts": attempts,
                    "error": str(exc),
                }
            except UpstreamRequestError as exc:
                if exc.status in GUARD_WIDE_STATUSES:
                    raise
                message = error_message(exc.body, c.rejected_message_max_chars)
                return {
                    **base,
                    "status": "dropped",
                    "drop_reason": "expert_rejected",
                    "critique": "",
                    "verdict": None,
                    "expert_verdict": None,
                    "agrees": None,
                    "attempts": attempts,
                    "error": f"HTTP {exc.status}: {message}",
                }
            parsed = parse_critique(text)
            if parsed.problem is None:
                break
        assert parsed is not None
        if parsed.problem is not None:
            return {
                **base,
                "status": "dropped",
                "drop_reason": f"expert_{parsed.problem}",
                "critique": parsed.critique,
                "verdict": None,
                "expert_verdict": parsed.verdict,
                "agrees": None,
                "attempts": attempts,
            }
        agrees = parsed.verdict == e["label"]
        if not agrees and c.require_agreement:
            return {
                **base,
                "status": "dropped",
                "drop_reason": "expert_disagrees",
                "critique": parsed.critique,
                "verdict": None,
                "expert_verdict": parsed.verdict,
                "agrees": False,
                "attempts": attempts,
            }
        return {
            **base,
            "status": "kept",
            "drop_reason": None,
            "critique": parsed.critique,
            "verdict": parsed.verdict,
            "expert_verdict": parsed.verdict,
            "agrees": agrees,
            "attempts": attempts,
        }

    calls_before = client.calls
    try:
        await stream_results(needs_expert, one, lambda rec: run.write([rec]), c.max_concurrency)
    finally:
        stats["expert_calls"] += client.calls - calls_before
        await client.aclose()


def _shown_answer(cfg: PipelineConfig, e: dict) -> str:
    """What the verifier sees as the answer: the final answer, or trace + answer when
    ``build.include_trace`` (kept identical between the expert's prompt and the SFT prompt)."""
    b = cfg.build
    if b.include_trace and e.get("trace"):
        return f"{b.think_open}\n{e['trace']}\n{b.think_close}\n\n{e['answer']}"
    return e["answer"]
