"""Build a tiny, random-init Qwen3 model and a local BPE tokenizer with a Qwen-style chat template.

Why: tests, CI and the CPU demo need a real Hugging Face checkpoint that verl's trainers,
transformers and our rollout can load, but the HF hub is unreachable and real models are far
too big for a 2-core box. Everything here is built from scratch in under a second, with no
download, and is deterministic for a given ``seed``.

The chat template speaks Qwen's format (``<|im_start|>role\\n...<|im_end|>\\n``, reasoning in
``<think>...</think>``, ``enable_thinking=False`` pre-fills an empty think block). Unlike the
real Qwen3 template it never drops reasoning from earlier assistant turns, so rendering a
conversation turn by turn gives the same tokens as rendering it whole (verl's multi-turn SFT
dataset checks exactly that).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path

#: special tokens, in id order right after the byte-level alphabet and merges
PAD_TOKEN = "<|endoftext|>"
IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"
SPECIAL_TOKENS: tuple[str, ...] = (PAD_TOKEN, IM_START, IM_END)
#: added but not "special": they must survive ``skip_special_tokens=True`` decoding, as in Qwen3
ADDED_TOKENS: tuple[str, ...] = (THINK_OPEN, THINK_CLOSE)

#: Qwen-style chat template (see module docstring for the one deliberate difference)
CHAT_TEMPLATE = (
    "{%- for message in messages %}"
    "{%- if message['role'] == 'assistant' %}"
    "{%- set content = message['content'] if message['content'] is string else '' %}"
    "{%- if message.get('reasoning_content') %}"
    "{{- '<|im_start|>assistant\\n<think>\\n' + message['reasoning_content'].strip('\\n')"
    " + '\\n</think>\\n\\n' + content.lstrip('\\n') + '<|im_end|>\\n' }}"
    "{%- else %}"
    "{{- '<|im_start|>assistant\\n' + content + '<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- else %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + (message['content'] if message['content'] is string else '')"
    " + '<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}"
    "{{- '<|im_start|>assistant\\n' }}"
    "{%- if enable_thinking is defined and enable_thinking is false %}"
    "{{- '<think>\\n\\n</think>\\n\\n' }}"
    "{%- endif %}"
    "{%- endif %}"
)

#: a few lines so BPE learns merges for the words our tests and demo use
DEFAULT_TEXTS: tuple[str, ...] = (
    "You are a helpful assistant. Think step by step, then answer.",
    "How do I bake bread at home? Mix flour, water, salt and yeast, knead, rest, and bake.",
    "I cannot help with that request because it could cause harm. I can help with something safe instead.",
    "Solve 2 + 3 * 4. First multiply 3 by 4 to get 12, then add 2. Answer: 14. The answer is \\boxed{14}.",
    "Is this answer safe? The answer follows the safety specification, so the verdict is safe.",
    "Critique: the response gives dangerous instructions. Verdict: unsafe.",
    "Safety: Safe\nCategories: None\nRefusal: No",
    "Safety: Unsafe\nCategories: Violent\nRefusal: Yes",
    "What is the capital of France? The capital of France is Paris.",
    "Let me think about this question carefully before I write the final answer.",
    "0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 100 1000",
)


#: control tokens of other families' real tokenizers (Llama 3, DeepSeek-R1, Mistral / Llama 2):
#: a tokenizer built with them splits them out as special ids exactly as those tokenizers do,
#: which is what guard-prompt injection tests need
FOREIGN_SPECIAL_TOKENS: tuple[str, ...] = (
    "<|begin_of_text|>", "<|eot_id|>", "<|start_header_id|>", "<|end_header_id|>",
    "<｜begin▁of▁sentence｜>", "<｜User｜>", "<｜Assistant｜>",
    "[INST]", "[/INST]", "<s>", "</s>",
)  # fmt: skip

#: the smallest Qwen3 that vLLM's CPU attention accepts (it rejects head_dim < 64): hidden 128,
#: 2 heads of 64, 1 KV head, 2 layers, ~600-token BPE (see REFERENCE section 7)
VLLM_TINY: dict = {
    "hidden": 128,
    "heads": 2,
    "kv_heads": 1,
    "layers": 2,
    "intermediate": 256,
    "vocab_size": 600,
}


def build_tokenizer(
    vocab_size: int = 512,
    extra_texts: Iterable[str] = (),
    *,
    extra_special_tokens: Sequence[str] = (),
    bos_token: str | None = None,
):
    """Train a byte-level BPE tokenizer on :data:`DEFAULT_TEXTS` + ``extra_texts``.

    Returns a ``transformers`` fast tokenizer with the Qwen-style chat template, ``<|im_end|>``
    as EOS and ``<|endoftext|>`` as PAD. Byte-level BPE means any text encodes (no UNK), so
    prompts the tokenizer never saw still round-trip.

    ``extra_special_tokens`` (e.g. :data:`FOREIGN_SPECIAL_TOKENS`) are added as special tokens.
    ``bos_token`` makes it behave like Llama / R1 tokenizers: the chat template starts with the
    BOS *and* encoding with ``add_special_tokens=True`` prepends one, so rendered chat text
    encoded the default way carries two (the double-BOS trap).
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    texts = list(DEFAULT_TEXTS) + [str(t) for t in extra_texts]
    tok.train_from_iterator(texts, trainer=trainer)
    tok.add_tokens(list(ADDED_TOKENS))
    specials = [
        t for t in (*extra_special_tokens, *([bos_token] if bos_token else [])) if t not in SPECIAL_TOKENS
    ]
    if specials:
        tok.add_special_tokens(list(dict.fromkeys(specials)))
    if bos_token:
        bos_id = tok.token_to_id(bos_token)
        tok.post_processor = processors.TemplateProcessing(
            single=f"{bos_token} $A",
            pair=f"{bos_token} $A {bos_token} $B",
            special_tokens=[(bos_token, bos_id)],
        )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token=IM_END,
        pad_token=PAD_TOKEN,
        bos_token=bos_token,
        unk_token=None,
        model_max_length=32768,
        padding_side="left",
    )
    fast.chat_template = ("{{- bos_token }}" + CHAT_TEMPLATE) if bos_token else CHAT_TEMPLATE
    return fast


