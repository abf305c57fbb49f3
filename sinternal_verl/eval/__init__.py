"""Evaluation harness: attack success, over-refusal, verification F1 and math pass@k.

Public API (used by ``sinternal-verl eval`` and the one-command run)::

    from sinternal_verl.eval import EvalConfig, evaluate, compare
    from sinternal_verl.settings import load_yaml
    cfg = load_yaml(EvalConfig, "recipes/eval/paper.yaml", ["output_dir=runs/eval"])
    metrics = evaluate(cfg)            # metrics.json, items/, report.md, plots/ under output_dir
    compare(["runs/a", "runs/b"], "runs/ab")
"""

from .config import BenchmarkSpec, EvalConfig, GenerationSettings, ModelSpec, load_eval_config
from .report import compare
from .runner import EvalInputError, evaluate, prepare

__all__ = [
    "BenchmarkSpec",
    "EvalConfig",
    "EvalInputError",
    "GenerationSettings",
    "ModelSpec",
    "compare",
    "evaluate",
    "load_eval_config",
    "prepare",
]
