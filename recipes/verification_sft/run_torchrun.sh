#!/usr/bin/env bash
# Verification SFT with torchrun on one node (the paper's settings live in config/verification_sft.yaml).
#   MODEL_PATH=deepseek-ai/DeepSeek-R1-Distill-Qwen-7B DATA_DIR=runs/verification_data/sft \
#   NPROC_PER_NODE=8 bash recipes/verification_sft/run_torchrun.sh [extra hydra overrides]
# Then merge the adapter: bash recipes/verification_sft/merge.sh <checkpoint step dir> <out dir>
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
: "${MODEL_PATH:?set MODEL_PATH to the policy model}"
: "${DATA_DIR:?set DATA_DIR to the sft folder written by the pipeline}"
NPROC="${NPROC_PER_NODE:-8}"
VAL=()
[[ -f "$DATA_DIR/val.parquet" ]] && VAL=("data.val_files=$DATA_DIR/val.parquet")
exec torchrun --standalone --nnodes=1 --nproc_per_node="$NPROC" -m verl.trainer.sft_trainer \
  --config-path="$HERE/config" --config-name=verification_sft \
  model.path="$MODEL_PATH" data.train_files="$DATA_DIR/train.parquet" "${VAL[@]}" \
  trainer.n_gpus_per_node="$NPROC" "$@"
