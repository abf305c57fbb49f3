"""Guard replicas as Ray actors: placed across GPU nodes, restarted by Ray, shared by name.

At cluster scale the guard model is itself a workload to place and keep alive. A
:class:`RayGuardPool` owns N :class:`GuardReplica` actors, each holding an in-process engine:

* ``vllm`` -- the production engine (``num_gpus=1`` per replica, ``SPREAD`` over nodes);
  ``vllm`` is imported only inside the replica, so nothing else needs it installed;
* ``transformers`` -- ``generate`` on a local checkpoint (CPU tests, small guards);
* ``rules`` -- the fake guard's visible rules (:mod:`sinternal_verl.testing.fake_openai`),
  so CPU tests exercise the real rendering and parsing with no model;
* ``lexical`` -- the offline lexical judge.

Every model engine renders the per-kind request (the registered kind's ``build_payload``:
chat messages through the tokenizer's chat template, or WildGuard's raw prompt) and the
replica parses with the same registered parser as the HTTP client, so verdicts are identical.
Lengths are checked *per item* before the engine runs: vLLM's offline engine raises for the
whole call when one prompt exceeds ``max_model_len``, which would turn one long answer into a
pool-wide outage; an over-long item gets a ``rejected`` verdict (status 400, as vLLM's server
answers) and the rest of the chunk is judged.

The pool implements :class:`~sinternal_verl.guards.types.Guard`. Items are split into
chunks sent to the replica with the fewest calls in flight; a chunk whose replica dies
(``RayActorError``) or times out is retried on another replica, while Ray restarts the dead
one (``max_restarts``). Replicas are *named* (``<pool>/replica-<i>``) and by default
*detached*, so a reward manager or the reward server elsewhere in the cluster attaches with
:meth:`RayGuardPool.connect`. Only when every attempt fails does ``moderate`` raise
:class:`GuardUnavailableError`.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sinternal_verl.guards.registry import get_kind
from sinternal_verl.guards.types import GuardUnavailableError, GuardVerdict, ModerationItem, ReadyReport

logger = logging.getLogger(__name__)

ENGINES = ("vllm", "transformers", "rules", "lexical")
REPLICA_SEP = "/replica-"


@dataclass(frozen=True)
class RayPoolConfig:
    name: str = "sinternal_guard_pool"
    namespace: str = "sinternal"
    kind: str = "qwen3guard"
    #: model name or local path for the engine; ``None`` = the kind's default model
    model: str | None = None
    engine: str = "vllm"
    num_replicas: int = 1
    num_gpus_per_replica: float = 1.0
    num_cpus_per_replica: float = 1.0
    #: Ray scheduling strategy for replicas: "SPREAD" puts one per node where it can
    scheduling_strategy: str = "SPREAD"
    #: how often Ray restarts a dead replica (-1: forever)
    max_restarts: int = 4
    #: detached replicas outlive the driver that created them (shut down with ``shutdown()``)
    detached: bool = True
    max_new_tokens: int = 128
    #: items per replica call (one engine batch)
    chunk_size: int = 64
    #: tries of one chunk, each on a different replica where possible
    max_attempts: int = 3
    #: seconds one replica call may take before it is retried elsewhere
    call_timeout_s: float = 300.0
    #: seconds to wait for replicas to load at creation / for ``check_ready``
    ready_timeout_s: float = 900.0
    #: concurrent calls one replica accepts (threads in the actor)
    max_concurrency_per_replica: int = 2
    #: passed to the engine (``vllm.LLM(**engine_kwargs)``, ``from_pretrained(**...)``)
    engine_kwargs: dict[str, Any] = field(default_factory=dict)
    #: extra env for replica processes (e.g. ``{"VLLM_USE_V1": "1"}``)
    env_vars: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.engine not in ENGINES:
            raise ValueError(f"unknown engine {self.engine!r}; known: {', '.join(ENGINES)}")
        if self.engine != "lexical" and get_kind(self.kind).local:
            raise ValueError(
                f"engine {self.engine!r} needs a model guard kind, got the local kind {self.kind!r}"
            )
        if self.num_replicas < 1 or self.chunk_size < 1 or self.max_attempts < 1:
            raise ValueError("num_replicas, chunk_size and max_attempts must be >= 1")

    @property
    def model_name(self) -> str:
        return self.model or get_kind(self.kind).default_model


# ---- engines (run inside the replica process) ------------------------------------------------
class _RulesEngine:
    """The fake guard's rules, as text: no model, deterministic. ``service_time_s`` per call
    imitates a model's latency (tests kill replicas while calls are in flight); a payload
    containing ``[engine-error]`` makes the engine raise, as a model engine can."""

    def __init__(self, model: str, service_time_s: float = 0.0, max_model_len: int | None = None, **_: Any):
        self.model = model
        self.service_time_s = service_time_s
        #: context bound for the per-item length check; "tokens" are whitespace words here
        self.max_model_len = max_model_len

    def prompt_lengths(self, payloads: list[dict]) -> list[int]:
        def text(p: dict) -> str:
            if "messages" in p:
                return " ".join(str(m.get("content")) for m in p["messages"])
            return str(p.get("prompt", ""))

        return [len(text(p).split()) for p in payloads]

    def generate(self, payloads: list[dict]) -> list[str]:
        from sinternal_verl.testing.fake_openai import FakeRequest, guard_responder

        if self.service_time_s:
            time.sleep(self.service_time_s)
        out = []
        for p in payloads:
            if "[engine-error]" in str(p.get("messages") or p.get("prompt")):
                raise RuntimeError("rules engine: scripted engine failure")
            endpoint = "chat" if "messages" in p else "completions"
            out.append(
                guard_responder(
                    FakeRequest(endpoint, p.get("model", self.model), p.get("messages"), p.get("prompt"), p)
                )
            )
        return out


class _TransformersEngine:
    """Greedy ``generate`` on a local checkpoint; one prompt at a time (small guards, CPU)."""

    def __init__(self, model: str, **kw: Any):
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.tok = AutoTokenizer.from_pretrained(model)
        self.lm = AutoModelForCausalLM.from_pretrained(model, **kw)
        self.lm.eval()
        self.max_model_len = int(getattr(self.lm.config, "max_position_embeddings", 0)) or None

    def prompt_lengths(self, payloads: list[dict]) -> list[int]:
        return [
            len(
                self.tok(
                    self._text(p), add_special_tokens=bool(p.get("add_special_tokens", "messages" not in p))
                )["input_ids"]
            )
            for p in payloads
        ]

    def _text(self, p: dict) -> str:
        if "messages" in p:
            return self.tok.apply_chat_template(p["messages"], tokenize=False, add_generation_prompt=True)
        return p["prompt"]

    def generate(self, payloads: list[dict]) -> list[str]:
        import torch

        out = []
        for p in payloads:
            enc = self.tok(
                self._text(p),
                return_tensors="pt",
                add_special_tokens=bool(p.get("add_special_tokens", "messages" not in p)),
            )
            with torch.no_grad():
                ids = self.lm.generate(
                    **enc,
                    max_new_tokens=int(p.get("max_tokens", 128)),
                    do_sample=False,
                    pad_token_id=self.tok.pad_token_id or self.tok.eos_token_id,
                )
            out.append(self.tok.decode(ids[0, enc["input_ids"].shape[1] :], skip_special_tokens=True))
        return out


class _VLLMEngine:
    """vLLM in-process (``LLM``). Every payload becomes token ids first (chat messages through
    the model's chat template, WildGuard's raw prompt as is, both without the tokenizer adding
    a second BOS), so lengths can be checked per item and the engine gets exactly the ids."""

    def __init__(self, model: str, **kw: Any):
        from vllm import LLM  # imported here only: the replica is the one place that needs vLLM

        self.llm = LLM(model=model, **kw)
        self.tok = self.llm.get_tokenizer()
        self.max_model_len = int(self.llm.llm_engine.model_config.max_model_len)
        self._ids: dict[int, list[int]] = {}

    def _token_ids(self, p: dict) -> list[int]:
        if "messages" in p:
            text = self.tok.apply_chat_template(p["messages"], tokenize=False, add_generation_prompt=True)
            return list(self.tok.encode(text, add_special_tokens=False))
        return list(self.tok.encode(p["prompt"], add_special_tokens=bool(p.get("add_special_tokens", False))))

    def prompt_lengths(self, payloads: list[dict]) -> list[int]:
        self._ids = {id(p): self._token_ids(p) for p in payloads}
        return [len(self._ids[id(p)]) for p in payloads]

    def generate(self, payloads: list[dict]) -> list[str]:
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        if not payloads:
            return []
        sp = SamplingParams(temperature=0.0, max_tokens=int(payloads[0].get("max_tokens", 128)))
        prompts = [
            TokensPrompt(prompt_token_ids=self._ids.get(id(p)) or self._token_ids(p)) for p in payloads
        ]
        self._ids = {}
        return [r.outputs[0].text or "" for r in self.llm.generate(prompts, sp, use_tqdm=False)]


_ENGINE_CLASSES = {"rules": _RulesEngine, "transformers": _TransformersEngine, "vllm": _VLLMEngine}


class GuardReplica:
    """One guard replica (wrapped by ``ray.remote`` at creation). Renders, generates, parses."""

    def __init__(self, config: RayPoolConfig, index: int):
        self.config = config
        self.index = index
        self.started_at = time.time()
        self.calls = 0
        if config.engine == "lexical":
            from sinternal_verl.guards import build_guard
            from sinternal_verl.guards.config import GuardConfig

            self._lexical = build_guard(GuardConfig(kind="lexical"))
            self._spec = None
            self._engine = None
        else:
            self._lexical = None
            self._spec = get_kind(config.kind)
            self._engine = _ENGINE_CLASSES[config.engine](config.model_name, **config.engine_kwargs)

    def info(self) -> dict[str, Any]:
        import ray

        ctx = ray.get_runtime_context()
        return {
            "index": self.index,
            "node_id": ctx.get_node_id(),
            "pid": os.getpid(),
            "kind": self.config.kind,
            "engine": self.config.engine,
            "model": self.config.model_name,
            "started_at": self.started_at,
            "calls": self.calls,
            "gpu_ids": [str(g) for g in ray.get_gpu_ids()],
        }

    def _source(self) -> str:
        return f"ray://{self.config.namespace}/{self.config.name}{REPLICA_SEP}{self.index}"

    def moderate(self, items: list[ModerationItem]) -> list[GuardVerdict]:
        self.calls += 1
        if self._lexical is not None:
            return asyncio.run(self._lexical.moderate(items))
        spec, cfg = self._spec, self.config
        payloads = [spec.build_payload(it, cfg.model_name, cfg.max_new_tokens, False) for it in items]
        source = self._source()
        verdicts: list[GuardVerdict | None] = [None] * len(items)
        bound = getattr(self._engine, "max_model_len", None)
        if bound:
            for i, n in enumerate(self._engine.prompt_lengths(payloads)):
                if n + 1 > bound:  # vLLM needs room for one output token
                    verdicts[i] = _too_long(n, bound, source)
        todo = [i for i, v in enumerate(verdicts) if v is None]
        if todo:
            texts = self._engine.generate([payloads[i] for i in todo])
            for i, text in zip(todo, texts):
                verdicts[i] = spec.parse(text, items[i], source)
        return [v for v in verdicts if v is not None]


def _too_long(n: int, bound: int, source: str) -> GuardVerdict:
    message = (
        f"This model's maximum context length is {bound} tokens. However, your prompt contains {n} input "
        "tokens, which exceeds this limit (checked per item by the replica)"
    )
    return GuardVerdict(
        label=None,
        parse_ok=False,
        source=source,
        rejected=True,
        status=400,
        message=message,
        extra={"parse_error": f"guard rejected this item: {message}", "http_status": 400},
    )


# ---- the pool (driver side, implements Guard) --------------------------------------------------
@dataclass
class PoolStats:
    requests: int = 0
    items: int = 0
    chunks: int = 0
    retries: int = 0
    errors: int = 0
    in_flight: int = 0
    #: items a replica refused to judge (over-long input)
    rejected: int = 0


def _replica_name(name: str, i: int) -> str:
    return f"{name}{REPLICA_SEP}{i}"


class RayGuardPool:
    """A :class:`Guard` backed by named Ray actors. Build with :meth:`create` or :meth:`connect`."""

    def __init__(self, config: RayPoolConfig, handles: list[Any]):
        if not handles:
            raise ValueError("a RayGuardPool needs at least one replica")
        self.config = config
        self.kind = config.kind
        self.handles = list(handles)
        self._load = [0] * len(handles)
        self._stats = PoolStats()

    @property
    def address(self) -> str:
        return f"ray://{self.config.namespace}/{self.config.name}"

    # -- construction ----------------------------------------------------------------------
    @classmethod
    def create(cls, config: RayPoolConfig, *, wait: bool = True) -> RayGuardPool:
        """Start ``config.num_replicas`` replicas (reusing live ones with the same names)."""
        import ray

        actor_cls = ray.remote(GuardReplica)
        handles = []
        for i in range(config.num_replicas):
            opts: dict[str, Any] = dict(
                name=_replica_name(config.name, i),
                namespace=config.namespace,
                get_if_exists=True,
                num_gpus=config.num_gpus_per_replica,
                num_cpus=config.num_cpus_per_replica,
                max_restarts=config.max_restarts,
                max_task_retries=0,  # the pool retries on *other* replicas instead
                max_concurrency=config.max_concurrency_per_replica,
                scheduling_strategy=config.scheduling_strategy,
            )
            if config.detached:
                opts["lifetime"] = "detached"
            if config.env_vars:
                opts["runtime_env"] = {"env_vars": dict(config.env_vars)}
            handles.append(actor_cls.options(**opts).remote(config, i))
        pool = cls(config, handles)
        if wait:
            ray.get([h.info.remote() for h in handles], timeout=config.ready_timeout_s)
        return pool

    @classmethod
    def connect(
        cls, name: str = RayPoolConfig.name, namespace: str = RayPoolConfig.namespace, **overrides: Any
    ) -> RayGuardPool:
        """Attach to a running pool by name (any process in the same Ray cluster).

        The replicas' own config (kind, engine, model) is read back from a live replica;
        ``overrides`` change client-side settings only (``chunk_size``, ``max_attempts``,
        ``call_timeout_s``)."""
        import ray

        names = sorted(
            (
                a["name"]
                for a in ray.util.list_named_actors(all_namespaces=True)
                if a.get("namespace") == namespace and a["name"].startswith(name + REPLICA_SEP)
            ),
            key=lambda n: int(n.rsplit("-", 1)[-1]) if n.rsplit("-", 1)[-1].isdigit() else 0,
        )
        if not names:
            raise GuardUnavailableError(
                f"ray://{namespace}/{name}", "no replicas with that name are running", 0
            )
        handles = [ray.get_actor(n, namespace=namespace) for n in names]
        base: RayPoolConfig | None = None
        for h in handles:
            try:
                info = ray.get(
                    h.info.remote(), timeout=overrides.get("ready_timeout_s", RayPoolConfig.ready_timeout_s)
                )
            except Exception:  # noqa: BLE001 - try the next replica
                continue
            base = RayPoolConfig(
                name=name,
                namespace=namespace,
                kind=info["kind"],
                engine=info["engine"],
                model=info["model"],
                num_replicas=len(handles),
            )
            break
        if base is None:
            raise GuardUnavailableError(f"ray://{namespace}/{name}", "no replica answered", len(handles))
        return cls(dataclasses.replace(base, **overrides), handles)

    # -- Guard interface ---------------------------------------------------------------------
    def _pick(self, exclude: set[int]) -> int:
        candidates = [i for i in range(len(self.handles)) if i not in exclude] or list(
            range(len(self.handles))
        )
        return min(candidates, key=lambda i: self._load[i])

    async def _call(self, i: int, chunk: list[ModerationItem]) -> list[GuardVerdict]:
        ref = self.handles[i].moderate.remote(chunk)
        self._load[i] += 1
        self._stats.in_flight += 1
        try:
            return await asyncio.wait_for(
                asyncio.wrap_future(ref.future()), timeout=self.config.call_timeout_s
            )
        finally:
            self._load[i] -= 1
            self._stats.in_flight -= 1

    async def _chunk(self, chunk: list[ModerationItem]) -> list[GuardVerdict]:
        import ray.exceptions as rex

        tried: set[int] = set()
        last = ""
        for attempt in range(self.config.max_attempts):
            i = self._pick(tried)
            tried.add(i)
            try:
                verdicts = await self._call(i, chunk)
            # RayTaskError: the engine raised inside the replica (e.g. a CUDA error); it is a
            # guard failure like a dead replica, not a crash of the caller
            except (TimeoutError, rex.RayActorError, rex.ActorUnavailableError, rex.RayTaskError) as exc:
                last = f"replica {i}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
                logger.warning("guard replica %s failed (%s); retrying the chunk on another replica", i, last)
                if attempt + 1 < self.config.max_attempts:
                    self._stats.retries += 1
                continue
            if len(verdicts) != len(chunk):
                raise GuardUnavailableError(
                    self.address,
                    f"replica {i} returned {len(verdicts)} verdicts for {len(chunk)} items",
                    attempt + 1,
                )
            return verdicts
        self._stats.errors += 1
        raise GuardUnavailableError(self.address, last, self.config.max_attempts)

    async def moderate(self, items: Sequence[ModerationItem]) -> list[GuardVerdict]:
        items = list(items)
        if not items:
            return []
        self._stats.requests += 1
        self._stats.items += len(items)
        n = self.config.chunk_size
        chunks = [items[k : k + n] for k in range(0, len(items), n)]
        self._stats.chunks += len(chunks)
        tasks = [asyncio.ensure_future(self._chunk(c)) for c in chunks]
        try:
            parts = await asyncio.gather(*tasks)
        except BaseException:
            for t in tasks:
                t.cancel()
            raise
        verdicts = [v for part in parts for v in part]
        self._stats.rejected += sum(1 for v in verdicts if v.rejected)
        return verdicts

    def stats(self) -> dict[str, float]:
        """Flat counters, the same shape as every guard's ``stats()``."""
        return {k: float(v) for k, v in dataclasses.asdict(self._stats).items()}

    async def check_ready(self) -> ReadyReport:
        async def probe(i: int) -> str:
            try:
                await asyncio.wait_for(
                    asyncio.wrap_future(self.handles[i].info.remote().future()),
                    timeout=min(30.0, self.config.ready_timeout_s),
                )
                return "ok"
            except Exception as exc:  # noqa: BLE001 - reported per replica
                return f"{type(exc).__name__}: {exc}"

        results = await asyncio.gather(*(probe(i) for i in range(len(self.handles))))
        detail = {f"{self.address}{REPLICA_SEP}{i}": r for i, r in enumerate(results)}
        # every replica, as the HTTP client requires of every URL: a run should not start with
        # a replica that fails (Ray restarts it; ask again once it is back)
        return ReadyReport(ready=all(r == "ok" for r in results), detail=detail)

    async def aclose(self) -> None:
        """Detach (the replicas keep serving others); use :meth:`shutdown` to stop them."""

    def replica_info(self, timeout_s: float = 60.0) -> list[dict[str, Any]]:
        import ray

        return ray.get([h.info.remote() for h in self.handles], timeout=timeout_s)

    def shutdown(self, wait_polls: int = 100) -> None:
        """Kill every replica for good (no restart) and return once each is dead.

        ``ray.kill`` only *requests* the kill: a call made right after it can still be answered.
        Each replica is polled (at most ``wait_polls`` times) until Ray reports it dead, so
        after ``shutdown`` the pool is really gone."""
        import time

        import ray
        from ray.exceptions import GetTimeoutError, RayActorError

        for h in self.handles:
            try:
                ray.kill(h, no_restart=True)
            except Exception:  # noqa: BLE001 - already gone
                continue
            for _ in range(wait_polls):
                try:
                    ray.get(h.info.remote(), timeout=5)
                except (RayActorError, GetTimeoutError):
                    break
                time.sleep(0.05)


