"""Seeds derived from a few values (a base seed, a prompt id, a step...), the same everywhere."""

from __future__ import annotations

import hashlib
from typing import Any


def stable_seed(*parts: Any, bits: int = 63) -> int:
    """A seed in ``[0, 2**bits)`` from ``parts``: blake2b of ``repr(parts)``, ``1 <= bits <= 64``.

    Why not ``hash(parts)``: Python salts the hash of ``str`` and ``bytes`` per process
    (``PYTHONHASHSEED``), so Ray workers, engines on other hosts and a resumed run would each
    derive another seed for the same prompt; this one is the same in every process, host and
    run, which is what makes a prompt's samples reproducible wherever it is generated.

    Parts are hashed by their ``repr``: pass plain ``int``/``str``/``tuple`` values
    (``numpy.int64(3)`` and ``3`` have different reprs, so they give different seeds).
    """
    if not 1 <= bits <= 64:
        raise ValueError(f"bits must be in [1, 64], got {bits}")
    digest = hashlib.blake2b(repr(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> (64 - bits)


def prompt_seed(base: int, prompt_id: str) -> int:
    """A prompt's sampling seed (the sample stage, the evaluation's generation), in
    ``[0, 2**31 - 1)``: the range vLLM and torch seeds were taken in here (the modulo folds the
    one value ``2**31 - 1`` onto 0)."""
    return stable_seed(int(base), prompt_id, bits=31) % (2**31 - 1)
