"""Evaluation settings: which models, which benchmarks, which judges, which metrics.

One YAML file (``sinternal-verl eval CONFIG key=value ...``) loaded with
:func:`sinternal_verl.settings.load_yaml`. Every number of the protocol (samples, temperature,
bootstrap draws, the pass@k list) is a field here with the upstream protocol's value as
default. Anything that can be checked before the first token is generated is checked in
:func:`validate` (called by :func:`sinternal_verl.eval.evaluate` at start-up): unknown benchmark
or judge names, missing files, models without a path.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import field_validator, model_validator

from ..guards.config import GuardConfig
from ..settings import ConfigError, Settings, setting

BACKENDS = ("transformers", "openai", "vllm", "precomputed")
KINDS = ("harmful", "benign", "math", "verification")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")


class GenerationSettings(Settings):
    """Sampling for one model; a benchmark may override n, temperature, top_p, max_tokens."""

    n: int = setting(1, "samples per prompt (pass@k needs n >= k)", ge=1)
    temperature: float = setting(0.0, "sampling temperature; 0 is greedy (HarmBench-style protocol)", ge=0.0)
    top_p: float = setting(1.0, "nucleus sampling mass", gt=0.0, le=1.0)
    max_tokens: int = setting(8192, "new tokens per sample (the paper's response limit)", ge=1)
    seed: int = setting(0, "base seed; each prompt's seed is derived from it and the prompt id")


class ModelSpec(Settings):
    """One model (checkpoint) to evaluate."""

    name: str = setting(..., "short name shown in the report (letters, digits, _ . -)")
    backend: Literal["transformers", "openai", "vllm", "precomputed"] = setting(
        "transformers",
        "how outputs are made: local transformers, an OpenAI-compatible server, vLLM Ray actors, or a file",
    )
    path: str | None = setting(None, "local checkpoint folder (transformers / vllm)")
    model: str | None = setting(
        None, "served model name (openai) or HF id (vllm / transformers, instead of path)"
    )
    base_url: str | list[str] | None = setting(None, "OpenAI-compatible base URL(s) (openai backend)")
    api_key_env: str | None = setting(None, "env var holding the endpoint's API key (never the key itself)")
    file: str | None = setting(
        None,
        "precomputed: JSONL / parquet / CSV of id, response[, prompt, benchmark (its report name), sample]",
    )
    generation: GenerationSettings = setting(
        default_factory=GenerationSettings, doc="default sampling for this model"
    )
    chat_template_kwargs: dict[str, Any] = setting(
        default_factory=dict, doc="apply_chat_template kwargs (enable_thinking, ...)"
    )
    engine_kwargs: dict[str, Any] = setting(
        default_factory=dict, doc="vLLM LLM(...) / transformers engine kwargs"
    )
    num_engines: int = setting(
        0, "Ray engine actors (vllm/transformers); 0 runs one engine in this process", ge=0
    )
    gpus_per_engine: float = setting(1.0, "GPUs each Ray engine actor asks for", ge=0.0)
    cpus_per_engine: float = setting(1.0, "CPUs each Ray engine actor asks for", ge=0.0)
    batch_size: int = setting(16, "prompts per engine call; the cache is written after every call", ge=1)
    max_concurrency: int = setting(32, "requests in flight (openai backend)", ge=1)
    timeout_s: float = setting(600.0, "seconds per request (openai backend)", gt=0)
    max_retries: int = setting(4, "retries per request (openai backend)", ge=0)
    ray_address: str | None = setting(None, "Ray address for engine actors (null: start a local Ray)")
    ray_num_cpus: int | None = setting(None, "CPUs of a locally started Ray (null: all)")

    @field_validator("name")
    @classmethod
    def _name_ok(cls, v: str) -> str:
        if not _NAME_RE.match(v):
            raise ValueError("model name must be letters, digits, '_', '.', '-' (it names folders)")
        return v

    @model_validator(mode="after")
    def _backend_fields(self) -> ModelSpec:
        b = self.backend
        if b in ("transformers", "vllm") and not (self.path or self.model):
            raise ValueError(f"model {self.name!r}: backend {b} needs path (or model)")
        if b == "openai" and not (self.base_url and self.model):
            raise ValueError(f"model {self.name!r}: backend openai needs base_url and model")
        if b == "precomputed" and not self.file:
            raise ValueError(f"model {self.name!r}: backend precomputed needs file")
        return self

    @property
    def urls(self) -> list[str]:
        if not self.base_url:
            return []
        return [self.base_url] if isinstance(self.base_url, str) else list(self.base_url)

    @property
    def checkpoint(self) -> str:
        return str(self.path or self.model or self.file or "")


class BenchmarkSpec(Settings):
    """One benchmark: a registry name (``xstest``, ``strongreject``, ...) or ``file``."""

    name: str = setting(..., "registry name (see sinternal_verl.eval.benchmarks.BENCHMARKS) or 'file'")
    label: str | None = setting(
        None, "name shown in the report; default: the registry name (or the file's stem)"
    )
    path: str | None = setting(None, "local file in the set's published format; null loads the HF dataset")
    format: str | None = setting(
        None, "file format: csv, tsv, jsonl, json or parquet (default: from the suffix)"
    )
    kind: Literal["harmful", "benign", "math", "verification"] | None = setting(
        None, "item kind for sets without one per row (plain files); registry sets know their own"
    )
    hf_id: str | None = setting(None, "override the registry's Hugging Face dataset id")
    hf_config: str | None = setting(None, "override the dataset config name")
    split: str | None = setting(None, "override the dataset split")
    revision: str | None = setting(
        None, "dataset revision (commit) to pin; recorded in metrics.json either way"
    )
    limit: int = setting(-1, "keep only the first N items (-1: all)")
    n: int | None = setting(None, "samples per prompt (default: the model's generation.n)")
    temperature: float | None = setting(None, "sampling temperature override")
    top_p: float | None = setting(None, "top-p override")
    max_tokens: int | None = setting(None, "max new tokens override")
    pass_k: list[int] = setting(
        default_factory=list, doc="math: k values for pass@k (each <= n); default [n]"
    )
    rubric: bool | None = setting(
        None,
        "score with the StrongREJECT rubric judge (default: yes for strongreject when rubric_judge is set)",
    )
    prompt_template: str | None = setting(
        None,
        "how an item becomes the model's prompt ({prompt}); default: the set's own (math asks for \\boxed{})",
    )

    @property
    def display(self) -> str:
        if self.label:
            return self.label
        if self.name == "file" and self.path:
            return Path(self.path).stem
        return self.name


class GuardJudgeSettings(GuardConfig):
    """The safety judge: any guard kind, built by ``sinternal_verl.guards.build_guard``. Its guard
    settings are :class:`~sinternal_verl.guards.GuardConfig`'s (one definition), plus what only
    an evaluation needs."""

    #: the eval judge never picks up the training guard's ``SINTERNAL_GUARD_*`` env vars
    env_vars: ClassVar[dict[str, str]] = {}

    api_key_env: str | None = setting(
        None, "env var with the guard's API key (never the key itself in a config)"
    )
    controversial: Literal["strict", "loose"] = setting(
        "strict", "Qwen3Guard 'Controversial': strict = unsafe, loose = safe"
    )
    sees: Literal["answer", "full"] = setting(
        "answer", "what the judge reads: the final answer, or trace + answer"
    )
    batch_size: int = setting(64, "items per moderate() call; judgements are cached after each", ge=1)

    def guard_config(self) -> GuardConfig:
        """The guard part, with the API key read from ``api_key_env``."""
        import os

        values = self.model_dump(include=set(GuardConfig.model_fields), exclude_unset=True)
        if self.api_key_env:
            key = os.environ.get(self.api_key_env)
            if not key:
                raise ConfigError(f"judge.api_key_env names env var {self.api_key_env!r}, which is not set")
            values["api_key"] = key
        return GuardConfig.model_validate(values)


class RefusalJudgeSettings(Settings):
    """How answers to benign prompts are classified: full refusal, partial refusal, compliance."""

    kind: str = setting(
        "lexical",
        "refusal judge: lexical (offline, no model), llm (XSTest's 3-way rubric) or guard (the guard's refusal label)",
    )
    mode: Literal["structure", "gcg_keywords", "xstest_prefix"] = setting(
        "structure",
        "lexical: structure (opening + what follows; full / partial / compliance), gcg_keywords (the "
        "literature's keyword metric) or xstest_prefix (XSTest's string match)",
    )
    phrases: list[str] | None = setting(
        None, "lexical gcg_keywords: refusal phrases (default: the GCG/AdvBench list)"
    )
    base_url: str | list[str] | None = setting(None, "llm: OpenAI-compatible base URL(s)")
    model: str | None = setting(None, "llm: served model name")
    api_key_env: str | None = setting(None, "llm: env var with the API key")
    max_tokens: int = setting(64, "llm: answer tokens", ge=1)
    max_concurrency: int = setting(16, "llm: requests in flight", ge=1)
    timeout_s: float = setting(120.0, "llm: seconds per request", gt=0)
    max_retries: int = setting(4, "llm: retries per request", ge=0)


class RubricJudgeSettings(Settings):
    """StrongREJECT's rubric judge behind an OpenAI-compatible endpoint."""

    base_url: str | list[str] | None = setting(
        None, "OpenAI-compatible base URL(s); null disables the rubric score"
    )
    model: str | None = setting(
        None, "served judge model name (the paper's protocol used GPT-4-class judges)"
    )
    api_key_env: str | None = setting(None, "env var with the API key")
    template_path: str | None = setting(
        None, "a file with the rubric prompt ({prompt}, {response}); default: built in"
    )
    max_tokens: int = setting(1024, "judge answer tokens", ge=1)
    max_concurrency: int = setting(16, "requests in flight", ge=1)
    timeout_s: float = setting(300.0, "seconds per request", gt=0)
    max_retries: int = setting(4, "retries per request", ge=0)


