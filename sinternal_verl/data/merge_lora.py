"""Merge the verification-SFT LoRA adapter into its base model: the HF folder RL starts from.

verl's SFT trainer saves FSDP shards; ``python -m verl.model_merger merge --backend fsdp
--local_dir <ckpt>/global_step_N --target_dir <dir>`` turns them into an HF base model plus
``<dir>/lora_adapter`` (peft format). This step folds that adapter into the weights with
peft's ``merge_and_unload`` so GRPO (and vLLM rollouts) load a plain model, no adapter code.

    python -m sinternal_verl.data.merge_lora --base <base model> --adapter <dir>/lora_adapter --out <merged>
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def merge_lora(base: str | Path, adapter: str | Path, out: str | Path, dtype: str = "auto") -> Path:
    """Load ``base``, apply the peft adapter in ``adapter``, merge, save model + tokenizer to ``out``."""
    adapter = Path(adapter)
    if not (adapter / "adapter_config.json").is_file():
        raise FileNotFoundError(f"{adapter} has no adapter_config.json (expected a peft LoRA adapter folder)")
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(str(base), dtype=dtype)
    merged = PeftModel.from_pretrained(model, str(adapter)).merge_and_unload()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    merged.save_pretrained(out)
    tok_src = adapter if (adapter / "tokenizer_config.json").exists() else base
    AutoTokenizer.from_pretrained(str(tok_src)).save_pretrained(out)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--base", required=True, help="base HF model folder (or verl model_merger's target_dir)")
    p.add_argument(
        "--adapter", required=True, help="peft adapter folder (model_merger writes <target_dir>/lora_adapter)"
    )
    p.add_argument("--out", required=True, help="where to write the merged HF model")
    p.add_argument("--dtype", default="auto", help="auto, bfloat16, float16 or float32")
    a = p.parse_args(argv)
    print(merge_lora(a.base, a.adapter, a.out, a.dtype))
    return 0


if __name__ == "__main__":
    sys.exit(main())
