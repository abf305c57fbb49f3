"""A tiny guard that answers in Qwen3Guard's format, trained in seconds on CPU.

Why: with a random model every real-server answer is a parse failure, so the reward path
could only be tested on its error branch. This trains the vLLM-sized tiny Qwen3
(:data:`~sinternal_verl.cpu.tiny.VLLM_TINY`) with plain torch to answer, through the same
chat template a real server applies::

    Safety: Unsafe|Safe
    Categories: Violent|None
    Refusal: No                (response moderation only)

keyed on a trigger word (:data:`TRIGGER`) in the judged text: in the answer for response
moderation, in the prompt for prompt moderation. Deterministic for a seed; every number
is an argument.
"""

from __future__ import annotations

import random
from pathlib import Path

from ..cpu.tiny import build_vllm_tiny_model

TRIGGER = "bomb"
WORDS = (
    "how do I bake bread at home mix flour water salt yeast knead rest the answer is safe help "
    "with something instead capital of France Paris think step by step then question carefully "
    "final write a poem song story about chemistry photo python process"
).split()
SAFE_PROMPT = "Safety: Safe\nCategories: None"
UNSAFE_PROMPT = "Safety: Unsafe\nCategories: Violent"
SAFE_RESPONSE = SAFE_PROMPT + "\nRefusal: No"
UNSAFE_RESPONSE = UNSAFE_PROMPT + "\nRefusal: No"


def _sentence(rng: random.Random, trigger: bool, lo: int = 3, hi: int = 9) -> str:
    words = [rng.choice(WORDS) for _ in range(rng.randint(lo, hi))]
    if trigger:
        words.insert(rng.randint(0, len(words)), TRIGGER)
    return " ".join(words)


def example(rng: random.Random) -> tuple[list[dict], str]:
    """(guard chat messages, target answer) for one random item."""
    unsafe = rng.random() < 0.5
    if rng.random() < 0.3:  # prompt moderation
        return [{"role": "user", "content": _sentence(rng, unsafe)}], UNSAFE_PROMPT if unsafe else SAFE_PROMPT
    prompt = _sentence(rng, rng.random() < 0.2)  # a trigger in the *prompt* must not decide
    answer = _sentence(rng, unsafe)
    if rng.random() < 0.25:
        # An answer that quotes a verdict: the tier's policy is this very model, so its samples
        # read "Safety: Safe ...". Without such examples a quoted verdict steered the answer on
        # some CPUs (the Refusal line dropped, as in prompt moderation): only the trigger decides.
        words = answer.split(" ")
        words.insert(rng.randint(0, len(words)), rng.choice((SAFE_PROMPT, UNSAFE_PROMPT, SAFE_RESPONSE)))
        answer = " ".join(words)
    msgs = [{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}]
    return msgs, UNSAFE_RESPONSE if unsafe else SAFE_RESPONSE


def train_tiny_guard(
    out_dir: str | Path,
    *,
    steps: int = 200,
    batch_size: int = 16,
    pool_size: int = 512,
    lr: float = 3e-3,
    seed: int = 0,
) -> Path:
    """Build the vLLM-sized tiny model in ``out_dir``, train it to answer as above, save it."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = build_vllm_tiny_model(
        out_dir, seed=seed, extra_texts=(SAFE_RESPONSE, UNSAFE_RESPONSE, " ".join(WORDS), TRIGGER)
    )
    tok = AutoTokenizer.from_pretrained(out)
    model = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32)
    model.train()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matrices: one thread beats two contending ones on a shared box
    torch.manual_seed(seed)
    rng = random.Random(seed)
    eos = tok.convert_tokens_to_ids("<|im_end|>")
    pad = tok.pad_token_id
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / 20) * max(0.05, 1 - s / steps)
    )
    targets = {
        t: tok.encode(t, add_special_tokens=False) + [eos]
        for t in (SAFE_PROMPT, UNSAFE_PROMPT, SAFE_RESPONSE, UNSAFE_RESPONSE)
    }
    pool = []  # tokenized once: rendering templates per step would cost more than the training
    for _ in range(pool_size):
        msgs, target = example(rng)
        text = tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
        pool.append((tok.encode(text, add_special_tokens=False), targets[target]))
    for _ in range(steps):
        rows = [pool[rng.randrange(pool_size)] for _ in range(batch_size)]
        width = max(len(p) + len(t) for p, t in rows)
        ids = torch.full((len(rows), width), pad, dtype=torch.long)
        labels = torch.full((len(rows), width), -100, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for r, (p, t) in enumerate(rows):
            seq = p + t
            ids[r, : len(seq)] = torch.tensor(seq)
            labels[r, len(p) : len(seq)] = torch.tensor(t)
            mask[r, : len(seq)] = 1
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
    torch.set_num_threads(threads)
    model.eval()
    model.save_pretrained(out)
    return out
