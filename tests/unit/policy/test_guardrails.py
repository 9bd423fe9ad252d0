"""Guardrails: the pure checks, and the CrossGuard pack wired to them (with a stand-in SDK)."""

from __future__ import annotations

import runpy
import sys
import types
from dataclasses import dataclass, field
from typing import Any

import pytest

from components.policy.guardrails import check_policy_text, check_prod_enabled, check_retention

from .conftest import HEADER, POLICIES, REPO, SEED

PACK = REPO / "policies" / "guardrails" / "__main__.py"


@pytest.mark.parametrize("name", ["dce-default", "metadata-only", "security"])
def test_profiles_pass(name: str) -> None:
    assert check_policy_text((POLICIES / f"{name}.yaml").read_text(), name) == []


def test_invalid_policy_is_a_violation_per_problem() -> None:
    violations = check_policy_text(SEED.read_text(), "seed.yaml")
    assert len(violations) == 1 and "seed.yaml:18:9:" in violations[0] and "refuse to start" in violations[0]


def test_sensitive_body_logged_is_a_violation() -> None:
    (violation,) = check_policy_text(HEADER + "rules:\n  - level: RequestResponse\n", "p.yaml")
    assert violation.startswith("p.yaml: rule 0 (line 4): logs credentials at RequestResponse: create tokenreviews")


def test_other_lint_findings_are_not_violations() -> None:
    assert check_policy_text(HEADER + "rules:\n  - level: Metadata\n    verbs: [GET]\n", "p.yaml") == []


@pytest.mark.parametrize(
    ("args", "count", "fragment"),
    [
        ((30, 10, 100), 0, ""),
        ((0, 10, 100), 1, "--audit-log-maxage is 0"),
        ((30, 0, 0), 2, "--audit-log-maxbackup is 0"),
        ((30, -1, 100), 1, "refuses negative"),
        ((True, 1, 1), 1, "whole number"),
    ],
)
def test_check_retention(args: tuple[Any, ...], count: int, fragment: str) -> None:
    violations = check_retention(*args)
    assert len(violations) == count and all(fragment in v for v in violations[:1])


def test_check_prod_enabled() -> None:
    assert check_prod_enabled("prod", False) and check_prod_enabled("production-eu", False)
    assert not check_prod_enabled("prod", True)
    assert not check_prod_enabled("dev", False) and not check_prod_enabled("staging-prod", False)


# -- the pack, run against a stand-in pulumi_policy that records instead of serving gRPC ----------


@dataclass
class _Args:
    resource_type: str
    props: dict[str, Any]
    urn: str
    name: str = "res"


@dataclass
class _Pack:
    name: str
    policies: list[Any]
    enforcement_level: Any = None
    kwargs: dict[str, Any] = field(default_factory=dict)


@pytest.fixture
def pack(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    fake = types.ModuleType("pulumi_policy")
    created: list[_Pack] = []
    fake.EnforcementLevel = types.SimpleNamespace(MANDATORY="mandatory", ADVISORY="advisory")  # type: ignore[attr-defined]
    fake.ReportViolation = object  # type: ignore[attr-defined]
    fake.ResourceValidationArgs = _Args  # type: ignore[attr-defined]
    fake.ResourceValidationPolicy = lambda **kw: types.SimpleNamespace(**kw)  # type: ignore[attr-defined]
    fake.PolicyPack = lambda name, policies, **kw: created.append(_Pack(name, policies, kwargs=kw))  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "pulumi_policy", fake)
    monkeypatch.setattr(sys, "path", list(sys.path))
    runpy.run_path(str(PACK), run_name="__main__")
    (made,) = created
    return {p.name: p for p in made.policies}


def _violations(policy: Any, args: _Args) -> list[str]:
    found: list[str] = []
    policy.validate(args, lambda message, urn=None: found.append(message))
    return found


URN = "urn:pulumi:{stack}::kube-audit::kube-audit:index:AuditLogging::audit"


def test_pack_policies_and_levels(pack: dict[str, Any]) -> None:
    assert {name: p.enforcement_level for name, p in pack.items()} == {
        "audit-policy-valid": "mandatory",
        "audit-log-retention-bounded": "mandatory",
        "audit-enabled-in-prod": "advisory",
        "audit-history-kept": "advisory",
    }


def test_pack_policy_file(pack: dict[str, Any]) -> None:
    policy = pack["audit-policy-valid"]
    t = "kube-audit:index:AuditPolicyFile"
    ok = _Args(t, {"policyText": (POLICIES / "security.yaml").read_text(), "policySource": "security"}, URN)
    assert _violations(policy, ok) == []
    bad = _Args(t, {"policyText": SEED.read_text(), "policySource": "seed.yaml"}, URN)
    assert "seed.yaml:18:9:" in _violations(policy, bad)[0]
    assert _violations(policy, _Args(t, {"policyText": None}, URN)) == []  # unknown at preview
    assert _violations(policy, _Args("other:Type", {"policyText": "x"}, URN)) == []


def test_pack_retention(pack: dict[str, Any]) -> None:
    policy = pack["audit-log-retention-bounded"]
    t = "kube-audit:index:AuditLogging"
    assert _violations(policy, _Args(t, {"logMaxAge": 30, "logMaxBackup": 10, "logMaxSize": 100}, URN)) == []
    assert len(_violations(policy, _Args(t, {"logMaxAge": 0, "logMaxBackup": 0, "logMaxSize": 100}, URN))) == 2
    assert "not set: logMaxSize" in _violations(policy, _Args(t, {"logMaxAge": 1, "logMaxBackup": 1}, URN))[0]
    # the engine sends numbers as floats
    assert _violations(policy, _Args(t, {"logMaxAge": 30.0, "logMaxBackup": 10.0, "logMaxSize": 100.0}, URN)) == []
    assert (
        "whole number" in _violations(policy, _Args(t, {"logMaxAge": 1.5, "logMaxBackup": 1, "logMaxSize": 1}, URN))[0]
    )


def test_pack_prod_enabled_reads_the_stack_from_the_urn(pack: dict[str, Any]) -> None:
    policy = pack["audit-enabled-in-prod"]
    t = "kube-audit:index:AuditLogging"
    assert _violations(policy, _Args(t, {"enabled": False}, URN.format(stack="prod-eu")))
    assert not _violations(policy, _Args(t, {"enabled": True}, URN.format(stack="prod-eu")))
    assert not _violations(policy, _Args(t, {"enabled": False}, URN.format(stack="dev")))
