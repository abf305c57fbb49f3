"""A transformers rollout for verl (``actor_rollout_ref.rollout.name=hf``): GRPO without vLLM/SGLang.

verl 0.9.1's trainers only generate through async rollout *servers* (a ``RolloutReplica`` that
launches Ray actors answering ``generate(prompt_ids, sampling_params, request_id)``), and only
vLLM, SGLang and TensorRT-LLM are registered. None runs on a CPU. This module provides the same
three pieces on top of ``transformers``:

- :class:`HFRolloutServer`, the Ray actor verl's agent loop calls. It coalesces requests that
  arrive together into one left-padded ``model.generate`` call (grouped by sampling settings),
  returns token ids and per-token log-probs, and loads new weights from the actor.
- :class:`HFReplica`, the ``RolloutReplica`` that starts one server per replica next to the
  training workers (hybrid mode), registered in ``RolloutReplicaRegistry`` as ``hf``.
- :class:`HFServerAdapter`, the ``BaseRollout`` living in each training worker; verl hands it the
  actor's weights after every step and it pushes them to its server.

Log-probs follow vLLM's default ``logprobs_mode=processed_logprobs``: log-softmax of the logits
divided by the temperature (before top-k/top-p), which is also what verl's actor computes.

Sampling is seeded per request, as vLLM's per-request ``seed`` is: each request draws its own
noise (the Gumbel-max trick, :class:`SeededGumbel`), so what it samples does not depend on
which requests arrived in the same batching window. The seed is the request's ``seed``
sampling parameter if it has one; with verl's ``rollout.full_determinism`` a hash of
``rollout.seed``, the replica, the training step, the request id, the prompt and a count of
alike requests (``HFRolloutServer._deterministic_seed``); else a draw from torch's global
generator (random unless the caller seeded it).
"""

from __future__ import annotations

import asyncio
import collections
import logging
import operator
import os
import time
from dataclasses import dataclass, field
from typing import Any

import ray
import torch

from ..seeding import stable_seed

logger = logging.getLogger("sinternal_verl.cpu.hf_rollout")

ROLLOUT_NAME = "hf"

#: sampling keys verl's agent loop sends and this rollout honours
SUPPORTED_SAMPLING_KEYS = frozenset(
    {
        "temperature",
        "top_p",
        "top_k",
        "repetition_penalty",
        "logprobs",
        "max_tokens",
        "max_new_tokens",
        "ignore_eos",
        "seed",
    }
)
#: keys accepted and ignored on purpose (no effect on what a CPU rollout returns)
IGNORED_SAMPLING_KEYS = frozenset({"n", "detokenize", "skip_special_tokens", "spaces_between_special_tokens"})


@dataclass(frozen=True)
class HFRolloutOptions:
    """Knobs of the batching server (``+actor_rollout_ref.rollout.engine_kwargs.hf.<name>=...``)."""

    #: most requests coalesced into one ``generate`` call
    max_batch_size: int = 64
    #: how long the batcher waits for more requests after the first one arrives (seconds)
    batch_wait_s: float = 0.02
    #: torch intra-op threads for generation (0: leave torch's default)
    num_threads: int = 0
    #: model dtype for generation
    dtype: str = "float32"
    #: attention implementation passed to ``from_pretrained``
    attn_implementation: str = "sdpa"

    @classmethod
    def from_rollout_config(cls, config: Any) -> HFRolloutOptions:
        engine_kwargs = _get(config, "engine_kwargs", {}) or {}
        raw = dict(_get(engine_kwargs, "hf", {}) or {})
        unknown = set(raw) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(
                f"unknown hf rollout option(s) {sorted(unknown)}; known: {sorted(cls.__dataclass_fields__)}"
            )
        return cls(**raw)


