"""The import graph has no upward arrow: each unit of the package imports only from units in
lower layers (or from itself). A new module that needs something from above is a design
question, not a one-line import."""

from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "sinternal_verl"

#: lowest first; a unit is a top-level module or subpackage of ``sinternal_verl``
LAYERS: list[set[str]] = [
    # the settings mechanism, then the leaves: version checks, trajectory reading, answer-only
    # judges, specifications, stable seeds
    {"settings"},
    {"compat", "trajectory", "judges", "specs", "assets", "seeding"},
    # verl on CPU (platform, tiny models), then the fakes and fixtures built on it
    {"cpu"},
    {"testing"},
    # guard models behind one interface
    {"guards"},
    # the rewards built on guard verdicts and the math checker
    {"rewards"},
    # front ends of the rewards: verl managers, the HTTP server and its client, the pipeline
    {"managers", "server", "client", "data"},
    # adapters for other trainers, over the reward client
    {"integrations"},
    # evaluation (uses the pipeline's engines), then the one-command run (uses everything)
    {"eval"},
    {"run"},
    # verl's plugin hook (imports the managers and the CPU platform by name), then entry points
    {"plugin"},
    {"cli", "doctor", "demo", "demo_score", "settings_docs", "__init__", "__main__"},
]
RANK = {unit: i for i, layer in enumerate(LAYERS) for unit in layer}


def _unit(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _imports(path: Path) -> list[tuple[int, str]]:
    rel = path.relative_to(PKG.parent).with_suffix("")
    module = ".".join(rel.parts)
    package = module.removesuffix(".__init__") if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            out.append((node.lineno, target))
        elif isinstance(node, ast.Import):
            out.extend((node.lineno, a.name) for a in node.names)
    return [(line, t) for line, t in out if t == "sinternal_verl" or t.startswith("sinternal_verl.")]


def test_every_unit_has_a_layer():
    units = {
        p.stem if p.is_file() else p.name
        for p in PKG.iterdir()
        if (p.suffix == ".py" or (p / "__init__.py").exists())
    }
    assert units - set(RANK) == set(), "place new modules/packages in LAYERS"


def test_no_upward_imports():
    bad = []
    for path in sorted(PKG.rglob("*.py")):
        src_unit = _unit(".".join(path.relative_to(PKG.parent).with_suffix("").parts))
        for line, target in _imports(path):
            dst_unit = _unit(target)
            if dst_unit != src_unit and RANK[dst_unit] >= RANK[src_unit]:
                bad.append(
                    f"{path.relative_to(PKG.parent)}:{line} imports {target} ({src_unit} -> {dst_unit})"
                )
    assert not bad, "upward or sideways imports:\n" + "\n".join(bad)
