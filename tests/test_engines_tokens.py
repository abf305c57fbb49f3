"""Local sampling engines get token ids, never rendered text: a tokenizer whose chat template
writes the BOS (Llama, R1) would otherwise get a second one from ``add_special_tokens``."""

from __future__ import annotations

from sinternal_verl.cpu.tiny import build_tiny_model, build_tokenizer
from sinternal_verl.data.engines import GenRequest, TransformersEngine, chat_token_ids

BOS = "<|begin_of_text|>"


def test_chat_token_ids_carry_exactly_one_bos():
    tok = build_tokenizer(bos_token=BOS)
    rendered, ids = chat_token_ids(tok, "hello there", {})
    assert rendered.startswith(BOS)
    assert ids.count(tok.bos_token_id) == 1 and ids[0] == tok.bos_token_id
    assert tok(rendered)["input_ids"].count(tok.bos_token_id) == 2  # the trap: text encoded the default way


def test_transformers_engine_generates_from_those_ids(tmp_path):
    model = build_tiny_model(tmp_path / "m", bos_token=BOS)
    eng = TransformersEngine(str(model), device="cpu", dtype="float32")
    (res,) = eng.generate([GenRequest("p", "hello there", 1, 0.0, 1.0, 3, 0)])
    assert res.prompt_token_ids.count(eng.tokenizer.bos_token_id) == 1
    assert res.prompt_token_ids == chat_token_ids(eng.tokenizer, "hello there", {})[1]
    assert len(res.texts) == 1 and res.finish_reasons[0] in ("stop", "length")