class VerificationSettings(Settings):
    """Verification F1: the model judges (prompt, answer) pairs as in its SFT data."""

    spec: str = setting(
        "sinternal_default", "safety specification: shipped name or file (same as the SFT data)"
    )
    template: str = setting("verification_prompt", "verification prompt template: shipped name or file")
    labels: Literal["file", "judge"] = setting(
        "file", "reference labels: the file's label column, or the safety judge"
    )
    positive: Literal["unsafe", "safe"] = setting("unsafe", "the positive class of precision / recall / F1")
    no_verdict_as: Literal["wrong", "exclude"] = setting(
        "wrong",
        "a reply without a verdict line: counted as a wrong prediction, or left out of P/R/F1 (always counted)",
    )


class MathSettings(Settings):
    """Math scoring through the project's strict boxed reward."""

    symbolic: bool = setting(True, "sympy fallback when strings and numbers disagree")
    symbolic_timeout_s: float = setting(5.0, "limit of one symbolic comparison (s)", gt=0)


class ReportSettings(Settings):
    columns: list[str] = setting(
        default_factory=list,
        doc="report table columns as BENCH:METRIC (e.g. strongreject:asr); default: each benchmark's headline metric",
    )
    plots: bool = setting(True, "write PNG plots next to report.md")
    bootstrap: int = setting(1000, "bootstrap resamples for the 95% intervals", ge=0)
    bootstrap_seed: int = setting(0, "seed of the bootstrap")
    confidence: float = setting(0.95, "interval coverage", gt=0.0, lt=1.0)


