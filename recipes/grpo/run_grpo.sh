#!/usr/bin/env bash
# SInternal GRPO (paper settings: recipes/grpo/sinternal_grpo.yaml). Knobs: see recipes/launch_rl.sh.
#   MODEL_PATH=/ckpt/sinternal-sft GUARD_URLS=http://guard-0:8000 \
#   TRAIN_FILES=~/data/sinternal/rl/train.parquet VAL_FILES=~/data/sinternal/rl/val.parquet \
#   bash recipes/grpo/run_grpo.sh trainer.total_epochs=2
set -euo pipefail
exec bash "$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/launch_rl.sh" grpo "$@"
