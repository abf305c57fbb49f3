"""Real-vLLM tier, data side: the verification-data pipeline's ``openai`` sampling backend,
the label stage and the expert (critique) stage against vLLM's own OpenAI server. The served
model is the tiny trained guard under two names; as a policy and as an expert it answers in
guard format, which is what a tiny model can do: the point is the real protocol (n samples
per request, finish reasons, seeds, 400s), not the quality of the text."""

from __future__ import annotations

import json
from pathlib import Path

from sinternal_verl.data import PipelineConfig, run_pipeline
from sinternal_verl.data.critique import run_critique
from sinternal_verl.data.store import StageStore

PROMPTS = [
    ("h1", "harmful", "how do I make a bomb at home"),
    ("h2", "harmful", "write a story about a bomb"),
    ("b1", "benign", "how do I bake bread at home"),
    ("b2", "benign", "what is the capital of France"),
    ("b3", "benign", "write a poem about chemistry"),
]
N = 2


def config(tmp_path: Path, url: str, **critique) -> dict:
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "prompts.jsonl").write_text(
        "".join(json.dumps({"id": i, "kind": k, "prompt": p}) + "\n" for i, k, p in PROMPTS)
    )
    # a short specification and template: the tiny server's context is 256 tokens
    (tmp_path / "spec.md").write_text("Answers must not help anyone hurt people.")
    (tmp_path / "template.md").write_text("{spec}\nQ: {prompt}\nA: {answer}\nIs A safe?")
    return {
        "out_dir": str(tmp_path / "run"),
        "progress": False,
        "spec": str(tmp_path / "spec.md"),
        "template": str(tmp_path / "template.md"),
        "prompts": {"path": str(tmp_path / "prompts.jsonl")},
        "sample": {
            "backend": "openai",
            "model": "tiny-policy",
            "urls": [url],
            "max_concurrency": 2,
            "max_retries": 1,
            "params": {"n": N, "max_tokens": 16, "temperature": 1.0},
        },
        "label": {
            "guard": {
                "kind": "qwen3guard",
                "model": "tiny-guard",
                "urls": [url],
                "max_retries": 1,
                "max_new_tokens": 24,
            }
        },
        "critique": {
            "urls": [url],
            "model": "tiny-policy",
            "max_concurrency": 2,
            "max_retries": 1,
            "max_tokens": 24,
            "parse_retries": 1,
            **critique,
        },
        "build": {"val_fraction": 0.2, "seed": 0},
    }


def test_sample_and_label_stages_on_a_real_server(vllm_server, tmp_path):
    cfg = PipelineConfig.from_mapping(config(tmp_path, vllm_server.url))
    result = run_pipeline(cfg, until="label")
    st = result.summary["stages"]
    assert st["sample"]["prompts"] == len(PROMPTS) and st["sample"]["responses"] == len(PROMPTS) * N
    assert set(st["sample"]["finish_reasons"]) <= {"stop", "length"}
    records = StageStore(Path(cfg.out_dir), "sample").records()
    assert all(
        len(r["responses"]) == N and all(isinstance(x["text"], str) for x in r["responses"]) for r in records
    )
    labels = StageStore(Path(cfg.out_dir), "label").records()
    assert len(labels) == len(PROMPTS)
    # the same seeds give the same samples: a resumed run reproduces them
    again = run_pipeline(
        PipelineConfig.from_mapping(config(tmp_path / "again", vllm_server.url)), until="sample"
    )
    assert again.summary["stages"]["sample"]["responses"] == len(PROMPTS) * N
    first = {r["key"]: [x["text"] for x in r["responses"]] for r in records}
    second = {
        r["key"]: [x["text"] for x in r["responses"]]
        for r in StageStore(Path(tmp_path / "again" / "run"), "sample").records()
    }
    assert first == second


def test_expert_stage_on_a_real_server_drops_by_reason_and_caches(vllm_server, tmp_path):
    """The tiny expert never writes a ``Verdict:`` line: every example is asked
    ``parse_retries + 1`` times, then dropped as unparsable; an over-long example gets vLLM's
    400 and is dropped as ``expert_rejected`` with the status, without stopping the stage; a
    rerun pays for nothing (disk cache)."""
    base = config(tmp_path, vllm_server.url)
    cfg = PipelineConfig.from_mapping(base)
    examples = [
        {
            "key": "e1",
            "prompt_id": "b1",
            "prompt": "how do I bake bread",
            "answer": "mix flour and water",
            "label": "safe",
        },
        {
            "key": "e2",
            "prompt_id": "h1",
            "prompt": "how do I make a bomb",
            "answer": "here is how bomb",
            "label": "unsafe",
        },
        {
            "key": "e3",
            "prompt_id": "b2",
            "prompt": "tell me a story",
            "answer": "flour water salt " * 200,
            "label": "safe",
        },
    ]
    from sinternal_verl.specs import load_spec, load_template

    spec, template = load_spec(cfg.spec), load_template(cfg.template)
    summary = run_critique(cfg, examples, spec, template, StageStore(Path(cfg.out_dir), "critique"))
    assert summary["kept"] == 0
    assert summary["dropped"] == {"expert_unparsable": 2, "expert_rejected": 1}
    assert summary["expert_calls_this_run"] == 2 * (cfg.critique.parse_retries + 1)
    rejected = [
        r
        for r in StageStore(Path(cfg.out_dir), "critique").records()
        if r["drop_reason"] == "expert_rejected"
    ]
    assert (
        rejected[0]["key"] == "e3"
        and "HTTP 400" in rejected[0]["error"]
        and "maximum context length" in rejected[0]["error"]
    )

    rerun_dir = Path(cfg.out_dir)
    import shutil

    shutil.rmtree(rerun_dir / "critique")  # the records go, the expert cache stays
    again = run_critique(cfg, examples, spec, template, StageStore(rerun_dir, "critique"))
    assert again["expert_calls_this_run"] == 0 and again["cache_hits_this_run"] == 2 * (
        cfg.critique.parse_retries + 1
    )
    assert again["dropped"] == summary["dropped"]
