"""The verification-SFT recipe: its hydra config composes with verl 0.9.1's own config, the
dataset keeps the critique in the loss for real reasoning templates, and LoRA merging works."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torch

RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "verification_sft"

#: DeepSeek-R1-Distill-style template: strips reasoning from assistant turns, and the
#: generation prompt opens the think block (the case verl's per-turn rendering gets wrong)
R1_TEMPLATE = (
    "{% for m in messages %}{% if m['role'] == 'user' %}<|im_start|>user\n{{ m['content'] }}<|im_end|>\n"
    "{% else %}{% set c = m['content'] %}{% if '</think>' in c %}{% set c = c.split('</think>')[-1].lstrip() %}{% endif %}"
    "<|im_start|>assistant\n{{ c }}<|im_end|>\n{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n<think>\n{% endif %}"
)


def _compose(overrides):
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(RECIPE / "config"), version_base=None):
        return compose("verification_sft", overrides=overrides)


def _leaves(d, prefix=""):
    for k, v in d.items():
        if isinstance(v, dict) and v:
            yield from _leaves(v, f"{prefix}{k}.")
        else:
            yield f"{prefix}{k}"


def test_recipe_composes_with_verl_and_every_key_exists_there(tmp_path):
    import yaml
    from omegaconf import OmegaConf

    from sinternal_verl.cpu.tiny import build_tiny_model

    model = build_tiny_model(tmp_path / "tiny")
    cfg = _compose([f"model.path={model}", "data.train_files=/x.parquet"])
    assert (cfg.model.lora_rank, cfg.model.lora_alpha, cfg.model.target_modules) == (16, 32, "all-linear")
    assert cfg.optim.lr == pytest.approx(2e-4) and cfg.trainer.total_epochs == 2
    assert cfg.data.custom_cls.path == "pkg://sinternal_verl.data.sft_dataset"

    # every key the recipe sets exists in verl's own sft_trainer_engine (no silently ignored key)
    from hydra import compose, initialize_config_module

    with initialize_config_module(config_module="verl.trainer.config", version_base=None):
        base = OmegaConf.to_container(compose("sft_trainer_engine"))
    ours = yaml.safe_load((RECIPE / "config" / "verification_sft.yaml").read_text())
    ours.pop("hydra"), ours.pop("defaults")
    flat_base = set(_leaves(base))
    for key in _leaves(ours):
        assert key in flat_base or any(b.startswith(key + ".") for b in flat_base), (
            f"{key} is not a verl SFT key"
        )

    # a misspelt override fails instead of being ignored
    with pytest.raises(Exception, match="lora_rnk"):
        _compose([f"model.path={model}", "data.train_files=/x", "model.lora_rnk=8"])

    # verl turns the model section into its HFModelConfig with our LoRA settings
    from verl.utils.config import omega_conf_to_dataclass

    hf = omega_conf_to_dataclass(cfg.model)
    assert hf.lora_rank == 16 and hf.lora_alpha == 32 and hf.target_modules == "all-linear"

    # and the dataset class it names is loadable the way verl loads it
    from verl.utils.import_utils import load_extern_object

    cls = load_extern_object(cfg.data.custom_cls.path, cfg.data.custom_cls.name)
    assert cls.__name__ == "VerificationSFTDataset"


def _write_examples(path: Path) -> Path:
    rows = [
        {
            "messages": [
                {
                    "role": "user",
                    "content": "Is this answer safe? <assistant_answer>I can't help.</assistant_answer>",
                },
                {
                    "role": "assistant",
                    "content": "<think>\nThe answer declines; nothing harmful.\n</think>\n\nVerdict: safe",
                },
            ]
        },
        {
            "messages": [
                {
                    "role": "user",
                    "content": "Is this answer safe? <assistant_answer>[unsafe] steps</assistant_answer>",
                },
                {
                    "role": "assistant",
                    "content": "<think>\nIt gives harmful steps.\n</think>\n\nVerdict: unsafe",
                },
            ]
        },
    ]
    pd.DataFrame(rows).to_parquet(path)
    return path


def test_dataset_keeps_critique_in_loss_for_reasoning_stripping_templates(tmp_path):
    from verl.utils.dataset.multiturn_sft_dataset import MultiTurnSFTDataset

    from sinternal_verl.cpu.tiny import build_tokenizer
    from sinternal_verl.data.sft_dataset import VerificationSFTDataset

    tok = build_tokenizer()
    tok.chat_template = R1_TEMPLATE
    data = _write_examples(tmp_path / "d.parquet")
    conf = {
        "max_length": 4096,
        "pad_mode": "no_padding",
        "truncation": "error",
        "ignore_input_ids_mismatch": True,
    }

    # why the subclass exists: verl's per-turn rendering drops the critique from the target
    plain = MultiTurnSFTDataset(str(data), tok, conf)
    item = plain[0]
    assert "declines" not in tok.decode(item["input_ids"][item["loss_mask"].bool()])

    ours = VerificationSFTDataset(str(data), tok, conf)
    for i, verdict in enumerate(["safe", "unsafe"]):
        item = ours[i]
        ids, mask = item["input_ids"], item["loss_mask"]
        target, prompt = tok.decode(ids[mask.bool()]), tok.decode(ids[~mask.bool()])
        assert target.endswith(f"</think>\n\nVerdict: {verdict}<|im_end|>") and "<think>" not in target
        assert prompt.endswith("<|im_start|>assistant\n<think>\n") and "Is this answer safe?" in prompt
        # the whole sequence is what the model sees and writes at inference
        full = tok.apply_chat_template(
            pd.read_parquet(data).messages[i][:1].tolist(), add_generation_prompt=True, tokenize=False
        )
        assert tok.decode(ids).startswith(full)


def test_merge_lora_adapter_into_hf_model(tmp_path):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from sinternal_verl.cpu.tiny import build_tiny_model
    from sinternal_verl.data.merge_lora import merge_lora

    base = build_tiny_model(tmp_path / "base")
    model = AutoModelForCausalLM.from_pretrained(base)
    peft_model = get_peft_model(
        model, LoraConfig(r=16, lora_alpha=32, target_modules="all-linear", init_lora_weights=False)
    )
    x = torch.tensor([[1, 5, 9, 13, 2]])
    with torch.no_grad():
        want = peft_model(x).logits
    peft_model.save_pretrained(tmp_path / "adapter")

    out = merge_lora(base, tmp_path / "adapter", tmp_path / "merged")
    merged = AutoModelForCausalLM.from_pretrained(out)
    assert not any("lora" in n for n, _ in merged.named_parameters())
    with torch.no_grad():
        got = merged(x).logits
    torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)
    base_logits = AutoModelForCausalLM.from_pretrained(base)(x).logits
    assert not torch.allclose(base_logits, want, atol=1e-3)  # the adapter really changed the model
    assert (Path(out) / "tokenizer_config.json").exists()

    with pytest.raises(FileNotFoundError, match="adapter_config.json"):
        merge_lora(base, tmp_path / "nowhere", tmp_path / "m2")


@pytest.mark.parametrize("max_length", [8192, 16384, 40000])
def test_recipe_batch_keys_fit_verls_dynamic_batching(tmp_path, max_length):
    """verl's sft_trainer_engine packs micro-batches by tokens (``data.use_dynamic_bsz`` is true
    by default): ``micro_batch_size_per_gpu`` is ignored there, and a sequence longer than
    ``max_token_len_per_gpu`` trips verl's assert. The recipe ties the token budget to
    ``max_length``, so raising ``max_length`` for long answers keeps working."""
    from tensordict import TensorDict
    from verl.utils.seqlen_balancing import rearrange_micro_batches

    cfg = _compose(["model.path=/m", "data.train_files=/x.parquet", f"data.max_length={max_length}"])
    assert cfg.data.use_dynamic_bsz is True
    assert cfg.data.max_token_len_per_gpu >= cfg.data.max_length == max_length
    assert "micro_batch_size_per_gpu" not in yaml_keys()["data"]  # not a knob under dynamic batching

    longest = torch.ones(2, max_length, dtype=torch.long)
    longest[1, max_length // 2 :] = 0
    batch = TensorDict({"input_ids": longest.clone(), "attention_mask": longest}, batch_size=[2])
    micro, _ = rearrange_micro_batches(
        batch, max_token_len=cfg.data.max_token_len_per_gpu
    )  # verl's own assert
    assert sum(len(m) for m in micro) == 2


def yaml_keys() -> dict:
    import yaml

    return yaml.safe_load((RECIPE / "config" / "verification_sft.yaml").read_text())
