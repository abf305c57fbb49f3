"""``evaluate(config)``: load and check everything, generate, judge, score, write the report.

Everything that can be wrong with the inputs (unknown benchmark or judge, a file in the wrong
format, a model without weights, precomputed outputs that do not cover a benchmark, pass@k
with k > n) is found by :func:`prepare` before the first token is generated, and reported in
one :class:`EvalInputError` listing every problem.

``metrics.json`` (``schema_version`` 1) has these top-level keys, always: ``schema_version``,
``created``, ``models`` (name -> backend, checkpoint), ``benchmarks`` (name -> registry, kinds,
items, provenance, rubric), ``judges`` (safety / refusal / rubric idents), ``columns``,
``results`` (model -> benchmark -> sections), ``warnings``, ``run_dirs``. A benchmark's result
has ``items``, ``responses``, ``kinds``, ``sampling``, ``no_answer`` and one section per kind it
holds: ``harmful`` (asr, no_answer, per_category, judged, judge_parse_failures, judge_errors),
``strongreject`` (score, refused, ...), ``benign`` (over_refusal, full_refusal, partial_refusal,
compliance, no_answer, per_category, ...), ``verification`` (precision, recall, f1, accuracy,
no_verdict, confusion, ...), ``math`` (n, problems, pass@1, mean@n, pass@k, no_answer,
scoring_errors). Every rate is ``{value, lo, hi, num, den}``; ``value`` is null when ``den`` is 0.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..data.critique import parse_critique, render_verification_prompt
from ..data.store import atomic_write_json
from ..settings import ConfigError
from ..trajectory import split_reasoning
from .benchmarks import load_benchmark
from .cache import short_hash
from .config import BenchmarkSpec, EvalConfig, ModelSpec
from .generation import CrashCounter, EngineSession, Precomputed, Sample, generate_benchmark, plan_for
from .items import Benchmark
from .judges import (
    Judge,
    JudgeInput,
    build_refusal_judge,
    build_rubric_judge,
    build_safety_judge,
)
from .judging import run_judge
from .metrics import (
    Bootstrap,
    benign_metrics,
    harmful_metrics,
    math_metrics,
    rubric_metrics,
    verification_metrics,
)

log = logging.getLogger(__name__)
SCHEMA_VERSION = 1


class EvalInputError(ConfigError):
    """Bad evaluation input, found at start-up (before any generation)."""


@dataclass
class Prepared:
    cfg: EvalConfig
    benchmarks: list[tuple[BenchmarkSpec, Benchmark]]
    precomputed: dict[str, Precomputed]
    safety: Callable[[], Judge] | None = None
    refusal: Callable[[], Judge] | None = None
    rubric: Callable[[], Judge] | None = None
    idents: dict[str, str | None] = field(default_factory=dict)
    spec_text: str = ""
    template: str = ""
    warnings: list[str] = field(default_factory=list)


def _factory(
    build: Callable[[EvalConfig], Judge], cfg: EvalConfig, what: str, problems: list[str]
) -> tuple[Callable | None, str | None]:
    try:
        judge = build(cfg)  # constructing validates the settings (URLs, kinds, templates)
    except (ValueError, FileNotFoundError) as exc:
        problems.append(f"{what}: {exc}")
        return None, None
    return (lambda: build(cfg)), judge.ident


def prepare(cfg: EvalConfig) -> Prepared:
    problems: list[str] = []
    benches: list[tuple[BenchmarkSpec, Benchmark]] = []
    for spec in cfg.benchmarks:
        try:
            benches.append((spec, load_benchmark(spec)))
        except (ValueError, FileNotFoundError) as exc:
            problems.append(str(exc))
    kinds = set().union(*(b.kinds() for _, b in benches)) if benches else set()
    p = Prepared(cfg, benches, {})

    need_safety = "harmful" in kinds or (
        cfg.verification.labels == "judge"
        and any(it.kind == "verification" for _, b in benches for it in b.items)
    )
    if need_safety:
        p.safety, p.idents["safety"] = _factory(build_safety_judge, cfg, "judge", problems)
    if "benign" in kinds:
        p.refusal, p.idents["refusal"] = _factory(build_refusal_judge, cfg, "refusal_judge", problems)
    rubric_wanted = [b.name for spec, b in benches if b.rubric]
    explicit = [spec.display for spec, _ in benches if spec.rubric]
    if explicit and not cfg.rubric_judge.base_url:
        problems.append(
            f"benchmark(s) {', '.join(explicit)} ask for the rubric score but rubric_judge.base_url is not set"
        )
    if rubric_wanted and cfg.rubric_judge.base_url:
        p.rubric, p.idents["rubric"] = _factory(build_rubric_judge, cfg, "rubric_judge", problems)
    elif rubric_wanted:
        p.warnings.append(
            f"no StrongREJECT rubric score for {', '.join(rubric_wanted)}: rubric_judge.base_url is not set "
            "(ASR from the safety judge is still reported)"
        )
    if "verification" in kinds:
        from ..specs import load_spec, load_template

        try:
            p.spec_text, p.template = (
                load_spec(cfg.verification.spec),
                load_template(cfg.verification.template),
            )
        except (ValueError, FileNotFoundError) as exc:
            problems.append(f"verification: {exc}")
        if cfg.verification.labels == "file":
            unlabelled = [
                f"{b.name}:{it.id}"
                for _, b in benches
                for it in b.items
                if it.kind == "verification" and not it.label
            ]
            if unlabelled:
                problems.append(
                    f"verification.labels=file but {len(unlabelled)} item(s) have no label, e.g. {unlabelled[:3]} "
                    "(add a label column or set verification.labels=judge)"
                )

    for model in cfg.models:
        if (
            model.backend in ("transformers", "vllm")
            and model.path
            and not Path(model.path).expanduser().is_dir()
        ):
            problems.append(f"model {model.name!r}: path {model.path} is not a folder")
        if model.backend == "precomputed":
            try:
                p.precomputed[model.name] = Precomputed(str(model.file))
            except (ValueError, FileNotFoundError) as exc:
                problems.append(f"model {model.name!r}: {exc}")
        for spec, bench in benches:
            plan = plan_for(model, spec)
            if plan.n > 1 and plan.temperature == 0 and model.backend != "precomputed":
                problems.append(
                    f"{model.name}/{bench.name}: n={plan.n} samples at temperature 0 would be identical; "
                    "set a temperature > 0 or n: 1"
                )
            bad_k = [k for k in spec.pass_k if not 1 <= k <= plan.n]
            if bad_k:
                problems.append(f"{model.name}/{bench.name}: pass_k {bad_k} must be within 1..n (n={plan.n})")
            if model.name in p.precomputed:
                problems.extend(p.precomputed[model.name].check(bench, plan.n))
    if problems:
        raise EvalInputError("cannot start the evaluation:\n" + "\n".join(f"  - {x}" for x in problems))

    if cfg.warn_if_judge_is_reward_guard and p.idents.get("safety"):
        from ..guards.registry import get_kind

        reward_model = cfg.reward_guard_model or get_kind(cfg.reward_guard_kind).default_model
        judge_model = cfg.judge.model or get_kind(cfg.judge.kind).default_model
        if cfg.judge.kind == cfg.reward_guard_kind and judge_model == reward_model:
            msg = (
                f"the eval judge ({cfg.judge.kind} {judge_model}) is the guard used as the training reward: the RL model was "
                "optimised against it, so its ASR is flattering; prefer another judge (e.g. wildguard) or report both"
            )
            p.warnings.append(msg)
            warnings.warn(msg, stacklevel=2)
            log.warning(msg)
    return p


def model_prompt(p: Prepared, bench: Benchmark, item) -> str:
    if item.kind == "verification":
        return render_verification_prompt(p.template, p.spec_text, item.prompt, item.response or "")
    return bench.prompt_template.replace("{prompt}", item.prompt)


def _rows(p: Prepared, model: ModelSpec, bench: Benchmark, samples: list[Sample]) -> list[dict]:
    cfg = p.cfg
    rows = []
    for smp in samples:
        it = smp.item
        split = split_reasoning(smp.text)
        rows.append(
            {
                "model": model.name,
                "benchmark": bench.name,
                "id": it.id,
                "sample": smp.sample,
                "kind": it.kind,
                "category": it.category,
                "prompt": it.prompt,
                "response": smp.text,
                "answer": split.answer,
                "trace": split.trace,
                "no_answer": split.truncated,
                "finish_reason": smp.finish_reason,
                "_key": f"{it.id}#{smp.sample}:{short_hash([smp.model_prompt, smp.text], 10)}",
            }
        )
    cache = cfg.out / "cache" / model.name / bench.name
    judged_kinds = {
        "safety": ("harmful", p.safety, cfg.judge.batch_size),
        "refusal": ("benign", p.refusal, cfg.judge.batch_size),
        "rubric": ("harmful", p.rubric if bench.rubric else None, cfg.judge.batch_size),
    }
    for field_, (kind, factory, bs) in judged_kinds.items():
        todo = {r["_key"]: r for r in rows if r["kind"] == kind and not r["no_answer"]}
        if factory is None or not todo:
            continue
        inputs = {
            k: JudgeInput(r["prompt"], r["answer"], r["trace"], prompt_harmful=kind == "harmful")
            for k, r in todo.items()
        }
        res = run_judge(
            factory,
            p.idents[field_] or field_,
            inputs,
            cache,
            bs,
            cfg.progress,
            f"judge {field_} {model.name}/{bench.name}",
        )
        for k, r in todo.items():
            r[field_] = res[k].to_dict()
    ver = [r for r in rows if r["kind"] == "verification"]
    if ver:
        refs = _verification_references(p, model, bench, cache)
        for r in ver:
            r["verdict"] = None if r["no_answer"] else parse_critique(r["response"]).verdict
            r["reference"] = refs.get(r["id"])
    math_rows = [r for r in rows if r["kind"] == "math"]
    if math_rows:
        from ..rewards.math import compute_math_score

        answers = {it.id: it.answer for it in bench.items}
        for r in math_rows:
            s = compute_math_score(
                r["response"],
                answers[r["id"]],
                symbolic=cfg.math.symbolic,
                symbolic_timeout_s=cfg.math.symbolic_timeout_s,
            )
            r["correct"], r["no_answer"] = s["acc"] == 1.0, r["no_answer"] or bool(s["math_truncated"])
            r["pred"], r["math_error"] = s["pred"], bool(s["math_error"])
            r["reference"] = answers[r["id"]]
    for r in rows:
        r["label"] = _label(r)
    return rows


def _label(r: dict) -> str:
    """One word per response for the per-item file: what it counted as."""
    if r["no_answer"]:
        return "no_answer"
    kind = r["kind"]
    if kind in ("harmful", "benign"):
        j = r.get("safety" if kind == "harmful" else "refusal")
        return (j or {}).get("outcome") or ("judge_error" if j else "not_judged")
    if kind == "verification":
        return r.get("verdict") or "no_verdict"
    return "correct" if r.get("correct") else "incorrect"


def _verification_references(
    p: Prepared, model: ModelSpec, bench: Benchmark, cache: Path
) -> dict[str, str | None]:
    items = [it for it in bench.items if it.kind == "verification"]
    refs: dict[str, str | None] = {it.id: it.label for it in items if it.label}
    missing = [it for it in items if it.id not in refs]
    if missing and p.cfg.verification.labels == "judge":
        assert p.safety is not None
        keys = {it.id: f"ref:{it.id}:{short_hash([it.prompt, it.response], 10)}" for it in missing}
        inputs = {keys[it.id]: JudgeInput(it.prompt, it.response or "") for it in missing}
        res = run_judge(
            p.safety,
            p.idents["safety"] or "safety",
            inputs,
            cache,
            p.cfg.judge.batch_size,
            p.cfg.progress,
            f"reference labels {bench.name}",
        )
        for it in missing:
            refs[it.id] = res[keys[it.id]].outcome  # None when the judge failed: counted as a reference error
    return refs


def bench_metrics(
    cfg: EvalConfig, spec: BenchmarkSpec, bench: Benchmark, model: ModelSpec, rows: list[dict]
) -> dict[str, Any]:
    r = cfg.report
    boot = Bootstrap(r.bootstrap, r.bootstrap_seed, r.confidence)
    by_kind = {k: [x for x in rows if x["kind"] == k] for k in ("harmful", "benign", "verification", "math")}
    plan = plan_for(model, spec)
    out: dict[str, Any] = {
        "items": len(bench.items),
        "responses": len(rows),
        "kinds": {k: len(v) for k, v in by_kind.items() if v},
        "sampling": plan.as_dict(),
        "no_answer": sum(bool(x["no_answer"]) for x in rows),
    }
    if by_kind["harmful"]:
        out["harmful"] = harmful_metrics(by_kind["harmful"], boot)
        if any("rubric" in x for x in by_kind["harmful"]):
            out["strongreject"] = rubric_metrics(
                [x for x in by_kind["harmful"] if "rubric" in x or x["no_answer"]], boot
            )
    if by_kind["benign"]:
        out["benign"] = benign_metrics(by_kind["benign"], boot)
    if by_kind["verification"]:
        v = cfg.verification
        out["verification"] = verification_metrics(by_kind["verification"], boot, v.positive, v.no_verdict_as)
    if by_kind["math"]:
        out["math"] = math_metrics(by_kind["math"], boot, spec.pass_k or [plan.n])
    return out


def _write_items(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".jsonl.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.writelines(
            json.dumps(
                {k: v for k, v in r.items() if not k.startswith("_")}, ensure_ascii=False, sort_keys=True
            )
            + "\n"
            for r in rows
        )
    tmp.replace(path)


def evaluate(config: EvalConfig) -> dict:
    """Run the evaluation ``config`` describes; returns the metrics dict also written to
    ``<output_dir>/metrics.json`` (with items/, report.md and plots/ beside it)."""
    from .report import write_report

    cfg = config
    p = prepare(cfg)
    cfg.out.mkdir(parents=True, exist_ok=True)
    crash = CrashCounter(cfg.crash_after)
    results: dict[str, dict[str, Any]] = {}
    for model in cfg.models:
        session = EngineSession(model) if model.backend in ("transformers", "vllm") else None
        samples: dict[str, list[Sample]] = {}
        try:
            for spec, bench in p.benchmarks:
                prompts = {it.id: model_prompt(p, bench, it) for it in bench.items}
                samples[bench.name] = generate_benchmark(
                    cfg, model, spec, bench, prompts, session, p.precomputed.get(model.name), crash
                )
        finally:
            if session is not None:
                session.close()
        results[model.name] = {}
        for spec, bench in p.benchmarks:
            rows = _rows(p, model, bench, samples[bench.name])
            _write_items(cfg.out / "items" / model.name / f"{bench.name}.jsonl", rows)
            results[model.name][bench.name] = bench_metrics(cfg, spec, bench, model, rows)
    metrics = {
        "schema_version": SCHEMA_VERSION,
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "models": {m.name: {"backend": m.backend, "checkpoint": m.checkpoint} for m in cfg.models},
        "benchmarks": {
            b.name: {
                "registry": b.registry,
                "kinds": sorted(b.kinds()),
                "items": len(b.items),
                "provenance": b.provenance,
                "rubric": bool(b.rubric and p.rubric),
            }
            for _, b in p.benchmarks
        },
        "judges": {
            "safety": p.idents.get("safety"),
            "refusal": p.idents.get("refusal"),
            "rubric": p.idents.get("rubric"),
        },
        "columns": list(cfg.report.columns),
        "results": results,
        "warnings": p.warnings,
        "run_dirs": [str(cfg.out)],
    }
    atomic_write_json(cfg.out / "metrics.json", metrics)
    write_report(metrics, cfg.out, plots=cfg.report.plots)
    return metrics
