#!/usr/bin/env bash
# FSDP checkpoint -> HF base + peft adapter (verl's model_merger) -> one merged HF model for RL.
#   bash recipes/verification_sft/merge.sh checkpoints/sinternal/verification_sft/global_step_N merged_model
set -euo pipefail
CKPT="${1:?checkpoint step dir (ending in global_step_N)}"; OUT="${2:?output dir}"
TMP="$OUT.unmerged"
python3 -m verl.model_merger merge --backend fsdp --local_dir "$CKPT" --target_dir "$TMP"
python3 -m sinternal_verl.data.merge_lora --base "$TMP" --adapter "$TMP/lora_adapter" --out "$OUT"
