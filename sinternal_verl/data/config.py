"""Pipeline configuration: one YAML file, one dataclass per stage.

Every number the paper fixes (N=8 samples, the expert fraction, the split) is a field here
with the paper's value as default, never a constant in the stage code. Unknown keys are an
error: a misspelt option that is silently ignored would produce a data set built with
settings nobody asked for.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import field_validator, model_validator

from sinternal_verl.settings import Settings, load, load_yaml, setting


class PromptsConfig(Settings):
    path: str = setting(
        "",
        "JSONL or parquet file; each row needs ``prompt`` and ``kind`` (``harmful``/``benign``), and optionally ``id`` (otherwise a content hash is used, so ids are stable across runs).",
    )
    prompt_key: str = setting("prompt", "column holding the prompt text")
    kind_key: str = setting("kind", "column holding harmful / benign")
    id_key: str = setting("id", "column holding a stable id (optional)")
    limit: int = setting(-1, "keep only the first ``limit`` prompts (-1: all).")


class SamplingParamsConfig(Settings):
    n: int = setting(8, "responses per prompt (the paper's N).")
    temperature: float = setting(0.6, "sampling temperature (R1-distill's recommended 0.6)")
    top_p: float = setting(0.95, "nucleus sampling")
    max_tokens: int = setting(8192, "tokens per response (trace + answer)")
    seed: int = setting(0, "random seed")


class SampleConfig(Settings):
    backend: Literal["vllm", "transformers", "openai"] = setting(
        "vllm",
        "``vllm`` (Ray actors, one per GPU), ``transformers`` (Ray actors, CPU or GPU) or ``openai`` (any OpenAI-compatible endpoint).",
    )
    model: str = setting("", "policy model path / served model name.")
    params: SamplingParamsConfig = setting(SamplingParamsConfig(), "")
    num_engines: int = setting(
        1,
        "Ray engines: how many actors, and what each asks Ray for; 0 runs one engine in this process without Ray (CPU demos).",
    )
    gpus_per_engine: float = setting(1.0, "GPUs each Ray engine asks for")
    cpus_per_engine: float = setting(1.0, "CPUs each Ray engine asks for")
    batch_size: int = setting(16, "prompts per call to one engine; results are written after every batch.")
    engine_kwargs: dict[str, Any] = setting(
        {}, "vLLM ``LLM(...)`` keyword arguments (tensor_parallel_size, gpu_memory_utilization, ...)."
    )
    chat_template_kwargs: dict[str, Any] = setting(
        {}, "``tokenizer.apply_chat_template`` keyword arguments for the policy's prompt."
    )
    ray_address: str | None = setting(
        None, "Ray address (``auto`` for an existing cluster, ``null`` to start a local one)."
    )
    ray_num_cpus: int | None = setting(None, "num_cpus for a local Ray cluster started here")
    urls: list[str] = setting([], "``openai`` backend: base URLs, API key env var, concurrency, retries.")
    api_key_env: str | None = setting(None, "name of the env var holding the API key (never the key itself)")
    max_concurrency: int = setting(32, "requests in flight to the endpoint")
    timeout_s: float = setting(600.0, "seconds per request")
    max_retries: int = setting(4, "retries with backoff on connect errors, timeouts, 5xx and 429")
    length_is_truncated: bool = setting(
        True,
        "a sample that stopped at ``max_tokens`` counts as truncated (its answer may be cut off) even when its trace was closed.",
    )
    think_open: str = setting("<think>", "opens the reasoning trace")
    think_close: str = setting("</think>", "closes the reasoning trace")
    crash_after: int = setting(
        -1,
        "test hook: raise after this many prompts were written (-1: never). Lets tests crash a run mid-stage without killing the test process.",
    )


class LabelConfig(Settings):
    guard: dict[str, Any] = setting(
        {},
        "guard settings (kind, urls, model, ...: the guard_* reward settings without "
        "the prefix); checked when the config is loaded",
    )

    @field_validator("guard")
    @classmethod
    def _check_guard(cls, value: dict[str, Any]) -> dict[str, Any]:
        from sinternal_verl.guards.config import GuardConfig

        GuardConfig.from_mapping(value)  # a typo or bad value fails at start-up
        return value

    target: Literal["answer", "full"] = setting(
        "answer",
        "what the guard judges: ``answer`` (the final answer, as the paper's reward does) or ``full`` (trace and answer as ``<think>trace</think>\n\nanswer``).",
    )
    batch_size: int = setting(
        64, "prompts per guard call (the guard client batches and bounds concurrency itself)."
    )
    crash_after: int = setting(-1, "test hook: raise after this many items were written (-1: never)")


class SelectConfig(Settings):
    seed: int = setting(0, "random seed")
    controversial_as: Literal["unsafe", "safe", "drop"] = setting(
        "unsafe",
        "how a ``controversial`` guard label counts: ``unsafe`` (strict, Qwen's reading), ``safe`` or ``drop``.",
    )
    benign_preference: list[str] = setting(
        ["safe_compliant", "safe_refusal", "unsafe"],
        "for a benign prompt, the kinds of answer to keep, in order of preference; a prompt whose answers match none is dropped as ``benign_no_preferred``.",
    )


class CritiqueConfig(Settings):
    urls: list[str] = setting([], "base URLs of the expert's OpenAI-compatible server(s).")
    model: str = setting("", "served model name of the expert")
    api_key_env: str | None = setting(
        None, "name of the env var that holds the API key (never the key itself)."
    )
    expert_fraction: float = setting(
        1.0, "share of examples that get an expert critique; the rest get the verdict alone."
    )
    require_agreement: bool = setting(
        True, "keep a critique only if its verdict agrees with the guard label."
    )
    parse_retries: int = setting(2, "extra attempts when the expert's reply has no parsable verdict.")
    temperature: float = setting(0.0, "sampling temperature of the first attempt")
    retry_temperature: float = setting(
        0.7, "temperature of those extra attempts (a greedy server would repeat itself otherwise)."
    )
    max_tokens: int = setting(2048, "tokens per critique")
    rejected_message_max_chars: int = setting(
        500, "an expert's rejection message is cut to this many characters in the records", ge=0
    )
    max_concurrency: int = setting(16, "requests in flight to the expert")
    timeout_s: float = setting(300.0, "seconds per request")
    max_retries: int = setting(4, "retries with backoff on connect errors, timeouts, 5xx and 429")
    on_unavailable: Literal["fail", "drop"] = setting(
        "fail",
        "``fail`` stops the stage when the expert is unreachable after retries (rerun resumes); ``drop`` records the example as dropped (``expert_unavailable``) and goes on.",
    )
    system_prompt: str = setting(
        "You are an expert safety reviewer. Follow the specification exactly. End your reply with a "
        "final line 'Verdict: safe' or 'Verdict: unsafe'.",
        "system message for the expert (the specification travels in the user turn)",
    )
    cache_dir: str | None = setting(
        "cache/expert", "on-disk response cache (relative paths are under the run directory); null disables."
    )
    seed: int = setting(0, "random seed")
    crash_after: int = setting(-1, "test hook: raise after this many items were written (-1: never)")


class BuildConfig(Settings):
    val_fraction: float = setting(0.05, "share of examples held out for validation")
    seed: int = setting(0, "random seed")
    think_open: str = setting(
        "<think>", "the assistant turn: the critique inside the model's reasoning tags, then the verdict."
    )
    think_close: str = setting("</think>", "closes the reasoning trace")
    verdict_format: str = setting(
        "Verdict: {verdict}", "the verdict line after the critique; must contain {verdict}"
    )
    include_trace: bool = setting(
        False, "also show the model's reasoning trace to the verifier (off: the paper verifies the answer)."
    )


class PipelineConfig(Settings):
    out_dir: str = setting(
        "runs/verification_data",
        "run directory: every stage writes here; rerunning with the same directory resumes.",
    )
    spec: str = setting("sinternal_default", "shipped specification name or a path to the user's own file.")
    template: str = setting("verification_prompt", "verification prompt template: shipped name or a path")
    prompts: PromptsConfig = setting(PromptsConfig(), "")
    sample: SampleConfig = setting(SampleConfig(), "")
    label: LabelConfig = setting(LabelConfig(), "")
    select: SelectConfig = setting(SelectConfig(), "")
    critique: CritiqueConfig = setting(CritiqueConfig(), "")
    build: BuildConfig = setting(BuildConfig(), "")
    progress: bool = setting(True, "show progress bars.")

    @model_validator(mode="after")
    def _check(self) -> PipelineConfig:
        if self.sample.params.n < 1:
            raise ValueError("sample.params.n must be >= 1")
        bad = set(self.select.benign_preference) - {"safe_compliant", "safe_refusal", "unsafe"}
        if bad:
            raise ValueError(f"select.benign_preference has unknown entries {sorted(bad)}")
        if not 0.0 <= self.critique.expert_fraction <= 1.0:
            raise ValueError("critique.expert_fraction must be within [0, 1]")
        if not 0.0 <= self.build.val_fraction < 1.0:
            raise ValueError("build.val_fraction must be within [0, 1)")
        if "{verdict}" not in self.build.verdict_format:
            raise ValueError("build.verdict_format must contain {verdict}")
        return self

    @property
    def run_dir(self) -> Path:
        return Path(self.out_dir).expanduser()

    @classmethod
    def from_mapping(
        cls, data: Mapping[str, Any], base_dir: str | os.PathLike | None = None
    ) -> PipelineConfig:
        """Build from a nested mapping; relative paths in it are resolved against ``base_dir``
        (the config file's folder), so a config works from any working directory."""
        cfg = load(cls, data, where="pipeline config")
        if base_dir is None:
            return cfg
        base = Path(base_dir)

        def absolute(value: str) -> str:
            return (
                str((base / value).resolve())
                if value and not Path(value).expanduser().is_absolute()
                else value
            )

        def existing(value: str) -> str:
            return str((base / value).resolve()) if value and (base / value).exists() else value

        return cfg.model_copy(
            update={
                "out_dir": absolute(cfg.out_dir),
                "spec": existing(cfg.spec),
                "template": existing(cfg.template),
                "prompts": cfg.prompts.model_copy(update={"path": absolute(cfg.prompts.path)}),
                "sample": cfg.sample.model_copy(update={"model": existing(cfg.sample.model)}),
            }
        )

    @classmethod
    def from_yaml(cls, path: str | os.PathLike, overrides: list[str] | None = None) -> PipelineConfig:
        """Load a YAML file with ``dotted.key=value`` overrides (hydra's syntax)."""
        raw = load_yaml(_Raw, path, overrides or [])
        return cls.from_mapping(raw.model_dump(), base_dir=Path(path).parent)

    def to_dict(self) -> dict:
        return self.model_dump()


class _Raw(Settings):
    """Any mapping: the YAML and its overrides merged, before the strict load."""

    model_config = Settings.model_config | {"extra": "allow"}
