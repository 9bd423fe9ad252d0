"""Lint findings: what every check returns, with the position it is about."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Severity = Literal["error", "warning"]

__all__ = ["Finding", "Severity", "plural"]


@dataclass(frozen=True)
class Finding:
    """One lint result; ``rule`` is the 0-based rule index, or None for the whole policy.

    ``line``/``column`` (1-based) point at what the finding is about: the field or resources
    entry when there is one, else the rule, else 1:1 for the whole policy.
    """

    rule: int | None
    code: str
    severity: Severity
    message: str
    line: int = 1
    column: int = 1


def plural(count: int, word: str) -> str:
    """``1 rule``, ``2 rules``."""
    return f"{count} {word}" if count == 1 else f"{count} {word}s"
