"""Benchmark registry: ``BENCHMARKS[name]`` is the loader class of one set (one per file).

``load_benchmark(spec)`` reads a local file in the set's published format when ``spec.path``
is given, else the Hugging Face dataset (``datasets.load_dataset``; revision and file hash
recorded). ``name: file`` is a plain JSONL / parquet with ``prompt``, ``kind`` and optional
``id``, ``category``, ``answer``, ``response``, ``label``.
"""

from __future__ import annotations

from ..config import BenchmarkSpec
from ..items import Benchmark
from .aime2024 import AIME2024
from .base import BenchmarkLoader
from .fortress import Fortress
from .harmbench import HarmBench
from .jailbreakbench import JailbreakBench
from .local import LocalFile
from .math500 import Math500
from .strongreject import StrongReject
from .tables import BenchmarkFormatError, read_table
from .wildjailbreak import WildJailbreak
from .xstest import XSTest

BENCHMARKS: dict[str, type[BenchmarkLoader]] = {
    cls.name: cls
    for cls in (
        LocalFile,
        XSTest,
        StrongReject,
        WildJailbreak,
        JailbreakBench,
        HarmBench,
        Fortress,
        Math500,
        AIME2024,
    )
}


def get_loader(name: str) -> BenchmarkLoader:
    try:
        return BENCHMARKS[name]()
    except KeyError:
        import difflib

        close = difflib.get_close_matches(name, list(BENCHMARKS), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise BenchmarkFormatError(
            f"unknown benchmark {name!r}{hint} (known: {', '.join(BENCHMARKS)})"
        ) from None


def load_benchmark(spec: BenchmarkSpec) -> Benchmark:
    return get_loader(spec.name).load(spec)


__all__ = [
    "BENCHMARKS",
    "BenchmarkFormatError",
    "BenchmarkLoader",
    "get_loader",
    "load_benchmark",
    "read_table",
]
