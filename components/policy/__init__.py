"""Audit policy engine: load and validate, evaluate (explain), lint. Pure Python, no pulumi.

The semantics mirror kube-apiserver's ``k8s.io/apiserver/pkg/audit/policy`` (reader.go, checker.go)
and ``pkg/apis/audit/validation``; see components/policy/README.md.
"""

from __future__ import annotations

import hashlib

from .evaluator import Decision, Request, evaluate
from .files import load_policy_file
from .findings import Finding
from .lint import lint
from .loader import load_policy
from .model import LEVELS, STAGES, GroupResources, Policy, PolicyRule
from .problems import PolicyError, Problem

__all__ = [
    "LEVELS",
    "STAGES",
    "Decision",
    "Finding",
    "GroupResources",
    "Policy",
    "PolicyError",
    "PolicyRule",
    "Problem",
    "Request",
    "evaluate",
    "lint",
    "load_policy",
    "load_policy_file",
    "policy_hash",
]


def policy_hash(policy: Policy) -> str:
    """sha256 hex of the policy file's exact bytes (or of its UTF-8 text when not from a file).

    The program stamps this on the apiserver manifest so that a policy change restarts the pod.
    """
    data = policy.raw if policy.raw is not None else policy.text.encode("utf-8")
    return hashlib.sha256(data).hexdigest()
