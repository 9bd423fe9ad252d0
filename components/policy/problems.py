"""Positioned problems and the exception that carries them.

Everything the loader rejects becomes a :class:`Problem` pointing at the offending YAML node, so the
command line can print ``FILE:LINE:COL: message`` lines that editors and CI annotate directly.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a policy file, at a 1-based line and column."""

    source: str
    line: int
    col: int
    message: str
    # True for what kube-apiserver accepts but drops or ignores (unknown fields, duplicate keys,
    # ...): validate refuses it, lint and explain go on with the policy the apiserver enforces.
    tolerated: bool = False

    def __str__(self) -> str:
        return f"{self.source}:{self.line}:{self.col}: {self.message}"


class PolicyError(Exception):
    """A policy could not be loaded; ``problems`` lists every reason found (at least one)."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems: list[Problem] = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))

    def __str__(self) -> str:
        return "\n".join(str(p) for p in self.problems)
