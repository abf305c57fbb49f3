"""``sinternal-verl serve``: run the reward server with uvicorn.

Server settings (:class:`ServerSettings`) come from, highest first: flags (one per setting,
``--max-items``), ``--set KEY=VALUE``, a ``--config`` YAML file, env vars
(``SINTERNAL_SERVER_API_KEY``), defaults. A misspelt key fails at start-up with the nearest
known key suggested. Guard and reward settings are reward kwargs (``--reward-kwargs JSON``,
``--reward-kwarg KEY=VALUE``, the ``--guard-*`` shortcuts), handed to the reward router
that builds the guard; unset guard keys come from ``SINTERNAL_GUARD_*`` as in verl.
"""

from __future__ import annotations

import argparse
import json
import logging
from typing import Any

from sinternal_verl.settings import ConfigError, load

from .settings import ServerSettings

#: older flag names kept working
ALIASES = {"request_timeout_s": "--request-timeout", "graceful_shutdown_s": "--graceful-shutdown"}


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--config", default=None, help="YAML file of server settings (keys: the flags' names with _)"
    )
    p.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="one server setting (repeatable)"
    )
    s = p.add_argument_group("server settings")
    for name, f in ServerSettings.model_fields.items():
        if name == "reward_kwargs":
            continue
        flags = [_flag(name)] + ([ALIASES[name]] if name in ALIASES else [])
        s.add_argument(
            *flags, dest=name, default=None, metavar="X", help=f"{f.description} (default {f.default})"
        )
    g = p.add_argument_group("guard and reward (reward kwargs, as verl's reward.reward_kwargs)")
    g.add_argument("--reward-kwargs", default=None, help="JSON object of reward settings")
    g.add_argument(
        "--reward-kwarg",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="one reward setting, value parsed as JSON if possible (repeatable)",
    )
    g.add_argument(
        "--guard-backend",
        choices=("http", "openai", "ray_pool", "lexical"),
        default=None,
        help="http (alias openai): OpenAI-compatible upstreams (--guard-url); ray_pool: attach to a "
        "RayGuardPool by name; lexical: the offline judge (guard_kind=lexical)",
    )
    g.add_argument(
        "--guard-url", action="append", default=None, help="OpenAI-compatible guard URL (repeatable)"
    )
    g.add_argument("--guard-kind", default=None, help="qwen3guard | llamaguard | wildguard | lexical")
    g.add_argument("--guard-model", default=None, help="served model name (default: the kind's model)")
    g.add_argument(
        "--guard-api-key", default=None, help="key for the guard upstream (or env SINTERNAL_GUARD_API_KEY)"
    )
    g.add_argument(
        "--guard-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="any other guard setting without its guard_ prefix, e.g. max_concurrency_per_url=128",
    )
    g.add_argument("--guard-pool-name", default=None, help="RayGuardPool name (guard_backend=ray_pool)")
    g.add_argument(
        "--guard-pool-namespace", default=None, help="RayGuardPool namespace (guard_backend=ray_pool)"
    )


def _value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _pairs(items: list[str], what: str) -> dict[str, Any]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"{what} needs KEY=VALUE, got {item!r}")
        out[key.strip()] = _value(value)
    return out


def reward_kwargs(args: argparse.Namespace, base: dict[str, Any]) -> dict[str, Any]:
    """The reward kwargs: config file's, then ``--reward-kwargs``, ``--reward-kwarg``, the
    ``--guard-*`` shortcuts (later wins)."""
    kw = dict(base)
    if args.reward_kwargs:
        extra = json.loads(args.reward_kwargs)
        if not isinstance(extra, dict):
            raise ConfigError("--reward-kwargs must be a JSON object")
        kw.update(extra)
    kw.update(_pairs(args.reward_kwarg, "--reward-kwarg"))
    kw.update({f"guard_{k}": v for k, v in _pairs(args.guard_option, "--guard-option").items()})
    backend = args.guard_backend
    if backend == "lexical":
        kw["guard_kind"] = "lexical"
    elif backend is not None:
        kw["guard_backend"] = "http" if backend == "openai" else backend
    for flag, key in (
        ("guard_url", "guard_urls"),
        ("guard_kind", "guard_kind"),
        ("guard_model", "guard_model"),
        ("guard_api_key", "guard_api_key"),
        ("guard_pool_name", "guard_pool_name"),
        ("guard_pool_namespace", "guard_pool_namespace"),
    ):
        value = getattr(args, flag)
        if value is not None:
            kw[key] = value
    return kw


def settings_from(args: argparse.Namespace) -> ServerSettings:
    data: dict[str, Any] = {}
    if args.config:
        from omegaconf import OmegaConf

        loaded = OmegaConf.to_container(OmegaConf.load(args.config), resolve=True)
        if not isinstance(loaded, dict):
            raise ConfigError(f"{args.config}: the top level must be a mapping")
        data.update(loaded)
    data.update(_pairs(args.set, "--set"))
    for name in ServerSettings.model_fields:
        value = getattr(args, name, None)
        if value is not None and name != "reward_kwargs":
            data[name] = value
    base = data.get("reward_kwargs") or {}
    if not isinstance(base, dict):
        raise ConfigError("reward_kwargs must be a mapping")
    data["reward_kwargs"] = reward_kwargs(args, base)
    return load(ServerSettings, data, where=f"server settings{f' ({args.config})' if args.config else ''}")


def make_guard(settings: ServerSettings):
    """The guard, built before binding so a bad reward setting (a misspelt key too) fails the
    start-up."""
    from sinternal_verl.rewards.settings import RewardSettings

    if RewardSettings.from_kwargs(settings.reward_kwargs).guard.backend == "ray_pool":
        import ray

        if not ray.is_initialized():
            ray.init(address=settings.ray_address, log_to_driver=False)
    from .scoring import guard_from_settings

    return guard_from_settings(settings.reward_kwargs)


def run(args: argparse.Namespace) -> int:
    try:
        settings = settings_from(args)
    except (ConfigError, json.JSONDecodeError) as exc:
        raise SystemExit(f"sinternal-verl serve: {exc}") from None
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    from sinternal_verl.guards.types import GuardUnavailableError

    from .app import build_app
    from .runner import serve

    try:
        guard = make_guard(settings)
        app = build_app(settings, guard_factory=lambda: guard)
    except (ValueError, ConfigError, GuardUnavailableError) as exc:  # e.g. no replicas of the Ray pool
        raise SystemExit(f"sinternal-verl serve: {exc}") from None
    if settings.host not in ("127.0.0.1", "localhost", "::1") and not settings.api_key:
        logging.getLogger("sinternal_verl.server").warning(
            "binding %s without an api key: anyone who can reach it can use it", settings.host
        )
    serve(app, settings)
    return 0
