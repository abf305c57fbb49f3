"""Safety specifications and the verification prompt template, shipped as data files.

A specification is plain text (Markdown) that the expert and, later, the model itself judge
answers against. Config names one by *name* (a file in this folder without ``.md``) or by
*path*, so a user's own specification works exactly like the shipped ones.
"""

from __future__ import annotations

from pathlib import Path

SPECS_DIR = Path(__file__).resolve().parent
DEFAULT_SPEC = "sinternal_default"
DEFAULT_TEMPLATE = "verification_prompt"


def available_specs() -> list[str]:
    return sorted(p.stem for p in SPECS_DIR.glob("*.md") if not p.stem.startswith("_"))


def _resolve(name_or_path: str, suffix: str, what: str) -> Path:
    p = Path(name_or_path).expanduser()
    if p.is_file():
        return p
    shipped = (
        SPECS_DIR / "templates" if what.endswith("template") else SPECS_DIR
    ) / f"{name_or_path}{suffix}"
    if shipped.is_file():
        return shipped
    known = DEFAULT_TEMPLATE if what.endswith("template") else ", ".join(available_specs())
    raise FileNotFoundError(
        f"{what} {name_or_path!r} is neither a file nor a shipped name (shipped: {known})"
    )


def load_spec(name_or_path: str = DEFAULT_SPEC) -> str:
    """Text of a safety specification (shipped name or file path)."""
    text = _resolve(name_or_path, ".md", "safety specification").read_text(encoding="utf-8").strip()
    if not text:
        raise ValueError(f"safety specification {name_or_path!r} is empty")
    return text


def load_template(name_or_path: str = DEFAULT_TEMPLATE) -> str:
    """Text of a verification prompt template; it must contain ``{spec}``, ``{prompt}`` and ``{answer}``."""
    text = _resolve(name_or_path, ".md", "verification prompt template").read_text(encoding="utf-8")
    missing = [k for k in ("{spec}", "{prompt}", "{answer}") if k not in text]
    if missing:
        raise ValueError(
            f"verification prompt template {name_or_path!r} lacks placeholder(s) {', '.join(missing)}"
        )
    return text
