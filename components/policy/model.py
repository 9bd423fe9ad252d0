"""Typed model of an ``audit.k8s.io/v1`` Policy, with the source lines the loader found it on.

Field names follow Python style (``user_groups``); the YAML names (``userGroups``) are the
``YAML_NAMES`` of each class. Everything is immutable so a loaded policy can be shared and cached.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .problems import Problem

LEVELS: tuple[str, ...] = ("None", "Metadata", "Request", "RequestResponse")
STAGES: tuple[str, ...] = ("RequestReceived", "ResponseStarted", "ResponseComplete", "Panic")


@dataclass(frozen=True)
class GroupResources:
    """One entry of a rule's ``resources`` list."""

    group: str = ""
    resources: tuple[str, ...] = ()
    resource_names: tuple[str, ...] = ()
    line: int = 0
    col: int = 0


@dataclass(frozen=True)
class PolicyRule:
    """One rule. Empty tuples mean "any" exactly as in the apiserver."""

    level: str
    users: tuple[str, ...] = ()
    user_groups: tuple[str, ...] = ()
    verbs: tuple[str, ...] = ()
    resources: tuple[GroupResources, ...] = ()
    namespaces: tuple[str, ...] = ()
    non_resource_urls: tuple[str, ...] = ()
    omit_stages: tuple[str, ...] = ()
    omit_managed_fields: bool | None = None
    # 1-based first and last source line of the rule's list item (0 when built in code).
    line: int = 0
    end_line: int = 0
    col: int = 0
    # Where each field's value starts, (line, col) by YAML name, for findings about one field.
    positions: tuple[tuple[str, int, int], ...] = field(default=(), compare=False)

    def position(self, name: str) -> tuple[int, int]:
        """1-based (line, col) of field ``name``'s value, else of the rule itself."""
        for key, line, col in self.positions:
            if key == name:
                return line, col
        return self.line, self.col

    @property
    def applies_to_resources(self) -> bool:
        """True when the checker takes its resource branch (namespaces or resources set)."""
        return bool(self.namespaces or self.resources)

    @property
    def applies_to_non_resources(self) -> bool:
        """True when the checker takes its non-resource branch."""
        return not self.applies_to_resources and bool(self.non_resource_urls)


@dataclass(frozen=True)
class Policy:
    """A loaded policy. ``text`` is the exact source text (what :func:`policy_hash` hashes)."""

    rules: tuple[PolicyRule, ...]
    omit_stages: tuple[str, ...] = ()
    omit_managed_fields: bool = False
    text: str = ""
    source: str = "<policy>"
    name: str | None = None
    annotations: tuple[tuple[str, str], ...] = ()
    # What kube-apiserver drops or ignores when it loads this file (only with lenient loading).
    dropped: tuple[Problem, ...] = field(default=(), compare=False)
    # The raw bytes when loaded from a file (the hash must cover the file byte for byte).
    raw: bytes | None = field(default=None, repr=False, compare=False)

    @property
    def omitStages(self) -> tuple[str, ...]:  # noqa: N802 - the YAML field name, for callers
        """Alias of ``omit_stages`` under its YAML name."""
        return self.omit_stages

    @property
    def omitManagedFields(self) -> bool:  # noqa: N802 - the YAML field name, for callers
        """Alias of ``omit_managed_fields`` under its YAML name."""
        return self.omit_managed_fields

    def rule_text(self, index: int) -> str:
        """Source text of rule ``index`` (its list item, comments inside it included)."""
        rule = self.rules[index]
        if not rule.line or not self.text:
            return ""
        lines = self.text.splitlines()
        return "\n".join(lines[rule.line - 1 : rule.end_line]).rstrip()
