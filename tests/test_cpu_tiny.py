"""The tiny local model/tokenizer builder: loads with transformers, Qwen-style template, deterministic."""

from __future__ import annotations

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from sinternal_verl.cpu.tiny import build_tiny_model


def _ids(tok, msgs, **kw):
    out = tok.apply_chat_template(msgs, tokenize=True, **kw)
    return list(out["input_ids"] if not isinstance(out, list) else out)


def test_tiny_model_loads_and_generates(tmp_path):
    path = build_tiny_model(tmp_path / "m", extra_texts=["a brand new sentence about llamas"])
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path)
    assert model.config.vocab_size == len(tok)
    assert tok.eos_token == "<|im_end|>" and tok.pad_token == "<|endoftext|>"
    prompt = _ids(tok, [{"role": "user", "content": "How do I bake bread?"}], add_generation_prompt=True)
    out = model.generate(torch.tensor([prompt]), max_new_tokens=5, do_sample=False)
    assert out.shape[1] > len(prompt)
    # unseen text round-trips (byte-level BPE: no UNK)
    text = "Zyxw \u00e9\u00e8 \u4f60\u597d 42"
    assert tok.decode(tok.encode(text, add_special_tokens=False)) == text


def test_chat_template_is_qwen_style_and_turn_consistent(tmp_path):
    tok = AutoTokenizer.from_pretrained(build_tiny_model(tmp_path / "m"))
    msgs = [
        {"role": "system", "content": "Be safe."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "<think>\nhmm\n</think>\n\nHello"},
        {"role": "user", "content": "Again"},
        {"role": "assistant", "content": "Sure", "reasoning_content": "easy"},
    ]
    text = tok.apply_chat_template(msgs, tokenize=False)
    assert text.startswith("<|im_start|>system\nBe safe.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n")
    assert "<|im_start|>assistant\n<think>\nhmm\n</think>\n\nHello<|im_end|>\n" in text
    assert text.endswith("<|im_start|>assistant\n<think>\neasy\n</think>\n\nSure<|im_end|>\n")
    # turn by turn == whole (verl's multi-turn SFT sanity check relies on it)
    per_turn = [i for m in msgs for i in _ids(tok, [m])]
    assert per_turn == _ids(tok, msgs)
    gen = tok.apply_chat_template(msgs[:2], tokenize=False, add_generation_prompt=True, enable_thinking=False)
    assert gen.endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")
    # think tags are single tokens that survive skip_special_tokens; im markers do not
    think_ids = tok.encode("<think></think>", add_special_tokens=False)
    assert len(think_ids) == 2
    assert tok.decode(_ids(tok, msgs[2:3]), skip_special_tokens=True).strip().startswith("assistant\n<think>")


def test_same_seed_same_weights_other_seed_differs(tmp_path):
    a = AutoModelForCausalLM.from_pretrained(build_tiny_model(tmp_path / "a", seed=3))
    b = AutoModelForCausalLM.from_pretrained(build_tiny_model(tmp_path / "b", seed=3))
    c = AutoModelForCausalLM.from_pretrained(build_tiny_model(tmp_path / "c", seed=4, layers=1, hidden=32))
    for (na, pa), (_, pb) in zip(a.named_parameters(), b.named_parameters()):
        assert torch.equal(pa, pb), na
    assert c.config.num_hidden_layers == 1 and c.config.hidden_size == 32
    assert not torch.equal(a.model.embed_tokens.weight[:, :32], c.model.embed_tokens.weight)
