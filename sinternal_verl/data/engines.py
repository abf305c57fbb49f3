"""Local generation engines for the sample stage: vLLM (GPU) and transformers (CPU/GPU).

Both implement the same small interface, :class:`Engine` ``.generate(requests)``, so the Ray
sharding code in :mod:`.sample` drives either one unchanged; tests run it with the
transformers engine on a tiny local model, production with vLLM on GPUs. Heavy imports
(vllm, torch) happen inside the engine constructors, i.e. inside the Ray actor, so the driver
never needs vllm installed.

Seeds are per prompt (:func:`sinternal_verl.seeding.prompt_seed`, a stable hash of the base seed
and the prompt id, carried by each :class:`GenRequest`), not per batch, so a prompt's samples do not
depend on which engine or batch it landed in: a resumed run reproduces them. This module imports only
the standard library at import time: the real-vLLM tests load it alone in vLLM's own venv.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass
class GenRequest:
    prompt_id: str
    prompt: str
    n: int
    temperature: float
    top_p: float
    max_tokens: int
    seed: int


@dataclass
class GenResult:
    prompt_id: str
    #: the model's text per sample; a ``<think>`` the chat template pre-filled in the prompt
    #: is put back in front, so splitting trace from answer works the same for every model.
    texts: list[str] = field(default_factory=list)
    #: ``stop`` or ``length`` per sample
    finish_reasons: list[str] = field(default_factory=list)
    #: which engine produced it (``host:pid``), for provenance and load-spread checks
    engine: str = ""
    #: the prompt's token ids as the engine saw them (local engines; empty for the API backend)
    prompt_token_ids: list[int] = field(default_factory=list)


class Engine(Protocol):
    def generate(self, requests: list[GenRequest]) -> list[GenResult]: ...


def render_chat(tokenizer: Any, prompt: str, chat_template_kwargs: dict) -> str:
    return tokenizer.apply_chat_template(
        [{"role": "user", "content": prompt}],
        tokenize=False,
        add_generation_prompt=True,
        **chat_template_kwargs,
    )


def chat_token_ids(tokenizer: Any, prompt: str, chat_template_kwargs: dict) -> tuple[str, list[int]]:
    """(rendered text, token ids) of the chat prompt. The template already writes the BOS a
    model needs (Llama, R1: ``{{ bos_token }}``); encoding the text *with* special tokens, as
    ``LLM.generate(text)`` does, adds a second one. So the ids are encoded without, and
    engines are given ids, never text."""
    rendered = render_chat(tokenizer, prompt, chat_template_kwargs)
    return rendered, list(tokenizer.encode(rendered, add_special_tokens=False))


def restore_prefill(rendered_prompt: str, text: str, think_open: str = "<think>") -> str:
    """If the template ended the prompt with an opening think tag, the model's text starts
    inside the trace; put the tag back so a cut-off trace is seen as truncated, not as an answer."""
    if rendered_prompt.rstrip().endswith(think_open) and not text.lstrip().startswith(think_open):
        return think_open + "\n" + text
    return text


class TransformersEngine:
    """``model.generate`` on CPU or one GPU: slow, but needs nothing beyond transformers."""

    def __init__(
        self,
        model: str,
        chat_template_kwargs: dict | None = None,
        device: str | None = None,
        dtype: str = "auto",
    ):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.torch = torch
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.tokenizer = AutoTokenizer.from_pretrained(model)
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.model = AutoModelForCausalLM.from_pretrained(model, dtype=dtype).to(self.device).eval()
        self.chat_template_kwargs = dict(chat_template_kwargs or {})

    def generate(self, requests: list[GenRequest]) -> list[GenResult]:
        torch = self.torch
        out = []
        eos = self.model.generation_config.eos_token_id
        eos_ids = set(eos if isinstance(eos, list) else [eos]) - {None}
        for req in requests:  # one prompt at a time: per-prompt seeds stay exact
            rendered, ids = chat_token_ids(self.tokenizer, req.prompt, self.chat_template_kwargs)
            input_ids = torch.tensor([ids], device=self.device)
            enc = {"input_ids": input_ids, "attention_mask": torch.ones_like(input_ids)}
            torch.manual_seed(req.seed)
            do_sample = req.temperature > 0
            with torch.no_grad():
                gen = self.model.generate(
                    **enc,
                    do_sample=do_sample,
                    temperature=req.temperature if do_sample else None,
                    top_p=req.top_p if do_sample else None,
                    max_new_tokens=req.max_tokens,
                    num_return_sequences=req.n,
                    pad_token_id=self.tokenizer.pad_token_id,
                )
            new = gen[:, enc["input_ids"].shape[1] :]
            res = GenResult(req.prompt_id, prompt_token_ids=list(ids))
            for row in new.tolist():
                ended = any(t in eos_ids for t in row)
                res.texts.append(
                    restore_prefill(rendered, self.tokenizer.decode(row, skip_special_tokens=True))
                )
                res.finish_reasons.append("stop" if ended else "length")
            out.append(res)
        return out


class VLLMEngine:
    """vLLM's offline ``LLM.generate`` with one ``SamplingParams`` per prompt (per-prompt seeds).

    Only constructed inside a Ray actor that owns a GPU; ``engine_kwargs`` go to ``LLM(...)``
    (``tensor_parallel_size``, ``gpu_memory_utilization``, ``max_model_len``, ...).
    """

    def __init__(
        self, model: str, engine_kwargs: dict | None = None, chat_template_kwargs: dict | None = None
    ):
        from vllm import LLM, SamplingParams  # imported here: only GPU actors need vllm

        self._SamplingParams = SamplingParams
        self.llm = LLM(model=model, **(engine_kwargs or {}))
        self.tokenizer = self.llm.get_tokenizer()
        self.chat_template_kwargs = dict(chat_template_kwargs or {})

    def generate(self, requests: list[GenRequest]) -> list[GenResult]:
        encoded = [chat_token_ids(self.tokenizer, r.prompt, self.chat_template_kwargs) for r in requests]
        rendered = [text for text, _ in encoded]
        params = [
            self._SamplingParams(
                n=r.n, temperature=r.temperature, top_p=r.top_p, max_tokens=r.max_tokens, seed=r.seed
            )
            for r in requests
        ]
        # token prompts (vLLM's TokensPrompt shape): vLLM does not tokenize, so no second BOS
        prompts = [{"prompt_token_ids": ids} for _, ids in encoded]
        outputs = self.llm.generate(prompts, sampling_params=params, use_tqdm=False)
        results = []
        for req, prompt, o in zip(requests, rendered, outputs):
            res = GenResult(req.prompt_id, prompt_token_ids=list(o.prompt_token_ids or []))
            for c in o.outputs:
                res.texts.append(restore_prefill(prompt, c.text))
                res.finish_reasons.append(str(c.finish_reason or "stop"))
            results.append(res)
        return results


class EngineHost:
    """What runs inside each Ray actor: builds its engine lazily on the actor's own device."""

    def __init__(self, backend: str, model: str, engine_kwargs: dict, chat_template_kwargs: dict):
        if backend == "vllm":
            self.engine: Engine = VLLMEngine(model, engine_kwargs, chat_template_kwargs)
        elif backend == "transformers":
            self.engine = TransformersEngine(model, chat_template_kwargs, **engine_kwargs)
        else:
            raise ValueError(f"no local engine for backend {backend!r}")

    def generate(self, requests: list[GenRequest]) -> list[GenResult]:
        import os
        import socket

        results = self.engine.generate(requests)
        for r in results:
            r.engine = f"{socket.gethostname()}:{os.getpid()}"
        return results
