#!/usr/bin/env bash
# Shared launcher of the GRPO / DAPO recipes: `launch_rl.sh grpo|dapo [hydra overrides...]`.
# run_grpo.sh / run_dapo.sh call it; use those. Env-var knobs (unset = the recipe YAML's value):
#
#   MODEL_PATH      (required) the verification-SFT checkpoint (HF folder or hub name)
#   TRAIN_FILES     data.train_files   (sinternal-verl prepare-data ... --out DIR)
#   VAL_FILES       data.val_files
#   GUARD_URLS      comma-separated guard base URLs (else env SINTERNAL_GUARD_URLS); required
#                   unless GUARD_KIND=lexical
#   GUARD_KIND      qwen3guard | llamaguard | wildguard | lexical
#   GUARD_MODEL     served guard model name
#   NNODES          trainer.nnodes
#   GPUS_PER_NODE   trainer.n_gpus_per_node
#   ROLLOUT_NAME    actor_rollout_ref.rollout.name (vllm | sglang)
#   ROLLOUT_TP      actor_rollout_ref.rollout.tensor_model_parallel_size
#   REWARD_WORKERS  reward.num_workers
#   PROJECT_NAME / EXPERIMENT_NAME / CKPT_DIR   trainer.project_name / experiment_name / default_local_dir
#   PYTHON          interpreter (default python3)
#   DRY_RUN=1       print the command instead of running it
#
# Anything after the recipe name is passed to hydra last, so it wins: `run_grpo.sh trainer.total_epochs=2`.
set -euo pipefail

RECIPES_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
RECIPE="${1:?usage: launch_rl.sh grpo|dapo [hydra overrides...]}"
shift
case "$RECIPE" in
  grpo | dapo) ;;
  *) echo "launch_rl.sh: unknown recipe '$RECIPE' (grpo or dapo)" >&2; exit 2 ;;
esac
CONFIG_DIR="$RECIPES_DIR/$RECIPE"

if [[ -z "${MODEL_PATH:-}" ]]; then
  echo "error: set MODEL_PATH to the verification-SFT checkpoint (HF folder or hub name)" >&2
  exit 2
fi
GUARD_URLS="${GUARD_URLS:-${SINTERNAL_GUARD_URLS:-}}"
if [[ -z "$GUARD_URLS" && "${GUARD_KIND:-${SINTERNAL_GUARD_KIND:-}}" != "lexical" ]]; then
  echo "error: set GUARD_URLS (or SINTERNAL_GUARD_URLS) to the guard servers, e.g." >&2
  echo "  GUARD_URLS=http://guard-0:8000,http://guard-1:8000 (vllm serve Qwen/Qwen3Guard-Gen-4B)" >&2
  echo "  check them first with: sinternal-verl doctor --guard-url http://guard-0:8000" >&2
  exit 2
fi

# hydra override values are quoted ('...') so commas, colons and slashes stay one string
quote() { printf "'%s'" "${1//\'/\\\'}"; }
ARGS=("actor_rollout_ref.model.path=$(quote "$MODEL_PATH")")
[[ -n "$GUARD_URLS" ]] && ARGS+=("reward.reward_kwargs.guard_urls=$(quote "$GUARD_URLS")")
[[ -n "${GUARD_KIND:-}" ]] && ARGS+=("reward.reward_kwargs.guard_kind=$(quote "$GUARD_KIND")")
[[ -n "${GUARD_MODEL:-}" ]] && ARGS+=("reward.reward_kwargs.guard_model=$(quote "$GUARD_MODEL")")
[[ -n "${TRAIN_FILES:-}" ]] && ARGS+=("data.train_files=$(quote "$TRAIN_FILES")")
[[ -n "${VAL_FILES:-}" ]] && ARGS+=("data.val_files=$(quote "$VAL_FILES")")
[[ -n "${NNODES:-}" ]] && ARGS+=("trainer.nnodes=$NNODES")
[[ -n "${GPUS_PER_NODE:-}" ]] && ARGS+=("trainer.n_gpus_per_node=$GPUS_PER_NODE")
[[ -n "${ROLLOUT_NAME:-}" ]] && ARGS+=("actor_rollout_ref.rollout.name=$ROLLOUT_NAME")
[[ -n "${ROLLOUT_TP:-}" ]] && ARGS+=("actor_rollout_ref.rollout.tensor_model_parallel_size=$ROLLOUT_TP")
[[ -n "${REWARD_WORKERS:-}" ]] && ARGS+=("reward.num_workers=$REWARD_WORKERS")
[[ -n "${PROJECT_NAME:-}" ]] && ARGS+=("trainer.project_name=$(quote "$PROJECT_NAME")")
[[ -n "${EXPERIMENT_NAME:-}" ]] && ARGS+=("trainer.experiment_name=$(quote "$EXPERIMENT_NAME")")
[[ -n "${CKPT_DIR:-}" ]] && ARGS+=("trainer.default_local_dir=$(quote "$CKPT_DIR")")

CMD=("${PYTHON:-python3}" -m verl.trainer.main_ppo
  --config-path "$CONFIG_DIR" --config-name "sinternal_$RECIPE"
  "${ARGS[@]}" "$@")

if [[ "${DRY_RUN:-0}" == "1" ]]; then
  printf '%q ' "${CMD[@]}"
  echo
  exit 0
fi
exec "${CMD[@]}"
