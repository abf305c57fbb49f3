"""Run verl's real trainers on a CPU-only machine (tests, CI, the laptop demo).

- :mod:`sinternal_verl.cpu.tiny`: a tiny random Qwen3 + local BPE tokenizer, no download.
- :mod:`sinternal_verl.cpu.platform`: the ``cpu`` verl platform, active only with ``VERL_PLATFORM=cpu``.
- :mod:`sinternal_verl.cpu.hf_rollout`: a transformers rollout replica (``actor_rollout_ref.rollout.name=hf``).
- :mod:`sinternal_verl.cpu.overrides`: every override a CPU run needs, in one place.

Importing this package does nothing on its own: nothing is patched unless the platform module is
imported with ``VERL_PLATFORM=cpu``.
"""
