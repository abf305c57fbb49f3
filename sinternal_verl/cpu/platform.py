"""The ``cpu`` verl platform: run verl's real trainers on a machine without an accelerator.

verl 0.9.1 has no CPU platform and falls back to CUDA when it finds no accelerator. This module
registers one with verl's ``PlatformRegistry``; verl picks it only when ``VERL_PLATFORM=cpu``
(verl's own selector). ``sinternal_verl.plugin`` imports this module only in that case, in every
process that imports verl (driver, torchrun children, Ray workers), so nothing here is active
otherwise.

Importing it also applies the few targeted fixes a CPU run needs (see
``/work/shared/REFERENCE.md`` section 6), each guarded so it only acts on the CPU platform:

1. ``torch.distributed.init_process_group`` receives ``cpu:gloo,cpu:gloo`` from verl's
   ``initialize_global_process_group*`` ("Duplicate device type"): duplicates are dropped.
2. verl registers its FSDP engines only for ``cuda``/``npu``: the same classes are registered
   for ``cpu`` once verl imports them.
3. the ``hf`` transformers rollout is registered with verl's rollout registries once verl
   imports them (see :mod:`sinternal_verl.cpu.hf_rollout`).
"""

from __future__ import annotations

import functools
import logging
import os
from contextlib import contextmanager
from types import ModuleType
from typing import Any

import torch
import torch.distributed

from sinternal_verl.compat import check_verl_version
from sinternal_verl.cpu.hooks import after_import

logger = logging.getLogger("sinternal_verl.cpu.platform")

#: name under which verl's ``VERL_PLATFORM`` selects this platform
PLATFORM_NAME = "cpu"
#: env var that overrides the Ray resource name (verl's resource checks count only GPU/NPU,
#: so by default a CPU run asks Ray for fake "GPU" slots: ``ray_init.num_gpus``)
RAY_RESOURCE_ENV = "SINTERNAL_CPU_RAY_RESOURCE"


def cpu_platform_selected() -> bool:
    """True when verl's own selector asks for this platform."""
    return os.environ.get("VERL_PLATFORM", "").strip().lower() == PLATFORM_NAME


# ----------------------------------------------------------------------------------------------
# torch.cuda-style namespace for the CPU
# ----------------------------------------------------------------------------------------------
def _rss_bytes() -> int:
    try:
        import psutil

        return int(psutil.Process().memory_info().rss)
    except Exception:  # noqa: BLE001 - memory stats are informative only
        return 0


def _mem_get_info(device: Any = None) -> tuple[int, int]:
    try:
        import psutil

        vm = psutil.virtual_memory()
        return int(vm.available), int(vm.total)
    except Exception:  # noqa: BLE001
        return 0, 0


class CPUDeviceModule(ModuleType):
    """Answers the ``torch.cuda``-style calls verl makes through ``get_torch_device()``.

    Anything ``torch.cpu`` has (streams, events, synchronize, ...) is delegated to it; the rest
    are host equivalents (RNG = torch's global generator, memory = process RSS / host RAM) or
    no-ops (cache, IPC), because on the CPU there is nothing to free or share.
    """

    def __init__(self) -> None:
        super().__init__("sinternal_verl.cpu.device_module")

    def __getattr__(self, name: str) -> Any:  # only called for names not defined below
        return getattr(torch.cpu, name)

    # device management -------------------------------------------------------------------
    @staticmethod
    def is_available() -> bool:
        return True

    @staticmethod
    def device_count() -> int:
        return 1

    @staticmethod
    def current_device() -> torch.device:
        # verl passes this to FSDP (device_id=...) and to ``.to()``: a torch.device works for both
        return torch.device("cpu")

    @staticmethod
    def set_device(device: Any) -> None:
        return None

    @staticmethod
    def synchronize(device: Any = None) -> None:
        return None

    @staticmethod
    def get_device_name(device: Any = None) -> str:
        return "cpu"

    @staticmethod
    def get_device_capability(device: Any = None) -> tuple[int, int]:
        return (0, 0)

    @staticmethod
    def is_bf16_supported(including_emulation: bool = True) -> bool:
        return True

    # RNG ---------------------------------------------------------------------------------
    @staticmethod
    def manual_seed(seed: int) -> None:
        torch.manual_seed(seed)

    manual_seed_all = manual_seed

    @staticmethod
    def seed() -> None:
        torch.seed()

    @staticmethod
    def initial_seed() -> int:
        return torch.initial_seed()

    @staticmethod
    def get_rng_state(device: Any = None) -> torch.Tensor:
        return torch.get_rng_state()

    @staticmethod
    def set_rng_state(state: torch.Tensor, device: Any = None) -> None:
        torch.set_rng_state(state)

    @staticmethod
    def get_rng_state_all() -> list[torch.Tensor]:
        return [torch.get_rng_state()]

    @staticmethod
    def set_rng_state_all(states: list[torch.Tensor]) -> None:
        if states:
            torch.set_rng_state(states[0])

    # memory ------------------------------------------------------------------------------
    @staticmethod
    def empty_cache() -> None:
        return None

    @staticmethod
    def ipc_collect() -> None:
        return None

    @staticmethod
    def set_per_process_memory_fraction(fraction: float, device: Any = None) -> None:
        return None

    @staticmethod
    def reset_peak_memory_stats(device: Any = None) -> None:
        return None

    @staticmethod
    def mem_get_info(device: Any = None) -> tuple[int, int]:
        return _mem_get_info(device)

    @staticmethod
    def memory_allocated(device: Any = None) -> int:
        return _rss_bytes()

    memory_reserved = memory_allocated
    max_memory_allocated = memory_allocated
    max_memory_reserved = memory_allocated

    @staticmethod
    def memory_stats(device: Any = None) -> dict[str, int]:
        rss = _rss_bytes()
        return {"allocated_bytes.all.current": rss, "reserved_bytes.all.current": rss}


