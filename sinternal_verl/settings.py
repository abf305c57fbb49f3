"""One strict configuration mechanism for every entry point.

Every setting of the project is a field of a :class:`Settings` subclass (pydantic, the same
validation users know from FastAPI), defined once with its default and a one-line
description. What this module adds on top of pydantic:

* **unknown keys fail with the nearest known key suggested** (``controversal`` ->
  ``did you mean 'controversial'?``), so a typo never trains with settings nobody asked for;
* **env vars map onto the same fields** (``setting(..., env="SINTERNAL_GUARD_URLS")``),
  config winning over environment: verl starts reward workers on every node, and one export
  in the Ray ``runtime_env`` reaches all of them;
* **flat keyword sections** (:func:`load_flat`): verl hands reward settings as one flat
  ``reward_kwargs`` mapping (``guard_urls``, ``judge``, ``math_symbolic_timeout_s``); each
  prefix owns one settings class;
* **YAML files with ``key=value`` overrides** (:func:`load_yaml`), through OmegaConf as in
  hydra, for the pipeline, evaluation and run configs;
* **documentation from the definitions** (:func:`settings_table`), so the README's tables are
  checked against the code by a test and cannot drift.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

__all__ = [
    "ConfigError",
    "Settings",
    "load",
    "load_flat",
    "load_yaml",
    "setting",
    "settings_table",
]

T = TypeVar("T", bound="Settings")


class ConfigError(ValueError):
    """A configuration that cannot be used: unknown keys (with suggestions) or bad values.

    Raised at start-up, never at the first trajectory."""


class Settings(BaseModel):
    """Base of every settings class: unknown keys are errors, instances are immutable
    (and hashable, so one guard client can be shared per configuration)."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


def setting(default: Any = ..., doc: str = "", *, env: str | None = None, **kwargs: Any) -> Any:
    """A field with its one-line doc and, optionally, the env var that fills it when the
    config does not set it."""
    extra = dict(kwargs.pop("json_schema_extra", None) or {})
    if env:
        extra["env"] = env
    return Field(default, description=doc, json_schema_extra=extra or None, **kwargs)


def _env_name(cls: type[Settings], name: str) -> str | None:
    """The env var of a field: its ``setting(env=...)``, or the class's ``env_vars`` mapping
    (how a subclass attaches env vars to inherited fields without redefining them)."""
    by_class = getattr(cls, "env_vars", None) or {}
    if name in by_class:
        return by_class[name]
    extra = cls.model_fields[name].json_schema_extra
    return extra.get("env") if isinstance(extra, dict) else None