# ---- ``python -m sinternal_verl.guards.ray_pool``: bring a pool up on a cluster ------------------
def main(argv: list[str] | None = None) -> int:
    import json

    import ray

    d = RayPoolConfig()
    p = argparse.ArgumentParser(
        description="start (or reuse) a named guard replica pool on the current Ray cluster"
    )
    p.add_argument("--address", default=os.environ.get("RAY_ADDRESS", "auto"))
    p.add_argument("--name", default=d.name)
    p.add_argument("--namespace", default=d.namespace)
    p.add_argument("--kind", default=os.environ.get("SINTERNAL_GUARD_KIND", d.kind))
    p.add_argument("--model", default=os.environ.get("SINTERNAL_GUARD_MODEL"))
    p.add_argument("--engine", default=d.engine, choices=ENGINES)
    p.add_argument("--replicas", type=int, default=d.num_replicas)
    p.add_argument("--gpus-per-replica", type=float, default=d.num_gpus_per_replica)
    p.add_argument("--cpus-per-replica", type=float, default=d.num_cpus_per_replica)
    p.add_argument("--max-restarts", type=int, default=d.max_restarts)
    p.add_argument("--engine-kwargs", default="{}", help="JSON, e.g. '{\"max_model_len\": 32768}'")
    p.add_argument("--shutdown", action="store_true", help="kill the named pool instead")
    a = p.parse_args(argv)
    ray.init(address=a.address, namespace=a.namespace, log_to_driver=False)
    if a.shutdown:
        RayGuardPool.connect(a.name, a.namespace).shutdown()
        print(f"pool {a.name} shut down")
        return 0
    cfg = RayPoolConfig(
        name=a.name,
        namespace=a.namespace,
        kind=a.kind,
        model=a.model,
        engine=a.engine,
        num_replicas=a.replicas,
        num_gpus_per_replica=a.gpus_per_replica,
        num_cpus_per_replica=a.cpus_per_replica,
        max_restarts=a.max_restarts,
        engine_kwargs=json.loads(a.engine_kwargs),
        detached=True,
    )
    pool = RayGuardPool.create(cfg)
    for info in pool.replica_info():
        print(json.dumps({k: info[k] for k in ("index", "node_id", "pid", "gpu_ids", "model")}))
    print(f"pool {pool.address} ready with {len(pool.handles)} replica(s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
