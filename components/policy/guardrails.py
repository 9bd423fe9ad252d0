"""Checks behind the CrossGuard pack ``policies/guardrails`` (pure: no pulumi_policy import).

Each function returns a list of violation messages; empty means the resource passes. The pack
wraps them as policies; tests call them directly because a PolicyPack blocks when constructed.
"""

from __future__ import annotations

from .lint import lint
from .loader import load_policy
from .problems import PolicyError


def check_policy_text(text: str, source: str) -> list[str]:
    """Mandatory: the audit policy loads (else kube-apiserver crash-loops) and logs no secrets."""
    try:
        policy = load_policy(text, source)
    except PolicyError as err:
        return [f"audit policy is invalid; kube-apiserver would refuse to start: {problem}" for problem in err.problems]
    return [
        f"{source}: rule {f.rule} (line {policy.rules[f.rule].line}): {f.message}"
        if f.rule is not None
        else f"{source}: {f.message}"
        for f in lint(policy)
        if f.code == "sensitive-body-logged"
    ]


def check_retention(max_age: int, max_backup: int, max_size: int) -> list[str]:
    """Mandatory: all three audit-log rotation limits set and positive.

    Before Kubernetes 1.36 a zero means "unlimited" (maxage, maxbackup) and logs grow until the
    control-plane disk is full; a negative value stops kube-apiserver at start-up.
    """
    violations = []
    for flag, value, unit in (
        ("--audit-log-maxage", max_age, "days"),
        ("--audit-log-maxbackup", max_backup, "files"),
        ("--audit-log-maxsize", max_size, "MB"),
    ):
        if isinstance(value, bool) or not isinstance(value, int):
            violations.append(f"{flag} must be a whole number of {unit}, got {value!r}")
        elif value < 0:
            violations.append(f"{flag} is {value}: kube-apiserver refuses negative values")
        elif value == 0:
            violations.append(
                f"{flag} is 0, which means unlimited before Kubernetes 1.36: audit logs would "
                f"fill the control-plane disk; set a positive number of {unit}"
            )
    return violations


def check_prod_enabled(stack: str, enabled: bool) -> list[str]:
    """Advisory: stacks whose name starts with ``prod`` should have audit logging on."""
    if stack.startswith("prod") and not enabled:
        return [f"audit logging is disabled on production stack {stack!r}: changes to the cluster leave no audit trail"]
    return []
