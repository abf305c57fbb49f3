#!/usr/bin/env bash
# Verification SFT as a Ray job (verl.trainer.sft_trainer_ray), e.g. on a multi-node cluster.
#   RAY_ADDRESS=http://head:8265 MODEL_PATH=... DATA_DIR=/shared/runs/verification_data/sft \
#   NNODES=2 GPUS_PER_NODE=8 bash recipes/verification_sft/submit_ray_job.sh [extra hydra overrides]
# DATA_DIR and MODEL_PATH must be readable from every node (shared storage). sinternal-verl must
# be installed on the nodes (image or runtime_env pip); the recipe folder travels as working_dir.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
: "${RAY_ADDRESS:?set RAY_ADDRESS (e.g. http://head:8265)}"
: "${MODEL_PATH:?}" "${DATA_DIR:?}"
VAL=()
[[ -f "$DATA_DIR/val.parquet" ]] && VAL=("data.val_files=$DATA_DIR/val.parquet")
exec ray job submit --address="$RAY_ADDRESS" --working-dir="$HERE" -- \
  python3 -m verl.trainer.sft_trainer_ray --config-path="\$PWD/config" --config-name=verification_sft \
  model.path="$MODEL_PATH" data.train_files="$DATA_DIR/train.parquet" "${VAL[@]}" \
  trainer.nnodes="${NNODES:-1}" trainer.n_gpus_per_node="${GPUS_PER_NODE:-8}" "$@"
