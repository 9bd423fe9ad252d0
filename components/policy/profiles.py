"""Shipped audit policy profiles (``policies/*.yaml``) and how a ``policy`` setting names one."""

from __future__ import annotations

import re
from pathlib import Path

# components/policy/profiles.py -> repo root -> policies/
PROFILE_DIR: Path = Path(__file__).resolve().parent.parent.parent / "policies"

_PROFILE_NAME = re.compile(r"[a-z0-9][a-z0-9._-]*")
_POLICY_SUFFIXES = (".yaml", ".yml", ".json")


def list_profiles() -> list[str]:
    """Names of the shipped profiles, sorted (``dce-default``, ``metadata-only``, ...)."""
    if not PROFILE_DIR.is_dir():
        return []
    return sorted(p.stem for p in PROFILE_DIR.glob("*.yaml") if p.is_file())


def is_profile_name(value: str) -> bool:
    """A bare name (no directory, no file suffix) selects a profile rather than a file."""
    return bool(_PROFILE_NAME.fullmatch(value)) and not value.endswith(_POLICY_SUFFIXES)


def resolve_policy(value: str, base_dir: Path) -> Path:
    """Map a ``policy`` setting to a file.

    ``dce-default`` -> ``policies/dce-default.yaml``; anything else is a path, relative ones
    resolved against ``base_dir`` (the directory of the config that named it). An unknown bare
    name raises ValueError listing the available profiles.
    """
    if is_profile_name(value):
        path = PROFILE_DIR / f"{value}.yaml"
        if path.is_file():
            return path
        available = ", ".join(list_profiles()) or "(none found in " + str(PROFILE_DIR) + ")"
        raise ValueError(
            f"unknown audit policy profile {value!r}: available profiles are {available}; "
            "or give a path to a policy file (e.g. ./my-policy.yaml)"
        )
    path = Path(value).expanduser()
    return path if path.is_absolute() else Path(base_dir) / path
