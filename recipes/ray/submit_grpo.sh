#!/usr/bin/env bash
# Submit the SInternal GRPO (or DAPO: RECIPE=dapo) recipe to a running Ray cluster.
#
#   RAY_ADDRESS=http://head:8265 MODEL_PATH=/shared/ckpt/sinternal-sft \
#   TRAIN_FILES=/shared/data/rl/train.parquet VAL_FILES=/shared/data/rl/val.parquet \
#   NNODES=2 GPUS_PER_NODE=8 bash recipes/ray/submit_grpo.sh [hydra overrides...]
#
# Knobs: RAY_ADDRESS (required: the dashboard address), RUNTIME_ENV (default: runtime_env.yaml
# beside this script), RECIPE (grpo | dapo), SUBMIT_ARGS (extra `ray job submit` flags, e.g.
# "--no-wait --submission-id sinternal-grpo-1"), DRY_RUN=1 (print, do not submit), and every
# launcher knob of recipes/launch_rl.sh (MODEL_PATH, TRAIN_FILES, VAL_FILES, GUARD_URLS,
# GUARD_KIND, GUARD_MODEL, NNODES, GPUS_PER_NODE, ROLLOUT_NAME, ROLLOUT_TP, REWARD_WORKERS,
# PROJECT_NAME, EXPERIMENT_NAME, CKPT_DIR). Paths must be valid on the cluster, not here.
#
# The entrypoint runs the same launcher on the head node (`bash grpo/run_grpo.sh`, which ends
# in `python3 -m verl.trainer.main_ppo --config-path <recipes>/grpo --config-name sinternal_grpo
# ...`) with recipes/ uploaded as the job's working_dir, so the config-path exists there.
# Guard URLs: set GUARD_URLS here, or leave it unset and keep SINTERNAL_GUARD_URLS in the
# runtime_env (the launcher then checks that variable on the head node).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
RECIPES_DIR="$(dirname "$HERE")"
RECIPE="${RECIPE:-grpo}"
RUNTIME_ENV="${RUNTIME_ENV:-$HERE/runtime_env.yaml}"

if [[ -z "${RAY_ADDRESS:-}" ]]; then
  echo "error: set RAY_ADDRESS to the cluster's dashboard address, e.g. http://head:8265" >&2
  exit 2
fi
if [[ -z "${MODEL_PATH:-}" ]]; then
  echo "error: set MODEL_PATH to the verification-SFT checkpoint as the cluster sees it" >&2
  exit 2
fi
case "$RECIPE" in
  grpo | dapo) ;;
  *) echo "error: RECIPE must be grpo or dapo, got '$RECIPE'" >&2; exit 2 ;;
esac

# forward the launcher knobs that are set, as `env K=V` in the entrypoint
KNOBS=(MODEL_PATH TRAIN_FILES VAL_FILES GUARD_URLS GUARD_KIND GUARD_MODEL NNODES GPUS_PER_NODE
  ROLLOUT_NAME ROLLOUT_TP REWARD_WORKERS PROJECT_NAME EXPERIMENT_NAME CKPT_DIR)
ENV_ARGS=()
for k in "${KNOBS[@]}"; do
  [[ -n "${!k:-}" ]] && ENV_ARGS+=("$k=${!k}")
done

# shellcheck disable=SC2206  # SUBMIT_ARGS is meant to split into flags
CMD=(ray job submit --address="$RAY_ADDRESS" --runtime-env="$RUNTIME_ENV" --working-dir="$RECIPES_DIR"
  ${SUBMIT_ARGS:-}
  -- env "${ENV_ARGS[@]}" PYTHON=python3 bash "$RECIPE/run_$RECIPE.sh" "$@")

if [[ "${DRY_RUN:-0}" == "1" ]]; then
  printf '%q ' "${CMD[@]}"
  echo
  exit 0
fi
exec "${CMD[@]}"
