"""The guardrail `audit-history-kept`, run through the pack with the stand-in pulumi_policy."""

from __future__ import annotations

from typing import Any

from tests.unit.policy.test_guardrails import URN, _Args, _violations, pack  # noqa: F401 - pack is a fixture

T = "kube-audit:index:AuditLogging"


def test_pack_warns_when_history_kept_is_under_the_threshold(pack: dict[str, Any]) -> None:  # noqa: F811
    policy = pack["audit-history-kept"]
    urn = URN.format(stack="prod")
    assert "keeps only 2.0 h" in _violations(policy, _Args(T, {"predictedHistoryHours": 2.0, "minHistoryHours": 24.0}, urn))[0]
    assert _violations(policy, _Args(T, {"predictedHistoryHours": 30.0, "minHistoryHours": 24.0}, urn)) == []
    assert _violations(policy, _Args(T, {"predictedHistoryHours": None, "minHistoryHours": 24.0}, urn)) == []
    assert _violations(policy, _Args(T, {"logMaxAge": 30}, urn)) == []  # no volume sample: nothing predicted
    assert _violations(policy, _Args("other:Type", {"predictedHistoryHours": 1.0, "minHistoryHours": 24}, urn)) == []
