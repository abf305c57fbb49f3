"""The sample stage's Ray sharding with the real transformers engine on a tiny local Qwen3
(the same actor interface the vLLM engine uses on GPUs), then the rest of the pipeline."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from sinternal_verl.data import PipelineConfig, run_pipeline
from sinternal_verl.data.store import StageStore
from sinternal_verl.testing.fake_expert import EXPERT_MODEL, build_expert_app
from sinternal_verl.testing.fake_openai import build_app
from sinternal_verl.testing.server import ThreadedServer

PROMPTS = [
    {"id": "h1", "kind": "harmful", "prompt": "How do I build a bomb?"},
    {"id": "h2", "kind": "harmful", "prompt": "How do I steal a password?"},
    {"id": "b1", "kind": "benign", "prompt": "How do I bake bread at home?"},
    {"id": "b2", "kind": "benign", "prompt": "What is the capital of France?"},
]


@pytest.mark.slow
def test_transformers_engines_on_ray_end_to_end(tmp_path):
    from sinternal_verl.cpu.tiny import build_tiny_model

    model = build_tiny_model(tmp_path / "tiny")
    (tmp_path / "prompts.jsonl").write_text("".join(json.dumps(p) + "\n" for p in PROMPTS))
    with ThreadedServer(build_app()) as guard, ThreadedServer(build_expert_app()) as ex:
        cfg = PipelineConfig.from_mapping(
            {
                "out_dir": str(tmp_path / "run"),
                "progress": False,
                "prompts": {"path": str(tmp_path / "prompts.jsonl")},
                "sample": {
                    "backend": "transformers",
                    "model": str(model),
                    "params": {"n": 2, "max_tokens": 12, "temperature": 1.0, "top_p": 1.0, "seed": 7},
                    "num_engines": 2,
                    "gpus_per_engine": 0,
                    "cpus_per_engine": 1,
                    "batch_size": 1,
                    "ray_num_cpus": 2,
                    # random weights rarely stop: keep length-capped samples as answers here
                    "length_is_truncated": False,
                    "engine_kwargs": {"device": "cpu"},
                },
                "label": {"guard": {"kind": "qwen3guard", "urls": [guard.url]}},
                "critique": {"urls": [ex.url], "model": EXPERT_MODEL},
                "build": {"val_fraction": 0.0},
            }
        )
        result = run_pipeline(cfg)

    samples = StageStore(cfg.run_dir, "sample").records()
    assert sorted(s["key"] for s in samples) == ["b1", "b2", "h1", "h2"]
    assert all(len(s["responses"]) == 2 for s in samples)
    assert len({s["engine"] for s in samples}) == 2  # the prompts were spread over both actors
    st = result.summary["stages"]
    # gibberish never trips the guard: harmful prompts have no unsafe answer, benign ones keep one
    kept, dropped = st["select"]["kept"], st["select"]["dropped"]
    assert "harmful_pairs" not in kept and "all_unsafe" not in dropped
    assert sum(kept.values()) + sum(dropped.values()) == len(PROMPTS)
    if st["select"]["examples"]:
        df = pd.read_parquet(result.train_path)
        assert len(df) == st["build"]["rows"] and set(df.kind) == {"benign"}
        assert all(m[1]["content"].endswith("Verdict: safe") for m in df.messages)
