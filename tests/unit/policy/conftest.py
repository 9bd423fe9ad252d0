"""Helpers for the policy engine tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from components.policy import Policy, load_policy

REPO = Path(__file__).resolve().parents[3]
POLICIES = REPO / "policies"
SEED = REPO / "tests" / "fixtures" / "seed-policy.yaml"

HEADER = "apiVersion: audit.k8s.io/v1\nkind: Policy\n"


def policy_of(body: str, source: str = "test.yaml") -> Policy:
    """Load a policy from the text after the apiVersion/kind header."""
    return load_policy(HEADER + body, source)


@pytest.fixture
def repo() -> Path:
    return REPO
