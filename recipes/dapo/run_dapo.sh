#!/usr/bin/env bash
# SInternal DAPO (recipes/dapo/sinternal_dapo.yaml: GRPO paper settings + dynamic sampling,
# clip-higher, token-mean, soft overlong penalty). Knobs: see recipes/launch_rl.sh.
#   MODEL_PATH=/ckpt/sinternal-sft GUARD_URLS=http://guard-0:8000 bash recipes/dapo/run_dapo.sh
set -euo pipefail
exec bash "$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/launch_rl.sh" dapo "$@"
