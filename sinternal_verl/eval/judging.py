"""Running a judge over many (prompt, answer) pairs: batched, cached on disk, with progress.

Only readable judgements are cached; failures (unreachable judge, unreadable output) are
kept in memory for this run's counts and asked again on the next run.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from .cache import RecordCache, short_hash
from .judges import Judge, JudgeInput, Judgement


def run_judge(
    factory: Callable[[], Judge],
    ident: str,
    inputs: dict[str, JudgeInput],
    cache_root: Path,
    batch_size: int,
    progress: bool,
    desc: str,
) -> dict[str, Judgement]:
    """``key -> Judgement`` for every key of ``inputs``."""
    cache = RecordCache(cache_root, f"judge-{short_hash(ident)}")
    out: dict[str, Judgement] = {}
    for key in inputs:
        rec = cache.get(key)
        if rec is not None:
            out[key] = Judgement.from_dict(rec["judgement"])
    todo = [k for k in inputs if k not in out]
    if not todo:
        return out
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(inputs), initial=len(inputs) - len(todo), desc=desc, unit="resp", leave=False)

    async def go() -> None:
        judge = factory()
        try:
            for i in range(0, len(todo), batch_size):
                keys = todo[i : i + batch_size]
                results = await judge.judge([inputs[k] for k in keys])
                if len(results) != len(keys):
                    raise RuntimeError(
                        f"judge {ident} returned {len(results)} judgements for {len(keys)} inputs"
                    )
                cache.put_many([{"key": k, "judgement": j.to_dict()} for k, j in zip(keys, results) if j.ok])
                out.update(zip(keys, results))
                if bar is not None:
                    bar.update(len(keys))
        finally:
            await judge.aclose()

    try:
        asyncio.run(go())
    finally:
        cache.close()
        if bar is not None:
            bar.close()
    return out
