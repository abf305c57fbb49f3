#!/usr/bin/env bash
# Bring up guard replicas (vLLM, one GPU each, spread over nodes) and the reward server on a
# Ray cluster, as one `ray job submit`. Afterwards:
#   - verl: reward manager with +reward.reward_kwargs.guard_backend=ray_pool (attaches by name)
#   - any trainer: http://<head>:8900/v1/score, OpenRLHF --reward.remote_url http://<head>:8900/get_reward
# Env: RAY_ADDRESS (job API, e.g. http://head:8265), REPLICAS, GUARD_KIND, GUARD_MODEL, POOL_NAME.
set -euo pipefail
cd "$(dirname "$0")/../../.."
RAY_ADDRESS="${RAY_ADDRESS:-http://127.0.0.1:8265}"
REPLICAS="${REPLICAS:-2}"
GUARD_KIND="${GUARD_KIND:-qwen3guard}"
GUARD_MODEL="${GUARD_MODEL:-Qwen/Qwen3Guard-Gen-4B}"
POOL_NAME="${POOL_NAME:-sinternal_guard_pool}"
ENGINE_KWARGS="${ENGINE_KWARGS:-{\"max_model_len\": 32768, \"gpu_memory_utilization\": 0.85\}}"

ray job submit --address="$RAY_ADDRESS" --runtime-env=sinternal_verl/server/deploy/runtime_env.yaml -- bash -c "
  set -e
  python -m sinternal_verl.guards.ray_pool --name $POOL_NAME --kind $GUARD_KIND --model $GUARD_MODEL \
      --engine vllm --replicas $REPLICAS --gpus-per-replica 1 --engine-kwargs '$ENGINE_KWARGS'
  serve deploy sinternal_verl/server/deploy/serve_config.yaml
  python - <<'PY'
import time, httpx
for _ in range(120):
    try:
        r = httpx.get('http://127.0.0.1:8900/ready', timeout=5)
        if r.status_code == 200:
            print('reward server ready:', r.json()); break
    except httpx.TransportError:
        pass
    time.sleep(5)
else:
    raise SystemExit('reward server did not become ready')
PY
"
# Tear down:  python -m sinternal_verl.guards.ray_pool --name "$POOL_NAME" --shutdown ; serve shutdown -y
