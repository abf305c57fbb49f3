"""The CPU platform is selected only by VERL_PLATFORM=cpu, fixes the duplicate gloo backend,
registers the FSDP engines and the hf rollout for cpu; the verl version guard names versions."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from sinternal_verl.compat import UnsupportedVerlVersion, check_verl_version
from sinternal_verl.cpu.overrides import main as overrides_main
from sinternal_verl.cpu.overrides import ppo_overrides, sft_overrides
from sinternal_verl.cpu.platform import dedupe_backend


def _run(code: str, *, cpu: bool) -> subprocess.CompletedProcess:
    import os

    env = dict(os.environ)
    env.pop("VERL_PLATFORM", None)
    if cpu:
        env["VERL_PLATFORM"] = "cpu"
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], env=env, capture_output=True, text=True, timeout=240
    )


def test_dedupe_backend():
    assert dedupe_backend("cpu:gloo,cpu:gloo") == "cpu:gloo"
    assert dedupe_backend("cpu:gloo,cuda:nccl") == "cpu:gloo,cuda:nccl"
    assert dedupe_backend("gloo") == "gloo"
    assert dedupe_backend(None) is None


def test_cpu_platform_active_with_selector_and_fixes_apply():
    code = """
    import os, torch, torch.distributed as dist
    import verl
    from verl.plugin.platform import get_platform
    from verl.utils.device import get_device_name, get_nccl_backend, get_torch_device
    from verl.utils.distributed import initialize_global_process_group
    p = get_platform()
    assert p.device_name == "cpu" and get_device_name() == "cpu" and get_nccl_backend() == "gloo", p
    dm = get_torch_device()
    dm.manual_seed(3); dm.empty_cache(); dm.synchronize()
    assert dm.is_available() and dm.current_device() == torch.device("cpu")
    free, total = dm.mem_get_info(); assert 0 < free <= total
    st = dm.get_rng_state(); dm.set_rng_state(st)
    # obstacle 1: verl builds "cpu:gloo,cpu:gloo"; a real gloo group must come up
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]
    os.environ.update(RANK="0", LOCAL_RANK="0", WORLD_SIZE="1", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    initialize_global_process_group(timeout_second=60)
    t = torch.ones(2); dist.all_reduce(t); assert t.tolist() == [1.0, 1.0]
    dist.destroy_process_group()
    # obstacle 2: FSDP engines registered for cpu once verl imports them
    from verl.workers.engine import EngineRegistry
    from verl.workers.engine.fsdp.transformer_impl import FSDPEngineWithLMHead
    assert EngineRegistry.get_engine_cls("language_model", "fsdp2") is FSDPEngineWithLMHead
    # the hf rollout is registered in both verl registries
    from verl.workers.rollout.base import get_rollout_class
    from verl.workers.rollout.replica import get_rollout_replica_class
    assert get_rollout_class("hf", "async").__name__ == "HFServerAdapter"
    assert get_rollout_replica_class("hf").__name__ == "HFReplica"
    print("OK")
    """
    r = _run(code, cpu=True)
    assert r.returncode == 0 and "OK" in r.stdout, r.stdout[-3000:] + r.stderr[-3000:]


def test_cpu_platform_inactive_without_selector():
    code = """
    import sys, torch.distributed as dist
    import verl
    from verl.plugin.platform import PlatformRegistry
    assert "sinternal_verl.cpu.platform" not in sys.modules
    assert PlatformRegistry.get("cpu") is None
    assert not getattr(dist.init_process_group, "_sinternal_cpu", False)
    print("OK")
    """
    r = _run(code, cpu=False)
    assert r.returncode == 0 and "OK" in r.stdout, r.stdout[-3000:] + r.stderr[-3000:]


def test_verl_version_guard_names_versions():
    assert check_verl_version().ok  # the installed verl is in range
    assert check_verl_version("0.9.5").ok
    for bad in ("0.9.0", "0.10.0", "1.0.0", "0.8.2"):
        with pytest.raises(UnsupportedVerlVersion) as err:
            check_verl_version(bad)
        msg = str(err.value)
        assert bad in msg and "0.9.1" in msg and "0.10" in msg


def test_overrides_in_one_place_and_cli(capsys):
    ppo = ppo_overrides(ray_num_cpus=8, fake_gpus=2)
    assert "actor_rollout_ref.rollout.name=hf" in ppo and "+ray_kwargs.ray_init.num_gpus=2" in ppo
    assert "trainer.n_gpus_per_node=2" in ppo and "ray_kwargs.ray_init.num_cpus=8" in ppo
    assert "engine.strategy=fsdp2" in sft_overrides() and "trainer.device=cpu" in sft_overrides()
    assert overrides_main(["ppo", "--lines"]) == 0
    assert capsys.readouterr().out.splitlines() == ppo_overrides()
    assert overrides_main(["env"]) == 0
    assert "VERL_PLATFORM=cpu" in capsys.readouterr().out
