"""The base of every settings model (components/settings/__init__.py and the modules split from it)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Strict(BaseModel):
    # Strict: YAML `maxAge: "30"` is a typo waiting to happen, and unknown keys are refused because a
    # misspelled optional key would otherwise silently fall back to its default.
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)
