"""Fail early and clearly on a verl version we have not verified.

Why: our CPU platform, rollout replica and reward manager lean on verl internals
(``PlatformRegistry``, ``EngineRegistry``, ``RolloutReplicaRegistry``, the reward loop) that
move between minor releases. A mismatch otherwise surfaces much later as an obscure
``KeyError`` inside a Ray worker; this names the installed and supported versions instead.
"""

from __future__ import annotations

from dataclasses import dataclass

#: the range we verified, inclusive lower bound, exclusive upper bound
VERL_MIN = "0.9.1"
VERL_MAX_EXCLUSIVE = "0.10"


class UnsupportedVerlVersion(RuntimeError):
    """The installed verl is outside the range this package was verified against."""


@dataclass(frozen=True)
class VersionCheck:
    installed: str
    minimum: str
    maximum_exclusive: str

    @property
    def ok(self) -> bool:
        from packaging.version import Version

        v = Version(self.installed)
        # compare the release only, so 0.10.0rc1 / 0.9.2.dev0 fall where a user expects
        rel = Version(".".join(str(p) for p in v.release))
        return Version(self.minimum) <= rel < Version(self.maximum_exclusive)


def installed_verl_version() -> str:
    """The version of the installed verl distribution (read from metadata, no import of verl)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("verl")
    except PackageNotFoundError as exc:
        raise UnsupportedVerlVersion(
            f"verl is not installed; sinternal-verl needs verl>={VERL_MIN},<{VERL_MAX_EXCLUSIVE}"
        ) from exc


def check_verl_version(installed: str | None = None) -> VersionCheck:
    """Raise :class:`UnsupportedVerlVersion` unless ``installed`` (default: the installed verl) is supported."""
    check = VersionCheck(installed or installed_verl_version(), VERL_MIN, VERL_MAX_EXCLUSIVE)
    if not check.ok:
        raise UnsupportedVerlVersion(
            f"sinternal-verl supports verl>={VERL_MIN},<{VERL_MAX_EXCLUSIVE}, but verl {check.installed} is "
            f"installed. Install a supported version: pip install 'verl>={VERL_MIN},<{VERL_MAX_EXCLUSIVE}'."
        )
    return check
