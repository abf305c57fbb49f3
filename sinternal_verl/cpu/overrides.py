"""Every override a CPU run of verl needs, in one place.

Why each is needed is in ``sinternal_verl/cpu/README.md`` (and REFERENCE.md section 6). Use
them from Python (``ppo_overrides()`` / ``sft_overrides()`` / ``cpu_env()``) or from a shell::

    VERL_PLATFORM=cpu python -m verl.trainer.main_ppo $(python -m sinternal_verl.cpu.overrides ppo) <your overrides>
    VERL_PLATFORM=cpu torchrun --standalone --nproc_per_node=1 -m verl.trainer.sft_trainer \\
        $(python -m sinternal_verl.cpu.overrides sft) <your overrides>

Later overrides on the command line win over earlier ones (hydra), so users can still change
any of these. Every number is a keyword argument.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys

#: environment a CPU run needs (the platform selector; quiet tokenizers; no hub)
CPU_ENV: dict[str, str] = {
    "VERL_PLATFORM": "cpu",
    "TOKENIZERS_PARALLELISM": "false",
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
}


def cpu_env(base: dict[str, str] | None = None) -> dict[str, str]:
    """``base`` (default: ``os.environ``) plus :data:`CPU_ENV`."""
    env = dict(os.environ if base is None else base)
    env.update(CPU_ENV)
    return env


def sft_overrides(*, attn_implementation: str = "sdpa") -> list[str]:
    """Overrides for ``verl.trainer.sft_trainer`` (config ``sft_trainer_engine``) on CPU."""
    return [
        "trainer.device=cpu",
        "engine.strategy=fsdp2",
        "engine.use_torch_compile=False",
        f"+model.override_config.attn_implementation={attn_implementation}",
        "data.num_workers=0",
    ]


def ppo_overrides(
    *,
    ray_num_cpus: int = 16,
    fake_gpus: int = 1,
    attn_implementation: str = "sdpa",
    rollout_max_batch_size: int = 64,
    rollout_batch_wait_s: float = 0.02,
    agent_loop_workers: int = 1,
    storage_units: int = 1,
    reward_workers: int = 1,
) -> list[str]:
    """Overrides for ``verl.trainer.main_ppo`` on CPU with the ``hf`` rollout.

    ``fake_gpus``: verl's resource check counts only GPU/NPU, so Ray is told the host has this
    many "GPU" slots (the CPU platform's ``ray_resource_name()`` is ``GPU``); it must equal
    ``trainer.n_gpus_per_node * trainer.nnodes``. ``ray_num_cpus``: verl's placement groups ask
    for more CPUs than a laptop has; Ray only uses the number for scheduling.
    ``agent_loop_workers`` / ``storage_units`` / ``reward_workers``: verl starts 8 of each by
    default, every one a Python process importing verl (~0.4 GB each); one of each is plenty
    on a CPU, and a single agent-loop worker lets the rollout coalesce all requests of a step.
    """
    return [
        "trainer.device=cpu",
        f"trainer.n_gpus_per_node={fake_gpus}",
        "trainer.nnodes=1",
        f"ray_kwargs.ray_init.num_cpus={ray_num_cpus}",
        f"+ray_kwargs.ray_init.num_gpus={fake_gpus}",
        "+ray_kwargs.ray_init.include_dashboard=False",
        "actor_rollout_ref.actor.strategy=fsdp2",
        "actor_rollout_ref.ref.strategy=fsdp2",
        "actor_rollout_ref.actor.use_torch_compile=False",
        "actor_rollout_ref.ref.use_torch_compile=False",
        f"+actor_rollout_ref.model.override_config.attn_implementation={attn_implementation}",
        "actor_rollout_ref.rollout.name=hf",
        "actor_rollout_ref.rollout.mode=async",
        "actor_rollout_ref.rollout.tensor_model_parallel_size=1",
        "actor_rollout_ref.rollout.free_cache_engine=False",
        f"+actor_rollout_ref.rollout.engine_kwargs.hf.max_batch_size={rollout_max_batch_size}",
        f"+actor_rollout_ref.rollout.engine_kwargs.hf.batch_wait_s={rollout_batch_wait_s}",
        f"+actor_rollout_ref.rollout.engine_kwargs.hf.attn_implementation={attn_implementation}",
        f"actor_rollout_ref.rollout.agent.num_workers={agent_loop_workers}",
        f"transfer_queue.backend.SimpleStorage.num_data_storage_units={storage_units}",
        f"reward.num_workers={reward_workers}",
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sinternal_verl.cpu.overrides",
        description="print the hydra overrides a CPU run of verl needs (one per line with --lines)",
    )
    parser.add_argument("trainer", choices=("ppo", "sft", "env"))
    parser.add_argument(
        "--lines", action="store_true", help="one override per line instead of one shell line"
    )
    args = parser.parse_args(argv)
    if args.trainer == "env":
        items = [f"{k}={v}" for k, v in CPU_ENV.items()]
    else:
        items = ppo_overrides() if args.trainer == "ppo" else sft_overrides()
    sys.stdout.write(("\n".join(items) if args.lines else " ".join(shlex.quote(i) for i in items)) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