def _get(obj: Any, key: str, default: Any = None) -> Any:
    if obj is None:
        return default
    if isinstance(obj, dict):
        return obj.get(key, default)
    getter = getattr(obj, "get", None)
    if callable(getter):
        try:
            return getter(key, default)
        except Exception:  # noqa: BLE001 - dataclass .get() may not take a default
            pass
    return getattr(obj, key, default)


@dataclass(frozen=True)
class SamplingSettings:
    """The part of a request's sampling parameters that must be equal within one ``generate`` call."""

    temperature: float
    top_p: float
    top_k: int
    repetition_penalty: float
    ignore_eos: bool

    @property
    def greedy(self) -> bool:
        return self.temperature <= 0.0


@dataclass
class GenerationRequest:
    prompt_ids: list[int]
    max_tokens: int
    settings: SamplingSettings
    want_logprobs: bool
    request_id: str
    #: seeds this request's sampling noise (unused when greedy)
    seed: int = 0
    future: asyncio.Future = field(repr=False, default=None)  # type: ignore[assignment]


def parse_sampling_params(
    sampling_params: dict[str, Any],
    *,
    prompt_len: int,
    response_length: int,
    prompt_length: int,
    max_model_len: int,
) -> tuple[SamplingSettings, int, bool]:
    """Map verl's sampling dict to (settings, max_tokens, want_logprobs), like the vLLM server does.

    Unknown keys are an error (a silently ignored ``stop`` would change what the model returns).
    """
    params = dict(sampling_params)
    unknown = set(params) - SUPPORTED_SAMPLING_KEYS - IGNORED_SAMPLING_KEYS
    if unknown:
        raise ValueError(f"hf rollout does not support sampling parameter(s) {sorted(unknown)}")
    max_possible = max_model_len - prompt_len
    if max_possible < 1:
        raise ValueError(
            f"Prompt length ({prompt_len}) leaves no room to generate within the maximum context length "
            f"({max_model_len}); need at least 1 token of headroom."
        )
    if "max_tokens" in params:
        max_tokens = int(params["max_tokens"])
    elif "max_new_tokens" in params:
        max_tokens = int(params["max_new_tokens"])
    else:
        max_tokens = min(response_length, prompt_length + response_length - prompt_len)
    max_tokens = max(1, min(max_tokens, max_possible))
    top_k = params.get("top_k", -1)
    top_k = -1 if top_k is None else int(top_k)
    top_p = params.get("top_p", 1.0)
    settings = SamplingSettings(
        temperature=float(params.get("temperature", 1.0) or 0.0),
        top_p=1.0 if top_p is None else float(top_p),
        top_k=top_k,
        repetition_penalty=float(params.get("repetition_penalty", 1.0) or 1.0),
        ignore_eos=bool(params.get("ignore_eos", False)),
    )
    if not 0.0 < settings.top_p <= 1.0:
        raise ValueError(f"top_p must be in (0, 1], got {settings.top_p}")
    return settings, max_tokens, bool(params.get("logprobs", False))


def parse_seed(value: Any) -> int | None:
    """A request's ``seed`` sampling parameter: ``None`` (unseeded) or an integer that torch can
    seed a generator with (``[-2**63, 2**64)``); an integral float (``7.0`` from JSON) counts.

    Checked on arrival, like prompt token ids: a seed torch rejects would fail inside the batch
    and take every request batched with it down; a ``1.5`` silently cut to ``1`` would make two
    different seeds sample alike."""
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    not_an_integer = ValueError(f"sampling parameter seed must be an integer, got {value!r}")
    if isinstance(value, bool):  # ``operator.index`` takes it; no one means True as a seed
        raise not_an_integer
    try:
        seed = operator.index(value)  # any integer type, numpy's too
    except TypeError:
        raise not_an_integer from None
    if not -(2**63) <= seed < 2**64:
        raise ValueError(f"sampling parameter seed must be in [-2**63, 2**64), got {seed}")
    return seed


