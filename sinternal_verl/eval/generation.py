"""Generation backends: the data pipeline's sampling engines, a cache in front of them.

* ``transformers`` / ``vllm``: :class:`sinternal_verl.data.engines.EngineHost`, in this
  process (``num_engines: 0``) or as Ray actors (one per engine, kept for every benchmark of
  the model, so a checkpoint is loaded once per run);
* ``openai``: the pipeline's OpenAI-compatible sampler (``data.sample._sample_openai``);
* ``precomputed``: responses read from a file (id, prompt, response), no model at all.

Each engine call covers ``batch_size`` prompts and its samples are written to the cache
before the next call, so a killed run loses at most the batch in flight.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..data.engines import EngineHost, GenRequest, GenResult
from ..data.stage import InjectedCrash
from ..seeding import prompt_seed
from .benchmarks.tables import read_table
from .cache import RecordCache, generation_dir, sample_key
from .config import BenchmarkSpec, EvalConfig, ModelSpec
from .items import Benchmark, EvalItem


@dataclass(frozen=True)
class SamplingPlan:
    n: int
    temperature: float
    top_p: float
    max_tokens: int
    seed: int

    def as_dict(self) -> dict:
        return dict(vars(self))


def plan_for(model: ModelSpec, spec: BenchmarkSpec) -> SamplingPlan:
    g = model.generation

    def pick(override, default):
        return default if override is None else override

    return SamplingPlan(
        pick(spec.n, g.n),
        pick(spec.temperature, g.temperature),
        pick(spec.top_p, g.top_p),
        pick(spec.max_tokens, g.max_tokens),
        g.seed,
    )


@dataclass
class Sample:
    item: EvalItem
    sample: int
    model_prompt: str
    text: str
    finish_reason: str


class CrashCounter:
    """The ``crash_after`` test hook: stop like a real crash after K generated items."""

    def __init__(self, limit: int):
        self.limit = limit
        self.done = 0

    def add(self, n: int) -> None:
        self.done += n
        if 0 <= self.limit <= self.done:
            raise InjectedCrash(f"injected crash after {self.done} generated item(s) (crash_after)")


class EngineSession:
    """One model's local engines, created on first use and kept for all its benchmarks."""

    def __init__(self, model: ModelSpec):
        self.model = model
        self._host: EngineHost | None = None
        self._actors: list = []
        self._started_ray = False

    def _checkpoint(self) -> str:
        return str(self.model.path or self.model.model)

    def generate(self, requests: list[GenRequest], on_results: Callable[[list[GenResult]], None]) -> None:
        m = self.model
        batches = [requests[i : i + m.batch_size] for i in range(0, len(requests), m.batch_size)]
        if m.num_engines == 0:
            if self._host is None:
                self._host = EngineHost(
                    m.backend, self._checkpoint(), dict(m.engine_kwargs), dict(m.chat_template_kwargs)
                )
            for batch in batches:
                on_results(self._host.generate(batch))
            return
        import ray

        if not self._actors:
            if not ray.is_initialized():
                ray.init(
                    address=m.ray_address,
                    num_cpus=m.ray_num_cpus,
                    include_dashboard=False,
                    log_to_driver=False,
                )
                self._started_ray = True
            host_cls = ray.remote(EngineHost)
            self._actors = [
                host_cls.options(
                    num_gpus=m.gpus_per_engine, num_cpus=m.cpus_per_engine, scheduling_strategy="SPREAD"
                ).remote(m.backend, self._checkpoint(), dict(m.engine_kwargs), dict(m.chat_template_kwargs))
                for _ in range(m.num_engines)
            ]
        todo = iter(batches)
        pending: dict = {}

        def submit(actor) -> None:
            batch = next(todo, None)
            if batch is not None:
                pending[actor.generate.remote(batch)] = actor

        for actor in self._actors:  # two batches in flight per engine, as the pipeline does
            submit(actor)
            submit(actor)
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            actor = pending.pop(done[0])
            on_results(ray.get(done[0]))
            submit(actor)

    def close(self) -> None:
        if self._actors:
            import ray

            for a in self._actors:
                ray.kill(a)
            self._actors = []
            if self._started_ray:
                ray.shutdown()
        self._host = None


def _openai_generate(
    model: ModelSpec,
    plan: SamplingPlan,
    rows: list[tuple[str, str]],
    on_results: Callable[[list[GenResult]], None],
) -> None:
    """The pipeline's OpenAI sampler, given a pipeline config that carries this model's settings."""
    from ..data.config import PipelineConfig, SampleConfig, SamplingParamsConfig
    from ..data.prompts import PromptRow
    from ..data.sample import _sample_openai

    pcfg = PipelineConfig(
        progress=False,
        sample=SampleConfig(
            backend="openai",
            model=model.model or "",
            urls=model.urls,
            api_key_env=model.api_key_env,
            max_concurrency=model.max_concurrency,
            timeout_s=model.timeout_s,
            max_retries=model.max_retries,
            chat_template_kwargs=dict(model.chat_template_kwargs),
            params=SamplingParamsConfig(
                n=plan.n,
                temperature=plan.temperature,
                top_p=plan.top_p,
                max_tokens=plan.max_tokens,
                seed=plan.seed,
            ),
        ),
    )
    prompt_rows = [PromptRow(key, prompt, "benign") for key, prompt in rows]
    asyncio.run(_sample_openai(pcfg, prompt_rows, on_results))


