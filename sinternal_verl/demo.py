"""``sinternal-verl demo-score``: score example trajectories through the real reward path.

What runs is what runs inside verl training: trajectories are tokenized into a verl
``DataProto`` batch, verl's own ``load_reward_manager`` resolves our registered ``sinternal``
manager from a hydra-shaped config, and its ``run_single`` is awaited once per trajectory,
concurrently, as verl's ``RewardLoopWorker`` does. The guard defaults to the offline
``lexical`` judge, so the demo needs no GPU and no download; pass ``--guard-url`` to use a
served Qwen3Guard (or another kind with ``--guard-kind``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from importlib import resources
from pathlib import Path
from typing import Any

EXAMPLES = "example_trajectories.jsonl"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", type=Path, help="JSONL of trajectories (default: the shipped examples)")
    p.add_argument(
        "--guard-kind",
        default=None,
        help="qwen3guard | llamaguard | wildguard | lexical (default lexical without a URL)",
    )
    p.add_argument(
        "--guard-url", action="append", default=None, help="OpenAI-compatible guard server (repeatable)"
    )
    p.add_argument("--guard-model", default=None, help="served guard model name")
    p.add_argument("--judge", default="answer", choices=("answer", "answer_and_trace"))
    p.add_argument("--json", type=Path, help="also write the scored rows here")


def load_rows(path: Path | None) -> list[dict[str, Any]]:
    text = (
        path.read_text() if path else resources.files("sinternal_verl.assets").joinpath(EXAMPLES).read_text()
    )
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def build_batch(
    rows: list[dict[str, Any]], tokenizer, response_length: int | None = None, prompt_suffix: str = ""
):
    """Left-padded prompts, right-padded responses: the layout verl's rollout produces.

    ``response_length`` is the rollout's token budget (verl pads every response to it); a
    response that fills it was cut off. Default: one more than the longest response.
    ``prompt_suffix`` is appended to every rendered prompt (e.g. ``"<think>\n"``, as the
    DeepSeek-R1-distill template ends its generation prompt)."""
    import numpy as np
    import torch
    from verl import DataProto

    pad = tokenizer.pad_token_id
    prompts = [
        tokenizer.apply_chat_template(
            [{"role": "user", "content": r["prompt"]}], add_generation_prompt=True, tokenize=True
        )
        for r in rows
    ]
    prompts = [p["input_ids"] if isinstance(p, dict) or hasattr(p, "keys") else p for p in prompts]
    if prompt_suffix:
        suffix = tokenizer.encode(prompt_suffix, add_special_tokens=False)
        prompts = [list(p) + suffix for p in prompts]
    responses = [tokenizer.encode(r["response"], add_special_tokens=False) for r in rows]
    pl = max(map(len, prompts))
    rl = response_length or max(map(len, responses)) + 1
    responses = [r[:rl] for r in responses]
    prompt_t = torch.tensor([[pad] * (pl - len(p)) + list(p) for p in prompts])
    resp_t = torch.tensor([list(r) + [pad] * (rl - len(r)) for r in responses])
    mask = torch.tensor(
        [
            [0] * (pl - len(p)) + [1] * len(p) + [1] * len(r) + [0] * (rl - len(r))
            for p, r in zip(prompts, responses)
        ]
    )
    non_tensor = {
        "data_source": np.array([r["data_source"] for r in rows], dtype=object),
        "reward_model": np.array(
            [{"ground_truth": r.get("ground_truth"), "style": "rule"} for r in rows], dtype=object
        ),
        "extra_info": np.array(
            [{k: r[k] for k in ("prompt_type", "task") if k in r} for r in rows], dtype=object
        ),
        "raw_prompt": np.empty(len(rows), dtype=object),  # filled below: one message list per row
    }
    for i, r in enumerate(rows):
        non_tensor["raw_prompt"][i] = [{"role": "user", "content": r["prompt"]}]
    return DataProto.from_dict(
        tensors={
            "prompts": prompt_t,
            "responses": resp_t,
            "attention_mask": mask,
            "input_ids": torch.cat([prompt_t, resp_t], 1),
        },
        non_tensors=non_tensor,
    )


def reward_config(reward_kwargs: dict[str, Any]):
    from omegaconf import OmegaConf

    return OmegaConf.create(
        {
            "reward": {
                "reward_manager": {
                    "source": "register",
                    "name": "sinternal",
                    "module": {"path": None, "name": None},
                },
                "custom_reward_function": {"path": None, "name": "compute_score"},
                "reward_kwargs": reward_kwargs,
            }
        }
    )


async def score_all(manager, batch) -> list[dict]:
    return await asyncio.gather(*(manager.run_single(batch[i : i + 1]) for i in range(len(batch))))


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table
    from verl.trainer.ppo.reward import load_reward_manager

    import sinternal_verl.plugin  # noqa: F401  (what verl's entry-point loading does in every worker)
    from sinternal_verl.cpu.tiny import build_tokenizer

    console = Console(width=None if Console().is_terminal else 120)
    rows = load_rows(args.data)
    kind = args.guard_kind or ("qwen3guard" if args.guard_url else "lexical")
    reward_kwargs = {"guard_kind": kind, "judge": args.judge}
    if args.guard_url:
        reward_kwargs["guard_urls"] = args.guard_url
    if args.guard_model:
        reward_kwargs["guard_model"] = args.guard_model

    with console.status("building a local tokenizer and the verl batch"):
        tokenizer = build_tokenizer(extra_texts=[r["prompt"] + "\n" + r["response"] for r in rows])
        batch = build_batch(rows, tokenizer)
        manager = load_reward_manager(reward_config(reward_kwargs), tokenizer)
    t0 = time.perf_counter()
    outputs = manager.loop.run_until_complete(score_all(manager, batch))
    elapsed = time.perf_counter() - t0

    table = Table(title=f"SInternal reward through verl's reward loop (guard: {kind})", show_lines=False)
    for col in ("id", "source", "type", "score", "expected", "safe", "refused", "trunc", "ok"):
        table.add_column(col, justify="right" if col not in ("id", "source", "type") else "left")
    n_ok = 0
    scored = []
    for row, out in zip(rows, outputs):
        info = out["reward_extra_info"]
        expected = row.get("expect")
        ok = expected is None or abs(out["reward_score"] - expected) < 1e-6
        n_ok += ok
        kind_col = row.get("prompt_type") or ("math" if info["is_math"] else "?")
        table.add_row(
            row.get("id", ""),
            row["data_source"],
            kind_col,
            f"{out['reward_score']:.2f}",
            "" if expected is None else f"{expected:.2f}",
            f"{info['safe']:.0f}",
            f"{info['refused']:.0f}",
            f"{info['truncated']:.0f}",
            "[green]yes[/]" if ok else "[red]NO[/]",
        )
        scored.append({**row, "score": out["reward_score"], **info})
    console.print(table)
    console.print(
        f"{len(rows)} trajectories scored in {elapsed * 1000:.0f} ms; {n_ok}/{len(rows)} match the expected reward."
    )
    if args.json:
        args.json.write_text("\n".join(json.dumps(r) for r in scored) + "\n")
    return 0 if n_ok == len(rows) else 1