class SeededGumbel:
    """A ``transformers`` logits processor that adds Gumbel noise drawn from one generator per row.

    The argmax of ``logits + Gumbel noise`` is a sample from ``softmax(logits)`` (the Gumbel-max
    trick), so greedy decoding over warped logits plus this noise samples as ``do_sample`` would.
    Why not ``do_sample``: it draws every row from torch's one global generator, so a request's
    sample depends on the requests it was batched with, which depends on arrival timing. Here
    each row's draws come from its own seed only."""

    def __init__(self, seeds: list[int]):
        self.generators = [torch.Generator().manual_seed(s) for s in seeds]

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        vocab = scores.shape[-1]
        u = torch.stack([torch.rand(vocab, generator=g) for g in self.generators])
        tiny = torch.finfo(u.dtype).tiny
        return scores + (-torch.log(-torch.log(u.clamp_(min=tiny)))).to(scores.dtype)


class RejectNaN:
    """A logits processor that fails the batch when the model's logits contain NaN (broken
    weights): greedy decoding would otherwise return token 0 for it, a silent answer."""

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        if torch.isnan(scores).any():
            raise RuntimeError("the model's logits contain NaN: nothing to decode")
        return scores


class HFGenerator:
    """Batched generation + log-probs with a ``transformers`` causal LM (no Ray, testable alone)."""

    def __init__(
        self, model_path: str, options: HFRolloutOptions = HFRolloutOptions(), *, trust_remote_code=False
    ):
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if options.num_threads > 0:
            torch.set_num_threads(options.num_threads)
        self.options = options
        self.tokenizer = AutoTokenizer.from_pretrained(model_path, trust_remote_code=trust_remote_code)
        self.model = AutoModelForCausalLM.from_pretrained(
            model_path,
            dtype=getattr(torch, options.dtype),
            attn_implementation=options.attn_implementation,
            trust_remote_code=trust_remote_code,
        ).eval()
        gen_cfg = self.model.generation_config
        eos = gen_cfg.eos_token_id if gen_cfg.eos_token_id is not None else self.tokenizer.eos_token_id
        self.eos_ids: set[int] = set(eos if isinstance(eos, (list, tuple)) else [eos]) - {None}
        pad = self.tokenizer.pad_token_id
        self.pad_id: int = pad if pad is not None else min(self.eos_ids)
        self.weight_version = 0
        self.vocab_size: int = int(self.model.get_input_embeddings().weight.shape[0])

    @torch.no_grad()
    def generate(self, requests: list[GenerationRequest]) -> list[tuple[list[int], list[float] | None]]:
        """One left-padded ``generate`` for requests sharing :class:`SamplingSettings`."""
        if not requests:
            return []
        settings = requests[0].settings
        assert all(r.settings == settings for r in requests), "one generate call per sampling setting"
        width = max(len(r.prompt_ids) for r in requests)
        input_ids = torch.full((len(requests), width), self.pad_id, dtype=torch.long)
        attention = torch.zeros((len(requests), width), dtype=torch.long)
        for i, r in enumerate(requests):
            input_ids[i, width - len(r.prompt_ids) :] = torch.tensor(r.prompt_ids, dtype=torch.long)
            attention[i, width - len(r.prompt_ids) :] = 1
        from transformers import (
            LogitsProcessorList,
            TemperatureLogitsWarper,
            TopKLogitsWarper,
            TopPLogitsWarper,
        )

        # Always greedy over processed logits: sampling is the warpers do_sample would apply,
        # then per-row noise (SeededGumbel), so no row draws from the global generator.
        processors: list[Any] = [RejectNaN()]
        if not settings.greedy:
            processors.append(TemperatureLogitsWarper(settings.temperature))
            if settings.top_k > 0:
                processors.append(TopKLogitsWarper(settings.top_k))
            if settings.top_p < 1.0:
                processors.append(TopPLogitsWarper(settings.top_p))
            processors.append(SeededGumbel([r.seed for r in requests]))
        kwargs: dict[str, Any] = dict(
            max_new_tokens=max(r.max_tokens for r in requests),
            do_sample=False,
            temperature=None,
            top_p=None,
            top_k=None,
            logits_processor=LogitsProcessorList(processors),
            pad_token_id=self.pad_id,
            eos_token_id=None if settings.ignore_eos else sorted(self.eos_ids),
            return_dict_in_generate=True,
            output_logits=True,
            repetition_penalty=settings.repetition_penalty,
        )
        out = self.model.generate(input_ids=input_ids, attention_mask=attention, **kwargs)
        new_tokens = out.sequences[:, width:]
        logits = torch.stack(out.logits, dim=1).float() if out.logits else None  # (B, T, V) raw logits
        results: list[tuple[list[int], list[float] | None]] = []
        for i, r in enumerate(requests):
            ids = new_tokens[i].tolist()[: r.max_tokens]
            if not settings.ignore_eos:
                cut = next((j + 1 for j, t in enumerate(ids) if t in self.eos_ids), len(ids))
                ids = ids[:cut]
            lps = None
            if r.want_logprobs and logits is not None:
                scale = settings.temperature if not settings.greedy else 1.0
                row = torch.log_softmax(logits[i, : len(ids)] / scale, dim=-1)
                lps = row.gather(-1, torch.tensor(ids, dtype=torch.long).unsqueeze(-1)).squeeze(-1).tolist()
            results.append((ids, lps))
        return results

    def load_weights(self, named_tensors: dict[str, torch.Tensor]) -> int:
        """Copy the actor's weights in; every name must belong to the model. Returns tensors loaded."""
        # remove_duplicate=False: tied weights (lm_head / embed_tokens) are reachable under both names
        params = dict(self.model.named_parameters(remove_duplicate=False))
        params.update(dict(self.model.named_buffers(remove_duplicate=False)))
        unknown = [n for n in named_tensors if n not in params]
        if unknown:
            raise KeyError(f"weights for unknown parameter(s) {unknown[:5]} (total {len(unknown)})")
        for name, tensor in named_tensors.items():  # validate everything before touching the model
            if tuple(params[name].shape) != tuple(tensor.shape):
                raise ValueError(
                    f"shape mismatch for {name}: {tuple(tensor.shape)} vs {tuple(params[name].shape)}"
                )
        with torch.no_grad():
            for name, tensor in named_tensors.items():
                target = params[name]
                target.copy_(tensor.to(dtype=target.dtype, device=target.device))
        self.weight_version += 1
        return len(named_tensors)