device_module = CPUDeviceModule()


# ----------------------------------------------------------------------------------------------
# the platform
# ----------------------------------------------------------------------------------------------
from verl.plugin.platform import PlatformBase, PlatformRegistry  # noqa: E402


@PlatformRegistry.register(platform=PLATFORM_NAME)
class PlatformCPU(PlatformBase):
    """verl platform for a host without an accelerator: device ``cpu``, collectives over gloo."""

    @property
    def device_name(self) -> str:
        return "cpu"

    @property
    def vendor_name(self) -> str:
        return "cpu"

    @property
    def device_module(self) -> ModuleType:
        return device_module

    def is_available(self) -> bool:
        return True

    def is_platform_available(self, use_smi_check: bool = False) -> bool:
        # never auto-detected: only ``VERL_PLATFORM=cpu`` selects it
        return cpu_platform_selected()

    def current_device(self) -> torch.device:  # type: ignore[override]
        return device_module.current_device()

    def device_count(self) -> int:
        return 1

    def set_device(self, device_index: int) -> None:
        return None

    def synchronize(self, device_index: int | None = None) -> None:
        return None

    def manual_seed(self, seed: int) -> None:
        torch.manual_seed(seed)

    def manual_seed_all(self, seed: int) -> None:
        torch.manual_seed(seed)

    def set_allocator_settings(self, settings: str) -> None:
        return None

    def empty_cache(self) -> None:
        return None

    def get_device_capability(self, device_index: int = 0) -> tuple[int | None, int | None]:
        return None, None

    def communication_backend_name(self) -> str:
        return "gloo"

    def visible_devices_envvar(self) -> str:
        # Ray sets it for the fake "GPU" slots; verl only reads it for bookkeeping
        return "CUDA_VISIBLE_DEVICES"

    @contextmanager
    def nvtx_range(self, msg: str):
        yield

    def profiler_start(self) -> None:
        return None

    def profiler_stop(self) -> None:
        return None

    def ray_resource_name(self) -> str:
        return os.environ.get(RAY_RESOURCE_ENV, "GPU")

    def ray_noset_envvars(self) -> list[str]:
        return []

    def is_ipc_supported(self) -> bool:
        return False

    def cudart(self) -> Any:
        return None


# ----------------------------------------------------------------------------------------------
# targeted fixes, active only on the CPU platform
# ----------------------------------------------------------------------------------------------
def dedupe_backend(backend: Any) -> Any:
    """``"cpu:gloo,cpu:gloo"`` -> ``"cpu:gloo"``: keep the first entry per device type."""
    if not isinstance(backend, str) or "," not in backend:
        return backend
    seen: dict[str, str] = {}
    for part in (p.strip() for p in backend.split(",")):
        if not part:
            continue
        device = part.split(":", 1)[0] if ":" in part else part
        seen.setdefault(device, part)
    return ",".join(seen.values())


def _patch_init_process_group() -> None:
    original = torch.distributed.init_process_group
    if getattr(original, "_sinternal_cpu", False):
        return

    @functools.wraps(original)
    def init_process_group(*args: Any, **kwargs: Any):
        if cpu_platform_selected():
            if "backend" in kwargs:
                kwargs["backend"] = dedupe_backend(kwargs["backend"])
            elif args:
                args = (dedupe_backend(args[0]), *args[1:])
        return original(*args, **kwargs)

    init_process_group._sinternal_cpu = True  # type: ignore[attr-defined]
    torch.distributed.init_process_group = init_process_group
    torch.distributed.distributed_c10d.init_process_group = init_process_group


def _register_fsdp_engines_for_cpu(module: ModuleType) -> None:
    """Register verl's FSDP engines (device-agnostic, they go through the platform) for ``cpu``."""
    from verl.workers.engine.base import EngineRegistry

    pairs = (("language_model", "FSDPEngineWithLMHead"), ("value_model", "FSDPEngineWithValueHead"))
    for model_type, cls_name in pairs:
        engine_cls = getattr(module, cls_name, None)
        if engine_cls is None:
            continue
        for backend in ("fsdp", "fsdp2"):
            if "cpu" in EngineRegistry._engines.get(model_type, {}).get(backend, {}):
                continue
            EngineRegistry.register(model_type=model_type, backend=backend, device="cpu")(engine_cls)


def _register_hf_rollout(_module: ModuleType) -> None:
    from sinternal_verl.cpu.hf_rollout import register

    register()


def activate() -> None:
    """Apply the CPU fixes (idempotent). Called on import when ``VERL_PLATFORM=cpu``."""
    check_verl_version()
    _patch_init_process_group()
    after_import("verl.workers.engine.fsdp.transformer_impl", _register_fsdp_engines_for_cpu)
    after_import("verl.workers.rollout.replica", _register_hf_rollout)
    after_import("verl.workers.rollout.base", _register_hf_rollout)


if cpu_platform_selected():
    activate()
