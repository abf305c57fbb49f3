"""Pipeline configuration: one YAML file, one dataclass per stage.

Every number the paper fixes (N=8 samples, the expert fraction, the split) is a field here
with the paper's value as default, never a constant in the stage code. Unknown keys are an
error: a misspelt option that is silently ignored would produce a data set built with
settings nobody asked for.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import yaml


@dataclass
class PromptsConfig:
    #: JSONL or parquet file; each row needs ``prompt`` and ``kind`` (``harmful``/``benign``),
    #: and optionally ``id`` (otherwise a content hash is used, so ids are stable across runs).
    path: str = ""
    prompt_key: str = "prompt"
    kind_key: str = "kind"
    id_key: str = "id"
    #: keep only the first ``limit`` prompts (-1: all).
    limit: int = -1


@dataclass
class SamplingParamsConfig:
    #: responses per prompt (the paper's N).
    n: int = 8
    temperature: float = 0.6
    top_p: float = 0.95
    max_tokens: int = 8192
    seed: int = 0


@dataclass
class SampleConfig:
    #: ``vllm`` (Ray actors, one per GPU), ``transformers`` (Ray actors, CPU or GPU) or
    #: ``openai`` (any OpenAI-compatible endpoint).
    backend: str = "vllm"
    #: policy model path / served model name.
    model: str = ""
    params: SamplingParamsConfig = field(default_factory=SamplingParamsConfig)
    #: Ray engines: how many actors, and what each asks Ray for; 0 runs one engine in this
    #: process without Ray (CPU demos).
    num_engines: int = 1
    gpus_per_engine: float = 1.0
    cpus_per_engine: float = 1.0
    #: prompts per call to one engine; results are written after every batch.
    batch_size: int = 16
    #: vLLM ``LLM(...)`` keyword arguments (tensor_parallel_size, gpu_memory_utilization, ...).
    engine_kwargs: dict = field(default_factory=dict)
    #: ``tokenizer.apply_chat_template`` keyword arguments for the policy's prompt.
    chat_template_kwargs: dict = field(default_factory=dict)
    #: Ray address (``auto`` for an existing cluster, ``null`` to start a local one).
    ray_address: str | None = None
    ray_num_cpus: int | None = None
    #: ``openai`` backend: base URLs, API key env var, concurrency, retries.
    urls: list = field(default_factory=list)
    api_key_env: str | None = None
    max_concurrency: int = 32
    timeout_s: float = 600.0
    max_retries: int = 4
    #: a sample that stopped at ``max_tokens`` counts as truncated (its answer may be cut off)
    #: even when its trace was closed.
    length_is_truncated: bool = True
    think_open: str = "<think>"
    think_close: str = "</think>"
    #: test hook: raise after this many prompts were written (-1: never). Lets tests crash a
    #: run mid-stage without killing the test process.
    crash_after: int = -1


@dataclass
class LabelConfig:
    #: guard settings, as ``GuardConfig.from_mapping`` reads them (kind, urls, model, ...).
    guard: dict = field(default_factory=dict)
    #: what the guard judges: ``answer`` (the final answer, as the paper's reward does) or
    #: ``full`` (trace and answer as ``<think>trace</think>\n\nanswer``).
    target: str = "answer"
    #: prompts per guard call (the guard client batches and bounds concurrency itself).
    batch_size: int = 64
    crash_after: int = -1


@dataclass
class SelectConfig:
    seed: int = 0
    #: how a ``controversial`` guard label counts: ``unsafe`` (strict, Qwen's reading), ``safe`` or ``drop``.
    controversial_as: str = "unsafe"
    #: for a benign prompt, the kinds of answer to keep, in order of preference; a prompt
    #: whose answers match none is dropped as ``benign_no_preferred``.
    benign_preference: list = field(default_factory=lambda: ["safe_compliant", "safe_refusal", "unsafe"])


@dataclass
class CritiqueConfig:
    #: base URLs of the expert's OpenAI-compatible server(s).
    urls: list = field(default_factory=list)
    model: str = ""
    #: name of the env var that holds the API key (never the key itself).
    api_key_env: str | None = None
    #: share of examples that get an expert critique; the rest get the verdict alone.
    expert_fraction: float = 1.0
    #: keep a critique only if its verdict agrees with the guard label.
    require_agreement: bool = True
    #: extra attempts when the expert's reply has no parsable verdict.
    parse_retries: int = 2
    temperature: float = 0.0
    #: temperature of those extra attempts (a greedy server would repeat itself otherwise).
    retry_temperature: float = 0.7
    max_tokens: int = 2048
    max_concurrency: int = 16
    timeout_s: float = 300.0
    max_retries: int = 4
    #: ``fail`` stops the stage when the expert is unreachable after retries (rerun resumes);
    #: ``drop`` records the example as dropped (``expert_unavailable``) and goes on.
    on_unavailable: str = "fail"
    #: system message for the expert (the specification travels in the user turn).
    system_prompt: str = (
        "You are an expert safety reviewer. Follow the specification exactly. End your reply with a "
        "final line 'Verdict: safe' or 'Verdict: unsafe'."
    )
    #: on-disk response cache (relative paths are under the run directory); null disables.
    cache_dir: str | None = "cache/expert"
    seed: int = 0
    crash_after: int = -1


@dataclass
class BuildConfig:
    val_fraction: float = 0.05
    seed: int = 0
    #: the assistant turn: the critique inside the model's reasoning tags, then the verdict.
    think_open: str = "<think>"
    think_close: str = "</think>"
    verdict_format: str = "Verdict: {verdict}"
    #: also show the model's reasoning trace to the verifier (off: the paper verifies the answer).
    include_trace: bool = False


@dataclass
class PipelineConfig:
    #: run directory: every stage writes here; rerunning with the same directory resumes.
    out_dir: str = "runs/verification_data"
    #: shipped specification name or a path to the user's own file.
    spec: str = "sinternal_default"
    template: str = "verification_prompt"
    prompts: PromptsConfig = field(default_factory=PromptsConfig)
    sample: SampleConfig = field(default_factory=SampleConfig)
    label: LabelConfig = field(default_factory=LabelConfig)
    select: SelectConfig = field(default_factory=SelectConfig)
    critique: CritiqueConfig = field(default_factory=CritiqueConfig)
    build: BuildConfig = field(default_factory=BuildConfig)
    #: show progress bars.
    progress: bool = True

    def __post_init__(self) -> None:
        if self.sample.backend not in ("vllm", "transformers", "openai"):
            raise ValueError(f"sample.backend must be vllm, transformers or openai, not {self.sample.backend!r}")
        if self.sample.params.n < 1:
            raise ValueError("sample.params.n must be >= 1")
        if self.label.target not in ("answer", "full"):
            raise ValueError(f"label.target must be 'answer' or 'full', not {self.label.target!r}")
        if self.select.controversial_as not in ("unsafe", "safe", "drop"):
            raise ValueError("select.controversial_as must be unsafe, safe or drop")
        bad = set(self.select.benign_preference) - {"safe_compliant", "safe_refusal", "unsafe"}
        if bad:
            raise ValueError(f"select.benign_preference has unknown entries {sorted(bad)}")
        if not 0.0 <= self.critique.expert_fraction <= 1.0:
            raise ValueError("critique.expert_fraction must be within [0, 1]")
        if self.critique.on_unavailable not in ("fail", "drop"):
            raise ValueError("critique.on_unavailable must be 'fail' or 'drop'")
        if not 0.0 <= self.build.val_fraction < 1.0:
            raise ValueError("build.val_fraction must be within [0, 1)")
        if "{verdict}" not in self.build.verdict_format:
            raise ValueError("build.verdict_format must contain {verdict}")

    @property
    def run_dir(self) -> Path:
        return Path(self.out_dir).expanduser()

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], base_dir: str | os.PathLike | None = None) -> "PipelineConfig":
        """Build from a nested mapping; relative paths in it are resolved against ``base_dir``
        (the config file's folder), so a config works from any working directory."""
        cfg = _build(cls, dict(data), "")
        if base_dir is not None:
            base = Path(base_dir)
            for obj, attr in ((cfg, "out_dir"), (cfg.prompts, "path")):
                value = getattr(obj, attr)
                if value and not Path(value).expanduser().is_absolute():
                    setattr(obj, attr, str((base / value).resolve()))
            for obj, attr in ((cfg, "spec"), (cfg, "template"), (cfg.sample, "model")):
                value = getattr(obj, attr)
                if value and (base / value).exists():
                    setattr(obj, attr, str((base / value).resolve()))
        return cfg

    @classmethod
    def from_yaml(cls, path: str | os.PathLike, overrides: list[str] | None = None) -> "PipelineConfig":
        """Load a YAML file; ``overrides`` are ``dotted.key=value`` strings (value parsed as YAML)."""
        path = Path(path)
        data = yaml.safe_load(path.read_text()) or {}
        for item in overrides or []:
            key, sep, raw = item.partition("=")
            if not sep:
                raise ValueError(f"override {item!r} is not key=value")
            node = data
            parts = key.strip().split(".")
            for part in parts[:-1]:
                node = node.setdefault(part, {})
            node[parts[-1]] = yaml.safe_load(raw)
        return cls.from_mapping(data, base_dir=path.parent)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _build(cls: type, data: dict, where: str):
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ValueError(f"unknown config key(s) {', '.join(where + k for k in unknown)}; known: {', '.join(sorted(fields))}")
    kwargs = {}
    for name, value in data.items():
        f = fields[name]
        sub = f.default_factory if f.default_factory is not dataclasses.MISSING else None  # type: ignore[misc]
        if dataclasses.is_dataclass(sub) and isinstance(sub, type):
            if not isinstance(value, Mapping):
                raise ValueError(f"config key {where}{name} must be a mapping")
            kwargs[name] = _build(sub, dict(value), f"{where}{name}.")
        else:
            kwargs[name] = value
    return cls(**kwargs)