class HFRolloutServer:
    """Ray actor answering verl's token-in-token-out rollout calls with a batching ``transformers`` model."""

    def __init__(self, config: Any, model_config: Any, replica_rank: int = 0, node_rank: int = 0, **_: Any):
        from verl.utils.config import omega_conf_to_dataclass
        from verl.workers.config import HFModelConfig, RolloutConfig

        self.config = omega_conf_to_dataclass(config, dataclass_type=RolloutConfig)
        self.model_config = omega_conf_to_dataclass(model_config, dataclass_type=HFModelConfig)
        self.replica_rank = replica_rank
        self.node_rank = node_rank
        self.options = HFRolloutOptions.from_rollout_config(self.config)
        self.generator = HFGenerator(
            self.model_config.local_path, self.options, trust_remote_code=self.model_config.trust_remote_code
        )
        self.max_model_len = int(
            self.config.max_model_len or (self.config.prompt_length + self.config.response_length)
        )
        self.global_steps: int | None = None
        self._queue: asyncio.Queue | None = None
        self._worker: asyncio.Task | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._paused: asyncio.Event | None = None  # set == generation allowed
        self._lock: asyncio.Lock | None = None
        self.stats = {"requests": 0, "generate_calls": 0, "weight_updates": 0}
        #: under full_determinism: requests seen this step per (request id, prompt), the n
        #: samples of one prompt arrive alike (``_deterministic_seed``)
        self._alike: collections.Counter[tuple[str, tuple[int, ...]]] = collections.Counter()
        self._alike_step: int | None = None

    # verl's replica calls ------------------------------------------------------------------
    def get_server_address(self) -> tuple[str, int]:
        # no HTTP endpoint: verl reaches this server through its Ray handle only
        return ray.util.get_node_ip_address(), 0

    async def generate(
        self,
        prompt_ids: list[int],
        sampling_params: dict[str, Any],
        request_id: str,
        image_data: list[Any] | None = None,
        video_data: list[Any] | None = None,
        **kwargs: Any,
    ):
        from verl.workers.rollout.replica import TokenOutput

        if image_data or video_data or kwargs.get("audio_data"):
            raise NotImplementedError("hf rollout is text-only")
        prompt_ids = [int(t) for t in prompt_ids]
        vocab = self.generator.vocab_size
        bad = [t for t in prompt_ids if not 0 <= t < vocab]
        if bad:  # rejected here, so one bad request cannot fail the batch it would have joined
            raise ValueError(f"prompt token id(s) {bad[:5]} outside the model's vocabulary (size {vocab})")
        settings, max_tokens, want_lp = parse_sampling_params(
            sampling_params,
            prompt_len=len(prompt_ids),
            response_length=self.config.response_length,
            prompt_length=self.config.prompt_length,
            max_model_len=self.max_model_len,
        )
        seed = parse_seed(sampling_params.get("seed"))
        self._ensure_worker()
        await self._paused.wait()
        if seed is None and self.config.full_determinism:
            seed = self._deterministic_seed(request_id, prompt_ids)
        if seed is None:
            seed = int(torch.randint(0, 2**62, (1,)).item())
        req = GenerationRequest(prompt_ids, max_tokens, settings, want_lp, request_id, seed)
        req.future = asyncio.get_running_loop().create_future()
        self.stats["requests"] += 1
        await self._queue.put(req)
        token_ids, log_probs = await req.future
        return TokenOutput(
            token_ids=token_ids,
            log_probs=log_probs,
            stop_reason="completed",
            extra_fields={"global_steps": self.global_steps},
        )

    def _deterministic_seed(self, request_id: str, prompt_ids: list[int]) -> int:
        """A request's seed under verl's full_determinism: a stable hash of ``rollout.seed``, the
        replica, the step, the request id, the prompt and how many alike requests came before
        it this step.

        Why the count: verl's request ids do not tell a prompt's n samples apart (its v1 agent
        loop sends "det-0" for every request), so without it a GRPO group's samples shared a
        seed, came out identical, and every advantage was zero (measured: the demo's RL moved
        nothing). Alike requests are interchangeable, so which of them gets which count does
        not change the group; verl's agent loop sends them in session order."""
        if self.global_steps != self._alike_step:
            self._alike.clear()
            self._alike_step = self.global_steps
        prompt = tuple(prompt_ids)
        k = self._alike[request_id, prompt]
        self._alike[request_id, prompt] += 1
        return stable_seed(self.config.seed, self.replica_rank, self.global_steps, request_id, prompt, k)

    def _ensure_loop_state(self) -> None:
        """Queue, lock and batch worker belong to the running loop (Ray has one; tests and
        benchmarks may run several loops in turn), so rebuild them when the loop changes."""
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            self._loop = loop
            self._queue = asyncio.Queue()
            self._lock = asyncio.Lock()
            self._paused = asyncio.Event()
            self._paused.set()
            self._worker = None

    def _ensure_worker(self) -> None:
        self._ensure_loop_state()
        if self._worker is None or self._worker.done():
            self._worker = asyncio.get_running_loop().create_task(self._batch_loop())

    async def _batch_loop(self) -> None:
        """Coalesce what arrives within ``batch_wait_s`` into per-setting padded ``generate`` calls."""
        assert self._queue is not None and self._lock is not None
        while True:
            batch = [await self._queue.get()]
            deadline = time.monotonic() + self.options.batch_wait_s
            while len(batch) < self.options.max_batch_size:
                timeout = deadline - time.monotonic()
                if timeout <= 0:
                    break
                try:
                    batch.append(await asyncio.wait_for(self._queue.get(), timeout))
                except TimeoutError:
                    break
            groups: dict[SamplingSettings, list[GenerationRequest]] = {}
            for r in batch:
                groups.setdefault(r.settings, []).append(r)
            for group in groups.values():
                logger.debug("hf rollout: one generate call for %d request(s)", len(group))
                async with self._lock:  # weights do not change under a running generate
                    try:
                        self.stats["generate_calls"] += 1
                        results = await asyncio.to_thread(self.generator.generate, group)
                    except Exception as exc:  # noqa: BLE001 - each caller gets the error
                        for r in group:
                            if not r.future.done():
                                r.future.set_exception(exc)
                        continue
                for r, res in zip(group, results):
                    if not r.future.done():
                        r.future.set_result(res)

    async def update_weights(
        self, named_tensors: dict[str, torch.Tensor], global_steps: int | None = None
    ) -> int:
        self._ensure_loop_state()
        async with self._lock:
            n = await asyncio.to_thread(self.generator.load_weights, named_tensors)
        self.stats["weight_updates"] += 1
        if global_steps is not None:
            self.global_steps = global_steps
        return n

    async def set_global_steps(self, global_steps: int) -> None:
        self.global_steps = global_steps

    def get_stats(self) -> dict[str, int]:
        return dict(self.stats, weight_version=self.generator.weight_version)

    # memory management: nothing to free or restore on a CPU --------------------------------
    async def wake_up(self, tags: list[str] | None = None) -> None:
        return None

    async def sleep(self) -> None:
        return None

    async def clear_kv_cache(self) -> None:
        return None  # generate() keeps no cache between calls

    async def release_kv_cache(self) -> None:
        return None

    async def resume_kv_cache(self) -> None:
        return None

    async def abort_all_requests(self, reset_prefix_cache: bool = True, reject_request: bool = False) -> dict:
        # requests in flight finish (they are short on a CPU); new ones wait for resume_generation
        self._ensure_loop_state()
        self._paused.clear()
        return {"aborted_count": 0, "request_ids": []}

    async def resume_generation(self) -> None:
        self._ensure_loop_state()
        self._paused.set()

    async def start_profile(self, **kwargs: Any) -> None:
        return None

    async def stop_profile(self) -> None:
        return None


