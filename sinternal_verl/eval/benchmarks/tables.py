"""Reading benchmark files (CSV, TSV, JSONL, JSON, parquet) and Hugging Face datasets into rows.

Kept apart from the loaders so every loader reads files the same way and every file error
reads the same: the path, the row, what was expected.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import math
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)
FORMATS = ("csv", "tsv", "jsonl", "json", "parquet")


class BenchmarkFormatError(ValueError):
    """A benchmark file that cannot be read as the set's published format."""


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def detect_format(path: Path, fmt: str | None) -> str:
    if fmt:
        if fmt not in FORMATS:
            raise BenchmarkFormatError(f"unknown format {fmt!r} for {path}; known: {', '.join(FORMATS)}")
        return fmt
    suffix = path.suffix.lower().lstrip(".")
    if suffix in FORMATS:
        return suffix
    raise BenchmarkFormatError(
        f"cannot tell the format of {path} from its suffix; set format: ({', '.join(FORMATS)})"
    )


def read_table(path: str | Path, fmt: str | None = None) -> list[dict[str, Any]]:
    """Rows of a local file as dicts; a file that does not parse as ``fmt`` is an error
    naming the file and the line."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise FileNotFoundError(f"benchmark file {p} does not exist")
    fmt = detect_format(p, fmt)
    if fmt in ("csv", "tsv"):
        with open(p, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f, delimiter="\t" if fmt == "tsv" else ",")
            rows = [dict(r) for r in reader]
        if rows and None in rows[0]:
            raise BenchmarkFormatError(f"{p}: row 1 has more fields than the header; is it really {fmt}?")
        return rows
    if fmt == "jsonl":
        rows = []
        with open(p, encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise BenchmarkFormatError(
                        f"{p}:{n}: not JSON ({exc.msg}); is the file really jsonl?"
                    ) from None
                if not isinstance(row, dict):
                    raise BenchmarkFormatError(f"{p}:{n}: each line must be a JSON object")
                rows.append(row)
        return rows
    if fmt == "json":
        try:
            data = json.loads(p.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise BenchmarkFormatError(f"{p}: not JSON ({exc.msg})") from None
        if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
            raise BenchmarkFormatError(f"{p}: a .json benchmark must be a list of objects")
        return data
    import pandas as pd

    try:
        return pd.read_parquet(p).to_dict(orient="records")
    except (OSError, ValueError) as exc:  # pyarrow: ArrowInvalid (a ValueError) or OSError
        raise BenchmarkFormatError(f"{p}: not a parquet file ({type(exc).__name__}: {exc})") from None


def load_hf_rows(
    hf_id: str, config: str | None, split: str, revision: str | None, **kw: Any
) -> tuple[list[dict], dict]:
    """Rows of a Hugging Face dataset split, with provenance: the revision asked for and the
    resolved commit when the hub answers, the dataset fingerprint and a hash of the files read."""
    import datasets

    ds = datasets.load_dataset(hf_id, config, split=split, revision=revision, **kw)
    h = hashlib.sha256()
    for f in sorted(c["filename"] for c in ds.cache_files):
        h.update(file_sha256(Path(f)).encode())
    resolved = None
    try:
        from huggingface_hub import HfApi

        resolved = HfApi().dataset_info(hf_id, revision=revision).sha
    except Exception as exc:  # noqa: BLE001 -- offline / gated / auth: the fingerprint and file hash still identify the data
        log.info("could not resolve the revision of %s on the hub: %s", hf_id, exc)
    prov = {
        "source": "hf",
        "hf_id": hf_id,
        "config": config,
        "split": split,
        "revision": revision,
        "resolved_revision": resolved,
        "fingerprint": getattr(ds, "_fingerprint", None),
        "sha256": h.hexdigest(),
        "datasets_version": datasets.__version__,
    }
    return [dict(r) for r in ds], prov


def require_columns(rows: list[dict], columns: tuple[str, ...], where: str, published: str) -> None:
    if not rows:
        raise BenchmarkFormatError(f"{where} has no rows")
    missing = [c for c in columns if c not in rows[0]]
    if missing:
        raise BenchmarkFormatError(
            f"{where} lacks column(s) {', '.join(repr(m) for m in missing)}; has {', '.join(map(repr, rows[0]))} "
            f"(expected the published format: {published})"
        )


def text(row: dict, key: str, where: str, n: int) -> str:
    v = row.get(key)
    if v is None or (isinstance(v, float) and math.isnan(v)) or not str(v).strip():
        raise BenchmarkFormatError(f"{where}: row {n} has no text in {key!r}")
    return str(v)
