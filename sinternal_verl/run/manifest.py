"""The run's manifest (``<run_dir>/manifest.json``): what ran, with what, on what, producing what.

Why a manifest: a run is resumed, partly redone (``--from``) and compared with other runs;
the manifest is the one place that says, per stage, how many times it started, whether it
finished, how long it took, and the hashes of its inputs and outputs -- so "was this RL run
trained on that SFT checkpoint?" is answered by comparing two hashes, not by trusting paths.
Written atomically after every change, so a killed run leaves a readable manifest.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import sys
import time
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path
from typing import Any

MANIFEST = "manifest.json"
#: packages whose versions decide what a run computes
VERSIONED = ("sinternal-verl", "verl", "torch", "transformers", "peft", "ray", "vllm", "pydantic", "numpy")


def package_versions(names: Iterable[str] = VERSIONED) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    out["python"] = platform.python_version()
    return out


def file_hash(path: Path, full_max_bytes: int) -> str:
    """sha256 of the file; a file larger than ``full_max_bytes`` is hashed by its size and its
    first and last MiB (a 30 GB checkpoint would otherwise take minutes to hash)."""
    h = hashlib.sha256()
    size = path.stat().st_size
    with path.open("rb") as f:
        if size <= full_max_bytes:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
            return h.hexdigest()
        h.update(f"size:{size}".encode())
        h.update(f.read(1 << 20))
        f.seek(max(0, size - (1 << 20)))
        h.update(f.read(1 << 20))
    return "partial:" + h.hexdigest()


def path_hash(path: str | Path, full_max_bytes: int) -> str | None:
    """Hash of a file, or of a folder (relative names + file hashes, sorted); None if absent.
    Hidden files (temporaries, locks) are left out."""
    p = Path(path)
    if p.is_file():
        return file_hash(p, full_max_bytes)
    if not p.is_dir():
        return None
    h = hashlib.sha256()
    for f in sorted(x for x in p.rglob("*") if x.is_file()):
        rel = f.relative_to(p)
        if any(part.startswith(".") for part in rel.parts):
            continue
        h.update(str(rel).encode() + b"\0" + file_hash(f, full_max_bytes).encode() + b"\n")
    return h.hexdigest()


def config_hash(data: Any) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:16]


class Manifest:
    """The manifest of one run directory. ``stages[name]``: ``status`` (running / done /
    failed / invalidated), ``runs`` (times started), timings, ``inputs`` / ``outputs``
    (path -> hash), ``summary`` (the stage's numbers), ``config_hash`` (its settings)."""

    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / MANIFEST
        self.data: dict[str, Any] = json.loads(self.path.read_text()) if self.path.exists() else {}
        self.data.setdefault("stages", {})
        self.data.setdefault("invocations", [])

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(self.data, indent=2, sort_keys=False, default=str) + "\n")
        os.replace(tmp, self.path)

    def start_invocation(self, config: dict, argv: list[str]) -> None:
        self.data["config"] = config
        self.data["versions"] = package_versions()
        self.data["invocations"].append(
            {
                "argv": argv,
                "started_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
                "pid": os.getpid(),
                "python": sys.executable,
            }
        )
        self.save()

    def stage(self, name: str) -> dict[str, Any]:
        return self.data["stages"].setdefault(name, {"status": "pending", "runs": 0})

    def is_done(self, name: str) -> bool:
        return self.stage(name).get("status") == "done"

    def begin(self, name: str, cfg_hash: str) -> None:
        st = self.stage(name)
        st.update(status="running", runs=st.get("runs", 0) + 1, started_at=time.time(), config_hash=cfg_hash)
        st.pop("error", None)
        self.save()

    def finish(
        self,
        name: str,
        *,
        seconds: float,
        peak_rss_gb: float,
        peak_pss_gb: float,
        inputs: dict,
        outputs: dict,
        summary: dict,
    ) -> None:
        st = self.stage(name)
        st.update(
            status="done", finished_at=time.time(), seconds=round(seconds, 2), peak_rss_gb=round(peak_rss_gb, 3),
            peak_pss_gb=round(peak_pss_gb, 3), inputs=inputs, outputs=outputs, summary=summary,
        )  # fmt: skip
        self.save()

    def fail(self, name: str, *, seconds: float, error: str) -> None:
        st = self.stage(name)
        st.update(status="failed", seconds=round(seconds, 2), error=error)
        self.save()

    def invalidate(self, names: Iterable[str]) -> None:
        for name in names:
            if name in self.data["stages"]:
                self.data["stages"][name]["status"] = "invalidated"
        self.save()