def server_actor_name(replica_rank: int, node_rank: int = 0) -> str:
    return f"{ROLLOUT_NAME}_server_{replica_rank}_{node_rank}"


def _build_replica_class():
    from verl.workers.rollout.replica import RolloutMode, RolloutReplica

    class HFReplica(RolloutReplica):
        """One :class:`HFRolloutServer` per replica, placed on the node of its training workers."""

        async def launch_servers(self):
            if self.rollout_mode not in (RolloutMode.HYBRID, RolloutMode.COLOCATED, RolloutMode.STANDALONE):
                raise NotImplementedError(f"hf rollout: unsupported mode {self.rollout_mode}")
            if self.nnodes != 1:
                raise NotImplementedError(
                    "hf rollout: one node per replica (tensor_model_parallel_size<=GPUs per node)"
                )
            node_id = None
            if self.workers:
                node_id = await self.workers[0].__ray_call__.remote(
                    lambda w: ray.get_runtime_context().get_node_id()
                )
            options: dict[str, Any] = dict(
                name=server_actor_name(self.replica_rank, 0),
                max_concurrency=self.max_concurrency,
                num_cpus=0,
            )
            if node_id is not None:
                options["scheduling_strategy"] = (
                    ray.util.scheduling_strategies.NodeAffinitySchedulingStrategy(node_id=node_id, soft=False)
                )
            server = (
                ray.remote(HFRolloutServer)
                .options(**options)
                .remote(config=self.config, model_config=self.model_config, replica_rank=self.replica_rank)
            )
            self.servers.append(server)
            host, port = await server.get_server_address.remote()
            self._server_handle = server
            self._server_address = f"{host}:{port}"

        def rollout_worker_use_gpu(self) -> bool:
            return False

    HFReplica.__name__ = HFReplica.__qualname__ = "HFReplica"
    return HFReplica


