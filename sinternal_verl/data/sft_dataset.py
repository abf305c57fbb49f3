"""``VerificationSFTDataset``: verl's multi-turn SFT dataset, but the critique survives.

Why: the verification target is ``<think>critique</think>\\n\\nVerdict: ...``. Real reasoning
models' chat templates drop reasoning from assistant turns when rendering history
(DeepSeek-R1-Distill always; Qwen3 for any turn not after the last user turn, which is every
turn verl's ``MultiTurnSFTDataset`` renders one at a time). With
``ignore_input_ids_mismatch=True`` verl would then train on the verdict alone, silently.

This subclass tokenizes exactly what the model sees and writes at inference: the user turn
rendered with the template and ``add_generation_prompt=True`` (loss 0), then the assistant
text verbatim plus EOS (loss 1). If the generation prompt already opens the think block (R1
templates end with ``<think>\\n``), that prefix is not repeated in the target. Use it with
``data.custom_cls.path=pkg://sinternal_verl.data.sft_dataset data.custom_cls.name=VerificationSFTDataset``.
"""

from __future__ import annotations

import torch
from verl.utils.dataset.multiturn_sft_dataset import MultiTurnSFTDataset


class VerificationSFTDataset(MultiTurnSFTDataset):
    think_open = "<think>"

    def __getitem__(self, item):
        # verl's __getitem__ calls _process_single_message per turn; we need the whole list
        self._current_messages = self._build_messages(self.dataframe.iloc[item].to_dict())
        return super().__getitem__(item)

    def _process_single_message(self, index, message, full_message=None, tools=None, enable_thinking=None):
        kwargs = dict(self.apply_chat_template_kwargs)
        if enable_thinking is not None:
            kwargs["enable_thinking"] = enable_thinking
        messages = self._current_messages
        if message["role"] != "assistant":
            if [m["role"] for m in messages] != ["user", "assistant"]:
                raise ValueError(
                    f"a verification example is [user, assistant], got {[m['role'] for m in messages]}"
                )
            text = self.tokenizer.apply_chat_template(
                messages[:1], tools=tools, add_generation_prompt=True, tokenize=False, **kwargs
            )
            ids = self.tokenizer(text, add_special_tokens=False, return_tensors="pt")["input_ids"][0]
            self._prompt_text = text
            return ids, torch.zeros_like(ids), torch.ones_like(ids), {}
        if index != len(messages) - 1:
            raise ValueError("verification examples end with their one assistant turn")
        content = message["content"]
        prompt = getattr(self, "_prompt_text", "")
        if prompt.rstrip().endswith(self.think_open) and content.lstrip().startswith(self.think_open):
            content = content.lstrip()[len(self.think_open) :].lstrip("\n")
        ids = self.tokenizer(
            content + (self.tokenizer.eos_token or ""), add_special_tokens=False, return_tensors="pt"
        )["input_ids"][0]
        return ids, torch.ones_like(ids), torch.ones_like(ids), {}

    def sanity_check(self, input_ids, messages, tools, enable_thinking):
        """The target must decode back to the assistant text (verl's check compares with a
        template rendering that, for reasoning models, is exactly what we must not match)."""
        return None
