"""What every benchmark loader shares: local file or Hugging Face dataset -> items + provenance.

A loader knows its set's published format (the columns of the file its authors ship, which
is also what the HF dataset holds) and turns rows into :class:`~..items.EvalItem`. A local
file and the HF dataset go through the same ``rows_to_items``, so tests on small local files
in the published format exercise the exact code that reads the real set.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from ..config import BenchmarkSpec
from ..items import Benchmark, EvalItem
from .tables import BenchmarkFormatError, file_sha256, load_hf_rows, read_table, require_columns

KIND_ALIASES = {
    "harmful": "harmful",
    "unsafe": "harmful",
    "1": "harmful",
    "benign": "benign",
    "safe": "benign",
    "harmless": "benign",
    "0": "benign",
    "math": "math",
    "verification": "verification",
}


def norm_kind(raw: Any, where: str, n: int) -> str:
    kind = KIND_ALIASES.get(str(raw).strip().lower())
    if kind is None:
        raise BenchmarkFormatError(
            f"{where}: row {n} has kind {raw!r}; expected harmful, benign, math or verification"
        )
    return kind


class BenchmarkLoader:
    #: registry name
    name: ClassVar[str] = ""
    hf_id: ClassVar[str | None] = None
    hf_config: ClassVar[str | None] = None
    split: ClassVar[str] = "train"
    #: extra ``datasets.load_dataset`` keyword arguments (e.g. a TSV delimiter)
    hf_kwargs: ClassVar[dict[str, Any]] = {}
    #: columns a local file must have, and the published format in words (for errors)
    columns: ClassVar[tuple[str, ...]] = ()
    published: ClassVar[str] = ""
    prompt_template: ClassVar[str] = "{prompt}"
    #: StrongREJECT-style rubric scoring by default (when a rubric judge is configured)
    rubric: ClassVar[bool] = False

    def rows_to_items(self, rows: list[dict], spec: BenchmarkSpec, where: str) -> list[EvalItem]:
        raise NotImplementedError

    def hf_rows(self, spec: BenchmarkSpec) -> tuple[list[dict], dict]:
        if not (spec.hf_id or self.hf_id):
            raise BenchmarkFormatError(f"benchmark {spec.name!r} has no Hugging Face id; give it a path")
        return load_hf_rows(
            spec.hf_id or self.hf_id,
            spec.hf_config or self.hf_config,
            spec.split or self.split,
            spec.revision,
            **self.hf_kwargs,
        )

    def load(self, spec: BenchmarkSpec) -> Benchmark:
        if spec.path:
            p = Path(spec.path).expanduser()
            rows = read_table(p, spec.format)
            where = f"benchmark {spec.display!r} ({p})"
            prov: dict[str, Any] = {"source": "file", "path": str(p), "sha256": file_sha256(p)}
        else:
            rows, prov = self.hf_rows(spec)
            where = f"benchmark {spec.display!r} (HF {prov['hf_id']})"
        require_columns(rows, self.columns, where, self.published)
        items = self.rows_to_items(rows, spec, where)
        if 0 < spec.limit < len(items):
            items = items[: spec.limit]
        ids = [it.id for it in items]
        dup = sorted({i for i in ids if ids.count(i) > 1}) if len(set(ids)) != len(ids) else []
        if dup:
            raise BenchmarkFormatError(f"{where}: repeated item id(s) {dup[:3]}")
        if not items:
            raise BenchmarkFormatError(f"{where}: no items")
        prov.update({"loader": self.name, "items": len(items)})
        return Benchmark(
            name=spec.display,
            registry=self.name,
            items=items,
            provenance=prov,
            prompt_template=spec.prompt_template or self.prompt_template,
            rubric=self.rubric if spec.rubric is None else spec.rubric,
        )