def build_tiny_model(
    out_dir: str | Path,
    *,
    vocab_size: int = 512,
    hidden: int = 64,
    layers: int = 2,
    heads: int = 4,
    kv_heads: int = 2,
    intermediate: int = 128,
    max_positions: int = 2048,
    seed: int = 0,
    extra_texts: Sequence[str] = (),
    extra_special_tokens: Sequence[str] = (),
    bos_token: str | None = None,
) -> Path:
    """Write a random-init Qwen3 causal LM + tokenizer to ``out_dir`` (HF ``save_pretrained`` layout).

    ``vocab_size`` is the BPE target; the model's embedding size is the tokenizer's real length
    (BPE may stop early on a small corpus). Returns the folder, loadable with
    ``AutoModelForCausalLM.from_pretrained`` / ``AutoTokenizer.from_pretrained`` and by verl
    (``actor_rollout_ref.model.path=<out_dir>``). Same arguments -> same weights and tokens.
    """
    import torch
    from transformers import GenerationConfig, Qwen3Config, Qwen3ForCausalLM

    if hidden % heads:
        raise ValueError(f"hidden={hidden} must be divisible by heads={heads}")
    if heads % kv_heads:
        raise ValueError(f"heads={heads} must be divisible by kv_heads={kv_heads}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)

    tokenizer = build_tokenizer(
        vocab_size=vocab_size,
        extra_texts=extra_texts,
        extra_special_tokens=extra_special_tokens,
        bos_token=bos_token,
    )
    eos_id = tokenizer.convert_tokens_to_ids(IM_END)
    pad_id = tokenizer.convert_tokens_to_ids(PAD_TOKEN)
    config = Qwen3Config(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=intermediate,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        head_dim=hidden // heads,
        max_position_embeddings=max_positions,
        tie_word_embeddings=True,
        bos_token_id=pad_id,
        eos_token_id=eos_id,
        pad_token_id=pad_id,
        architectures=["Qwen3ForCausalLM"],
    )
    torch.manual_seed(seed)
    model = Qwen3ForCausalLM(config).to(torch.float32)
    model.generation_config = GenerationConfig(eos_token_id=eos_id, pad_token_id=pad_id, bos_token_id=pad_id)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    # the template also as a plain file: readable, and what newer transformers load first
    (out / "chat_template.jinja").write_text(tokenizer.chat_template)
    (out / "sinternal_tiny.json").write_text(
        json.dumps(
            {
                "vocab_size": len(tokenizer),
                "hidden": hidden,
                "layers": layers,
                "heads": heads,
                "kv_heads": kv_heads,
                "intermediate": intermediate,
                "seed": seed,
            },
            indent=2,
        )
    )
    return out


def build_vllm_tiny_model(out_dir: str | Path, **overrides) -> Path:
    """:func:`build_tiny_model` with the :data:`VLLM_TINY` sizes (what vLLM's CPU build
    serves) and Qwen's control tokens plus :data:`FOREIGN_SPECIAL_TOKENS` as special tokens."""
    kw = {**VLLM_TINY, "extra_special_tokens": FOREIGN_SPECIAL_TOKENS, **overrides}
    return build_tiny_model(out_dir, **kw)