def _suggest(key: str, known: Iterable[str]) -> str:
    close = difflib.get_close_matches(key, list(known), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def _suggest_flat(
    key: str, sections: Mapping[str, tuple[str, type[BaseModel]]], flat_known: list[str]
) -> str:
    """Within the section whose prefix the key carries first (``math_timeout_s`` ->
    ``math_symbolic_timeout_s``, a field ending in the same words), then anywhere."""
    for prefix, cls in sections.values():
        if prefix and key.startswith(prefix):
            rest = key[len(prefix) :]
            fields = list(cls.model_fields)
            close = difflib.get_close_matches(rest, fields, n=1, cutoff=0.6)
            close = close or [f for f in fields if f.endswith("_" + rest) or f.startswith(rest + "_")][:1]
            if close:
                return f"; did you mean {prefix + close[0]!r}?"
    return _suggest(key, flat_known)


def _known_keys(cls: type[BaseModel]) -> list[str]:
    return list(cls.model_fields)


def _walk(cls: type[BaseModel], loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The settings class at ``loc`` (all but the last element), for suggestions."""
    current: Any = cls
    for part in loc[:-1]:
        if (
            not (isinstance(current, type) and issubclass(current, BaseModel))
            or part not in current.model_fields
        ):
            return None
        current = current.model_fields[part].annotation
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _format(cls: type[BaseModel], err: ValidationError, where: str, prefix: str = "") -> str:
    lines = []
    for e in err.errors():
        loc = tuple(e["loc"])
        dotted = ".".join(str(p) for p in loc)
        key = f"{prefix}{dotted}"
        if e["type"] == "extra_forbidden":
            owner = _walk(cls, loc)
            known = _known_keys(owner) if owner else []
            hint = _suggest(str(loc[-1]), known)
            if not hint and known:
                hint = f"; known keys: {', '.join(known)}"
            lines.append(f"  unknown key {key!r}{hint}")
        else:
            nested = (e.get("ctx") or {}).get("error")
            if isinstance(nested, ConfigError):  # a section checked by its own settings class
                subs = str(nested).splitlines()
                if subs[0].startswith("invalid "):
                    subs = subs[1:]
                else:  # a one-line check of this field
                    lines.append(f"  {key}: {subs[0]}")
                    continue
                for sub in subs:
                    sub = sub.strip()
                    lines.append(f"  {key}.{sub}" if not sub.startswith("unknown key") else f"  {key}: {sub}")
                continue
            msg = e["msg"].removeprefix("Value error, ")
            if not loc:  # a check across fields
                lines.append(f"  {msg}")
                continue
            value = e.get("input")
            shown = repr(value) if not isinstance(value, (dict, list)) else type(value).__name__
            lines.append(f"  {key}: {msg} (got {shown})")
    return f"invalid {where}:\n" + "\n".join(lines)


def load(
    cls: type[T],
    data: Mapping[str, Any] | None = None,
    *,
    env: Mapping[str, str] | None = None,
    where: str | None = None,
    prefix: str = "",
) -> T:
    """``cls`` built from ``data`` (a plain mapping), env vars filling the fields the data
    leaves unset. ``where`` names the source in error messages (``reward.reward_kwargs``)."""
    if isinstance(data, cls):
        return data
    values = dict(data or {})
    env = os.environ if env is None else env
    for name in cls.model_fields:
        if name in values and values[name] is not None:
            continue
        var = _env_name(cls, name)
        if var and env.get(var):
            values[name] = env[var]
    try:
        return cls.model_validate(values)
    except ValidationError as err:
        raise ConfigError(_format(cls, err, where or cls.__name__, prefix)) from None


def load_flat(
    sections: Mapping[str, tuple[str, type[Settings]]],
    data: Mapping[str, Any] | None,
    *,
    env: Mapping[str, str] | None = None,
    where: str = "settings",
) -> dict[str, Settings]:
    """Split one flat mapping over several settings classes by key prefix and load each.

    ``sections`` maps a section name to ``(prefix, class)``; the prefix is ``"guard_"``,
    ``"math_"``, or ``""`` for unprefixed keys. A key goes to the section with the longest
    prefix whose class has the remainder as a field; a key no section knows fails, with the
    nearest flat key suggested. Returns the loaded instance per section name."""
    picked: dict[str, dict[str, Any]] = {name: {} for name in sections}
    order = sorted(sections.items(), key=lambda kv: len(kv[1][0]), reverse=True)
    flat_known = [p + f for p, c in sections.values() for f in c.model_fields]
    unknown = []
    for key, value in (data or {}).items():
        for name, (prefix, cls) in order:
            if key.startswith(prefix) and key[len(prefix) :] in cls.model_fields:
                picked[name][key[len(prefix) :]] = value
                break
        else:
            unknown.append(f"  unknown key {key!r}{_suggest_flat(key, sections, flat_known)}")
    if unknown:
        raise ConfigError(f"invalid {where}:\n" + "\n".join(unknown))
    out: dict[str, Settings] = {}
    errors = []
    for name, (prefix, cls) in sections.items():
        try:
            out[name] = load(cls, picked[name], env=env, where=where, prefix=prefix)
        except ConfigError as err:
            errors.extend(str(err).splitlines()[1:])
    if errors:
        raise ConfigError(f"invalid {where}:\n" + "\n".join(errors))
    return out


def load_yaml(cls: type[T], path: str | os.PathLike | None, overrides: Iterable[str] = (), **kw: Any) -> T:
    """``cls`` from a YAML file with ``key.sub=value`` overrides applied (hydra's syntax, through
    OmegaConf; ``+key=`` accepted, list items by index: ``models.1.path=/ckpt``), then :func:`load`."""
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    base = OmegaConf.create({})
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"config file not found: {p}")
        base = OmegaConf.load(p)
    for item in overrides:
        key, sep, raw = item.lstrip("+").partition("=")  # hydra's +key= / ++key= append forms
        if not sep or not key.strip():
            raise ConfigError(f"override {item!r} is not key=value")
        value = OmegaConf.from_dotlist([f"v={raw}"]).v  # the value parsed as hydra parses it
        try:
            OmegaConf.update(base, key.strip(), value, merge=True, force_add=True)
        except (OmegaConfBaseException, IndexError, ValueError) as exc:
            raise ConfigError(f"override {item!r} does not fit {path or cls.__name__}: {exc}") from None
    data = OmegaConf.to_container(base, resolve=True)
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping")
    return load(cls, data, where=str(path or cls.__name__), **kw)


def settings_table(cls: type[BaseModel], prefix: str = "") -> list[tuple[str, str, str]]:
    """``(key, default, doc)`` rows for the README, nested classes flattened with dots."""
    rows: list[tuple[str, str, str]] = []
    for name, f in cls.model_fields.items():
        ann = f.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            rows.extend(settings_table(ann, f"{prefix}{name}."))
            continue
        default = f.get_default(call_default_factory=True)
        env = _env_name(cls, name) if issubclass(cls, Settings) else None
        shown = "(required)" if f.is_required() else ("" if default is None else _show(default))
        doc = f.description or ""
        if env:
            doc = f"{doc} (env `{env}`)" if doc else f"env `{env}`"
        rows.append((f"{prefix}{name}", shown, doc))
    return rows


def _show(value: Any) -> str:
    if isinstance(value, (tuple, list)):
        return ", ".join(str(v) for v in value) if len(value) <= 4 else f"{len(value)} items"
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)
