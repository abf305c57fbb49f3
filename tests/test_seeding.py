"""``stable_seed``: the one way seeds are derived (rollout requests, sampling prompts, seeded draws)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from sinternal_verl.data.critique import uses_expert
from sinternal_verl.seeding import prompt_seed, stable_seed


def test_stable_seed_is_a_fixed_function_of_its_parts():
    # computed once and written down: a change of algorithm (hash, encoding, bit cut) changes
    # every seed, so every sampled number a run reports, and must be a deliberate one
    assert stable_seed(0, "p1") == 6359464687914743037
    assert stable_seed(0, "p1", bits=31) == 1480678256
    assert stable_seed(3, 0, 5, "det-0", (1, 2, 3), 0) == 6981563496787782064
    assert prompt_seed(0, "p1") == 1480678256


def test_stable_seed_is_the_same_in_another_process_whatever_its_hash_salt():
    code = "from sinternal_verl.seeding import stable_seed; print(stable_seed(7, 'prompt', (4, 5)))"
    outs = set()
    for salt in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": salt}
        out = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
        )
        outs.add(int(out.stdout))
    assert outs == {stable_seed(7, "prompt", (4, 5))}


@pytest.mark.parametrize("bits", [1, 31, 63, 64])
def test_stable_seed_stays_in_range(bits):
    seeds = [stable_seed(base, f"p{i}", bits=bits) for base in range(3) for i in range(300)]
    assert all(0 <= s < 2**bits for s in seeds)
    if bits >= 31:  # and uses the range: the top bit is set about half the time
        top = sum(s >> (bits - 1) for s in seeds)
        assert 0.4 < top / len(seeds) < 0.6


def test_stable_seed_tells_parts_apart():
    parts = [
        (0, "p1"),
        (1, "p1"),
        (0, "p2"),
        ("p1", 0),  # order matters
        (0, "p1", 0),
        (0, "p1", 1),  # a GRPO group's k-th alike request
        ("0", "p1"),  # an int and its string
        ((0, "p1"),),
        (3, 0, 5, "det-0", (1, 2, 3), 0),
        (3, 0, 5, "det-0", (1, 2, 4), 0),
        (3, 0, 6, "det-0", (1, 2, 3), 0),
    ]
    for bits in (31, 63):
        assert len({stable_seed(*p, bits=bits) for p in parts}) == len(parts)
    assert len({stable_seed(2, "det-0", k) for k in range(1000)}) == 1000


def test_stable_seed_rejects_bits_it_cannot_give():
    for bits in (0, 65):
        with pytest.raises(ValueError, match="bits"):
            stable_seed(1, bits=bits)


def test_prompt_seed_keeps_the_31_bit_range_and_depends_on_base_and_prompt():
    seeds = {(b, i): prompt_seed(b, f"q{i}") for b in range(4) for i in range(250)}
    assert all(0 <= s < 2**31 - 1 for s in seeds.values())
    assert len(set(seeds.values())) == len(seeds)
    assert prompt_seed(3, "q0") == prompt_seed(3, "q0")


def test_uses_expert_draws_a_seeded_share():
    keys = [f"k{i}" for i in range(2000)]
    picked = [k for k in keys if uses_expert(5, k, 0.3)]
    assert 0.25 < len(picked) / len(keys) < 0.35
    assert picked == [k for k in keys if uses_expert(5, k, 0.3)]  # the same draw every time
    assert picked != [k for k in keys if uses_expert(6, k, 0.3)]  # another seed, another share
    assert set(picked) <= {k for k in keys if uses_expert(5, k, 0.6)}  # nested: one uniform per key
    assert all(uses_expert(5, k, 1.0) for k in keys) and not any(uses_expert(5, k, 0.0) for k in keys)
