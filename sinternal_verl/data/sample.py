"""Stage 1, sample: N on-policy responses per prompt, split into trace and final answer.

Backends:

* ``vllm`` / ``transformers``: one :class:`~.engines.EngineHost` Ray actor per engine
  (``gpus_per_engine`` each, ``SPREAD`` over nodes); prompts are cut into batches and fed to
  whichever actor is free, two batches in flight per actor so a GPU never waits on the
  driver. ``num_engines: 0`` runs one engine in-process (no Ray) for CPU demos.
* ``openai``: any OpenAI-compatible server (a vLLM fleet, a hosted policy) through the shared
  retrying transport, with ``n`` samples per request.

Results are written after every batch / request, so a killed run keeps what it finished.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable

from ..seeding import prompt_seed
from ..trajectory import split_reasoning
from .config import PipelineConfig
from .engines import EngineHost, GenRequest, GenResult
from .prompts import PromptRow
from .stage import StageRun, count_by, stream_results
from .store import StageStore


def _requests(cfg: PipelineConfig, rows: list[PromptRow]) -> list[GenRequest]:
    p = cfg.sample.params
    return [
        GenRequest(r.id, r.prompt, p.n, p.temperature, p.top_p, p.max_tokens, prompt_seed(p.seed, r.id))
        for r in rows
    ]


def _record(cfg: PipelineConfig, row: PromptRow, res: GenResult) -> dict:
    s = cfg.sample
    if len(res.texts) != s.params.n:
        raise RuntimeError(
            f"prompt {row.id}: backend returned {len(res.texts)} samples, expected n={s.params.n}"
        )
    responses = []
    for text, reason in zip(res.texts, res.finish_reasons):
        split = split_reasoning(text, s.think_open, s.think_close)
        truncated = split.truncated or (s.length_is_truncated and reason == "length")
        responses.append(
            {
                "text": text,
                "trace": split.trace,
                "answer": split.answer,
                "truncated": truncated,
                "finish_reason": reason,
            }
        )
    return {
        "key": row.id,
        "id": row.id,
        "prompt": row.prompt,
        "kind": row.kind,
        "engine": res.engine,
        "responses": responses,
    }


def run_sample(cfg: PipelineConfig, rows: list[PromptRow], store: StageStore) -> dict:
    run = StageRun(
        store,
        [r.id for r in rows],
        crash_after=cfg.sample.crash_after,
        progress=cfg.progress,
        desc="1/5 sample",
    )
    by_id = {r.id: r for r in rows}
    todo = [by_id[k] for k in run.todo_keys]

    def on_results(results: list[GenResult]) -> None:
        run.write(_record(cfg, by_id[r.prompt_id], r) for r in results)

    try:
        if todo:
            if cfg.sample.backend == "openai":
                asyncio.run(_sample_openai(cfg, todo, on_results))
            elif cfg.sample.num_engines == 0:
                host = EngineHost(
                    cfg.sample.backend,
                    cfg.sample.model,
                    cfg.sample.engine_kwargs,
                    cfg.sample.chat_template_kwargs,
                )
                reqs = _requests(cfg, todo)
                for i in range(0, len(reqs), cfg.sample.batch_size):
                    on_results(host.generate(reqs[i : i + cfg.sample.batch_size]))
            else:
                _sample_ray(cfg, todo, on_results)
    finally:
        run.close()
    records = run.all_records()
    missing = set(by_id) - {r["key"] for r in records}
    if missing:
        raise RuntimeError(
            f"sample stage finished with {len(missing)} prompt(s) unsampled, e.g. {sorted(missing)[:3]}"
        )
    responses = [resp for r in records for resp in r["responses"]]
    return {
        "prompts": len(records),
        "prompts_by_kind": count_by(records, "kind"),
        "responses": len(responses),
        "truncated_responses": sum(1 for x in responses if x["truncated"]),
        "finish_reasons": count_by(responses, "finish_reason"),
        **run.bookkeeping(),
    }


# ---------------------------------------------------------------------------- Ray engines
def _sample_ray(
    cfg: PipelineConfig, todo: list[PromptRow], on_results: Callable[[list[GenResult]], None]
) -> None:
    import ray

    s = cfg.sample
    started = False
    if not ray.is_initialized():
        ray.init(address=s.ray_address, num_cpus=s.ray_num_cpus, include_dashboard=False, log_to_driver=False)
        started = True
    actors = []
    try:
        host_cls = ray.remote(EngineHost)
        actors = [
            host_cls.options(
                num_gpus=s.gpus_per_engine, num_cpus=s.cpus_per_engine, scheduling_strategy="SPREAD"
            ).remote(s.backend, s.model, s.engine_kwargs, s.chat_template_kwargs)
            for _ in range(s.num_engines)
        ]
        reqs = _requests(cfg, todo)
        batches = iter([reqs[i : i + s.batch_size] for i in range(0, len(reqs), s.batch_size)])
        pending: dict = {}

        def submit(actor) -> None:
            batch = next(batches, None)
            if batch is not None:
                pending[actor.generate.remote(batch)] = actor

        for actor in actors:
            submit(actor)
            submit(actor)
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            actor = pending.pop(done[0])
            results = ray.get(done[0])  # an actor failure raises here; finished batches are on disk
            on_results(results)
            submit(actor)
    finally:
        for actor in actors:
            ray.kill(actor)
        if started:
            ray.shutdown()


# ---------------------------------------------------------------------------- OpenAI endpoint
def _choice_text(choice: dict) -> str:
    """Content of a chat choice; a server-side reasoning parser's separate field (vLLM's
    ``reasoning_content`` / ``reasoning``) is put back as ``<think>...</think>``."""
    msg = choice.get("message") or {}
    content = msg.get("content") or ""
    reasoning = msg.get("reasoning_content") or msg.get("reasoning")
    if reasoning:
        return f"<think>\n{reasoning}\n</think>\n\n{content}"
    return content


async def _sample_openai(
    cfg: PipelineConfig, todo: list[PromptRow], on_results: Callable[[list[GenResult]], None]
) -> None:
    from ..guards.http import HTTPClientConfig, OpenAIHTTPClient

    s = cfg.sample
    if not s.urls:
        raise ValueError("sample.backend=openai needs sample.urls")
    api_key = _api_key(s.api_key_env, "sample.api_key_env")
    client = OpenAIHTTPClient(
        HTTPClientConfig(
            urls=tuple(s.urls),
            api_key=api_key,
            concurrency="fixed",
            max_concurrency_per_url=s.max_concurrency,
            timeout_s=s.timeout_s,
            max_retries=s.max_retries,
        )
    )

    async def one(req: GenRequest) -> GenResult:
        payload = {
            "model": s.model,
            "messages": [{"role": "user", "content": req.prompt}],
            "n": req.n,
            "temperature": req.temperature,
            "top_p": req.top_p,
            "max_tokens": req.max_tokens,
            "seed": req.seed,
        }
        if s.chat_template_kwargs:
            payload["chat_template_kwargs"] = s.chat_template_kwargs
        body = await client.post_json("/v1/chat/completions", payload)
        choices = body.get("choices") if isinstance(body, dict) else None
        if not isinstance(choices, list) or len(choices) != req.n:
            got = len(choices) if isinstance(choices, list) else "no"
            raise RuntimeError(
                f"policy server answered {got} choices for prompt {req.prompt_id}, expected n={req.n}"
            )
        choices = sorted(choices, key=lambda c: c.get("index", 0))
        texts = [_choice_text(c) for c in choices]
        return GenResult(
            req.prompt_id, texts, [str(c.get("finish_reason") or "stop") for c in choices], engine=s.model
        )

    try:
        await stream_results(_requests(cfg, todo), one, lambda res: on_results([res]), s.max_concurrency)
    finally:
        await client.aclose()


def _api_key(env_name: str | None, what: str) -> str | None:
    if not env_name:
        return None
    value = os.environ.get(env_name)
    if not value:
        raise ValueError(f"{what} names env var {env_name!r}, which is not set")
    return value