_HF_REPLICA = None


def load_replica_class():
    """Loader for ``RolloutReplicaRegistry`` (builds the class lazily: verl's replica module is heavy)."""
    global _HF_REPLICA
    if _HF_REPLICA is None:
        _HF_REPLICA = _build_replica_class()
    return _HF_REPLICA


def __getattr__(name: str):
    # ``from sinternal_verl.cpu.hf_rollout import HFReplica`` / ``HFServerAdapter`` work lazily
    if name == "HFReplica":
        return load_replica_class()
    if name == "HFServerAdapter":
        return load_adapter_class()
    raise AttributeError(name)


_HF_ADAPTER = None


def load_adapter_class():
    global _HF_ADAPTER
    if _HF_ADAPTER is None:
        _HF_ADAPTER = _build_adapter_class()
    return _HF_ADAPTER


def _build_adapter_class():
    from verl.workers.rollout.base import BaseRollout

    class HFServerAdapter(BaseRollout):
        """Lives in each training worker; pushes the actor's weights to this replica's server."""

        def __init__(self, config, model_config, device_mesh, *args, replica_rank: int = -1, **kwargs):
            super().__init__(config, model_config, device_mesh)
            rank = int(os.environ.get("RANK", "0"))
            world = (
                self.config.tensor_model_parallel_size
                * self.config.data_parallel_size
                * self.config.pipeline_model_parallel_size
            )
            self.replica_rank = rank // world if replica_rank == -1 else replica_rank
            self.rollout_rank = rank % world
            self.server_handle = None
            self.sleep_level = 1

        def _server(self):
            if self.rollout_rank != 0:
                return None
            if self.server_handle is None:
                self.server_handle = ray.get_actor(server_actor_name(self.replica_rank, 0))
            return self.server_handle

        async def resume(self, tags: list[str]):
            return None

        async def release(self):
            return None

        async def update_weights(self, weights, wire_format: str = "named_tensors", **kwargs):
            if wire_format != "named_tensors":
                raise NotImplementedError(f"hf rollout: wire_format={wire_format!r} (only named_tensors)")
            from verl.workers.rollout.utils import ensure_async_iterator

            if kwargs.get("peft_config") is not None and not kwargs.get("base_sync_done", True):
                raise NotImplementedError("hf rollout: LoRA adapter sync (set model.lora.merge=True)")
            named: dict[str, torch.Tensor] = {}
            async for name, tensor in ensure_async_iterator(weights):
                if hasattr(tensor, "full_tensor"):  # DTensor from FSDP2
                    tensor = tensor.full_tensor()
                named[name] = tensor.detach().to("cpu").clone()
            server = self._server()
            if server is None:
                return
            await server.update_weights.remote(named, kwargs.get("global_steps"))

    HFServerAdapter.__name__ = HFServerAdapter.__qualname__ = "HFServerAdapter"
    return HFServerAdapter


def register() -> None:
    """Register ``hf`` with verl's rollout registries (idempotent)."""
    import sys

    replica_mod = sys.modules.get("verl.workers.rollout.replica")
    if replica_mod is not None and ROLLOUT_NAME not in replica_mod.RolloutReplicaRegistry._registry:
        replica_mod.RolloutReplicaRegistry.register(ROLLOUT_NAME, load_replica_class)
    base_mod = sys.modules.get("verl.workers.rollout.base")
    if base_mod is not None:
        base_mod._ROLLOUT_REGISTRY.setdefault(
            (ROLLOUT_NAME, "async"), "sinternal_verl.cpu.hf_rollout.HFServerAdapter"
        )