class Precomputed:
    """Responses made elsewhere: rows of ``id, response`` (+ optional ``prompt``, ``benchmark``,
    ``sample``). Several rows per id are several samples, in file order unless ``sample`` says."""

    def __init__(self, path: str):
        rows = read_table(path)
        if not rows:
            raise ValueError(f"precomputed file {path} has no rows")
        missing = [c for c in ("id", "response") if c not in rows[0]]
        if missing:
            raise ValueError(
                f"precomputed file {path} lacks column(s) {', '.join(missing)} (needs id, response[, prompt, benchmark])"
            )
        self.path = path
        self.by_key: dict[tuple[str | None, str], list[dict]] = {}
        for n, r in enumerate(rows, 1):
            if not isinstance(r.get("response"), str):
                raise ValueError(  # noqa: TRY004 -- bad data in a file, reported like every other file error
                    f"precomputed file {path}: row {n} has no text in 'response'"
                )
            bench = r.get("benchmark")
            self.by_key.setdefault((str(bench) if bench else None, str(r["id"])), []).append(r)
        for lst in self.by_key.values():
            if all("sample" in r and r["sample"] is not None for r in lst):
                lst.sort(key=lambda r: int(r["sample"]))

    def responses(self, bench: str, item: EvalItem) -> list[dict]:
        return self.by_key.get((bench, item.id)) or self.by_key.get((None, item.id)) or []

    def check(self, bench: Benchmark, n: int) -> list[str]:
        problems = []
        short = [it.id for it in bench.items if len(self.responses(bench.name, it)) < n]
        if short:
            problems.append(
                f"precomputed file {self.path} has fewer than n={n} responses for {len(short)} item(s) of "
                f"{bench.name!r}, e.g. {short[:3]}"
            )
        wrong = [
            it.id
            for it in bench.items
            for r in self.responses(bench.name, it)[:1]
            if r.get("prompt") not in (None, "") and str(r["prompt"]).strip() != it.prompt.strip()
        ]
        if wrong:
            problems.append(
                f"precomputed file {self.path}: the prompt of {len(wrong)} item(s) of {bench.name!r} differs from the "
                f"benchmark's (wrong file?), e.g. id {wrong[0]!r}"
            )
        return problems


def generate_benchmark(
    cfg: EvalConfig,
    model: ModelSpec,
    spec: BenchmarkSpec,
    bench: Benchmark,
    model_prompts: dict[str, str],
    session: EngineSession | None,
    precomputed: Precomputed | None,
    crash: CrashCounter,
) -> list[Sample]:
    """All samples of one (model, benchmark), from the cache where present."""
    plan = plan_for(model, spec)
    if model.backend == "precomputed":
        assert precomputed is not None
        return [
            Sample(it, s, model_prompts[it.id], str(r["response"]), str(r.get("finish_reason") or "stop"))
            for it in bench.items
            for s, r in enumerate(precomputed.responses(bench.name, it)[: plan.n])
        ]
    settings = {
        "backend": model.backend,
        "checkpoint": model.checkpoint,
        "chat": model.chat_template_kwargs,
        **plan.as_dict(),
    }
    cache = RecordCache(generation_dir(cfg.out, model.name, bench.name, settings), "generations")
    keys = {it.id: [sample_key(it.id, model_prompts[it.id], s) for s in range(plan.n)] for it in bench.items}
    todo = [it for it in bench.items if any(k not in cache for k in keys[it.id])]
    by_req = {keys[it.id][0]: it for it in todo}
    bar = None
    if cfg.progress and todo:
        from tqdm import tqdm

        bar = tqdm(
            total=len(bench.items),
            initial=len(bench.items) - len(todo),
            desc=f"generate {model.name}/{bench.name}",
            unit="item",
            leave=False,
        )

    def on_results(results: list[GenResult]) -> None:
        records = []
        for res in results:
            it = by_req[res.prompt_id]
            if len(res.texts) != plan.n:
                raise RuntimeError(
                    f"{model.name}: backend returned {len(res.texts)} samples for {it.id}, expected n={plan.n}"
                )
            for s, (text, reason) in enumerate(zip(res.texts, res.finish_reasons)):
                records.append(
                    {
                        "key": keys[it.id][s],
                        "id": it.id,
                        "sample": s,
                        "text": text,
                        "finish_reason": reason,
                        "engine": res.engine,
                    }
                )
        cache.put_many(records)
        if bar is not None:
            bar.update(len(results))
        crash.add(len(results))

    try:
        if todo:
            if model.backend == "openai":
                _openai_generate(
                    model, plan, [(keys[it.id][0], model_prompts[it.id]) for it in todo], on_results
                )
            else:
                assert session is not None
                reqs = [
                    GenRequest(
                        keys[it.id][0],
                        model_prompts[it.id],
                        plan.n,
                        plan.temperature,
                        plan.top_p,
                        plan.max_tokens,
                        prompt_seed(plan.seed, it.id),
                    )
                    for it in todo
                ]
                session.generate(reqs, on_results)
    finally:
        cache.close()
        if bar is not None:
            bar.close()
    out = []
    for it in bench.items:
        for s, k in enumerate(keys[it.id]):
            rec = cache.get(k)
            if rec is None:
                raise RuntimeError(f"{model.name}/{bench.name}: item {it.id} sample {s} was not generated")
            out.append(Sample(it, s, model_prompts[it.id], rec["text"], rec.get("finish_reason", "stop")))
    return out


def cache_root(cfg: EvalConfig) -> Path:
    return cfg.out / "cache"
