"""Real-vLLM tier, offline engine: the sample stage's :class:`VLLMEngine` on vLLM's own
``LLM`` (CPU build, its venv), with a tokenizer whose chat template writes the BOS as Llama
and R1 templates do. The engine hands vLLM token ids, so the prompt carries one BOS; the
old path (rendered text to ``LLM.generate``) is run too, to show the trap is real."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import sinternal_verl.data.engines as engines_mod
from sinternal_verl.cpu.tiny import build_vllm_tiny_model

SCRIPT = r"""
import importlib.util, json, sys
spec = importlib.util.spec_from_file_location("sinternal_engines", sys.argv[1])
m = importlib.util.module_from_spec(spec)
sys.modules["sinternal_engines"] = m  # engines.py needs only the stdlib at import
spec.loader.exec_module(m)
eng = m.VLLMEngine(sys.argv[2], {"max_model_len": 128, "dtype": "float32", "enforce_eager": True}, {})
(res,) = eng.generate([m.GenRequest("p", "hello there", 2, 0.8, 1.0, 4, 7)])
from vllm import SamplingParams
old = eng.llm.generate([m.render_chat(eng.tokenizer, "hello there", {})], SamplingParams(max_tokens=1), use_tqdm=False)
print("RESULT " + json.dumps({"bos": eng.tokenizer.bos_token_id, "engine_ids": res.prompt_token_ids,
                              "text_path_ids": list(old[0].prompt_token_ids), "texts": res.texts,
                              "finish": res.finish_reasons}))
"""


def test_vllm_engine_sends_token_ids_with_one_bos(vllm_python, tmp_path):
    model = build_vllm_tiny_model(tmp_path / "bos_model", bos_token="<|begin_of_text|>")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(
        VLLM_CPU_KVCACHE_SPACE="1", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", VLLM_NO_USAGE_STATS="1"
    )
    res = subprocess.run(
        [vllm_python, "-c", SCRIPT, str(Path(engines_mod.__file__)), str(model)],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    lines = [ln for ln in res.stdout.splitlines() if ln.startswith("RESULT ")]
    assert res.returncode == 0 and lines, res.stdout[-3000:] + res.stderr[-3000:]
    out = json.loads(lines[-1][len("RESULT ") :])
    bos = out["bos"]
    assert out["engine_ids"].count(bos) == 1 and out["engine_ids"][0] == bos
    assert out["text_path_ids"].count(bos) == 2  # what LLM.generate(text) did before
    assert len(out["texts"]) == 2 and all(f in ("stop", "length") for f in out["finish"])
