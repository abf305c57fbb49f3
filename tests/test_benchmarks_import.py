"""The benchmarks are scripts nobody runs in CI (they measure, they do not assert), so a
refactor can break them silently: an import of a name the package no longer exports was seen
(``bench_adaptive_concurrency`` after the guards package trimmed its exports). Every
``sinternal_verl`` name a benchmark imports, at module level or inside a function, must exist."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


def _imports(path: Path) -> list[tuple[int, str, str | None]]:
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("sinternal_verl"):
            out += [(node.lineno, node.module, a.name) for a in node.names]
        elif isinstance(node, ast.Import):
            out += [(node.lineno, a.name, None) for a in node.names if a.name.startswith("sinternal_verl")]
    return out


@pytest.mark.parametrize("path", sorted(BENCH.glob("*.py")), ids=lambda p: p.name)
def test_benchmark_imports_resolve(path: Path):
    missing = []
    for line, module, name in _imports(path):
        mod = importlib.import_module(module)
        if name is not None and not hasattr(mod, name):
            try:
                importlib.import_module(f"{module}.{name}")
            except ImportError:
                missing.append(f"{path.name}:{line}: {module} has no {name}")
    assert not missing, missing