class EvalConfig(Settings):
    """Everything ``sinternal-verl eval`` needs."""

    output_dir: str = setting("runs/eval", "run folder: metrics.json, items/, report.md, plots/, cache/")
    models: list[ModelSpec] = setting(..., "models to evaluate (base, SFT, RL, ...)", min_length=1)
    benchmarks: list[BenchmarkSpec] = setting(..., "benchmarks to run", min_length=1)
    judge: GuardJudgeSettings = setting(default_factory=GuardJudgeSettings, doc="safety judge (guard kind)")
    refusal_judge: RefusalJudgeSettings = setting(
        default_factory=RefusalJudgeSettings, doc="refusal judge (benign sets)"
    )
    rubric_judge: RubricJudgeSettings = setting(
        default_factory=RubricJudgeSettings, doc="StrongREJECT rubric judge"
    )
    verification: VerificationSettings = setting(default_factory=VerificationSettings, doc="verification F1")
    math: MathSettings = setting(default_factory=MathSettings, doc="math scoring")
    report: ReportSettings = setting(default_factory=ReportSettings, doc="report, plots, intervals")
    warn_if_judge_is_reward_guard: bool = setting(
        True, "warn when the eval judge is the guard the model was trained against"
    )
    reward_guard_kind: str = setting(
        "qwen3guard", "kind of the guard used as the training reward", env="SINTERNAL_GUARD_KIND"
    )
    reward_guard_model: str | None = setting(
        None, "model of the training reward guard (default: that kind's default)", env="SINTERNAL_GUARD_MODEL"
    )
    progress: bool = setting(True, "tqdm progress bars for generation and judging")
    crash_after: int = setting(
        -1, "test hook: stop with an error after this many generated items (-1: never)"
    )

    @model_validator(mode="after")
    def _unique_names(self) -> EvalConfig:
        for what, names in (
            ("model", [m.name for m in self.models]),
            ("benchmark", [b.display for b in self.benchmarks]),
        ):
            dup = sorted({n for n in names if names.count(n) > 1})
            if dup:
                raise ValueError(
                    f"{what} names must be unique; repeated: {', '.join(dup)} (set label: to tell them apart)"
                )
        return self

    @property
    def out(self) -> Path:
        return Path(self.output_dir).expanduser()


def resolve_paths(cfg: EvalConfig, base: str | Path) -> EvalConfig:
    """Relative file paths in ``cfg`` read from ``base`` (the config file's folder) when they
    exist there, so a config runs from any working directory; ``output_dir`` stays relative
    to where the command runs."""
    base = Path(base)

    def fix(value: str | None) -> str | None:
        if not value or Path(value).expanduser().is_absolute() or Path(value).exists():
            return value
        return str((base / value).resolve()) if (base / value).exists() else value

    models = [m.model_copy(update={"path": fix(m.path), "file": fix(m.file)}) for m in cfg.models]
    benches = [b.model_copy(update={"path": fix(b.path)}) for b in cfg.benchmarks]
    ver = cfg.verification.model_copy(
        update={"spec": fix(cfg.verification.spec), "template": fix(cfg.verification.template)}
    )
    rub = cfg.rubric_judge.model_copy(update={"template_path": fix(cfg.rubric_judge.template_path)})
    return cfg.model_copy(
        update={"models": models, "benchmarks": benches, "verification": ver, "rubric_judge": rub}
    )


def load_eval_config(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> EvalConfig:
    """:func:`sinternal_verl.settings.load_yaml` with relative paths read from the config's folder."""
    from ..settings import load_yaml

    p = Path(path)
    return resolve_paths(load_yaml(EvalConfig, p, overrides), p.parent)
