"""Drift under Pulumi mocks: what the fact reader finds becomes each repairing resource's `drift` input."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

import pulumi
import pytest

from components.drift.compare import sha256_text
from components.drift.facts import FactRequest, Reading
from components.manifest import planner
from components.remote.ssh import Connection
from components.settings import parse_settings

from .conftest import base_config
from .test_program_mocks import build

SETTINGS = parse_settings(base_config(), {"sshPrivateKey"}, "dev")
POLICY_SHA = sha256_text(SETTINGS.policy.text) if SETTINGS.policy else ""
KUBEADM = """apiVersion: v1
kind: Pod
metadata: {name: kube-apiserver, namespace: kube-system}
spec:
  containers:
  - name: kube-apiserver
    command: [kube-apiserver, --secure-port=6443]
"""


def node(converged: bool = True, drop: str | None = None, policy_sha: str = POLICY_SHA) -> dict[str, Any]:
    pod = planner.parse_manifest(KUBEADM, "m")
    if converged:
        pod = planner.plan(pod, SETTINGS.audit_state())
    if drop:
        c = planner.apiserver_container(pod)
        c["command"] = [t for t in c["command"] if not t.startswith(drop + "=")]
    c = planner.apiserver_container(pod)
    return {"manifest": {"path": "/etc/kubernetes/manifests/kube-apiserver.yaml",
                         "b64": base64.b64encode(planner.render(pod).encode()).decode()},
            "policy": {"path": "/etc/kubernetes/audit-policy/apiserver-audit-policy.yaml", "sha256": policy_sha},
            "apiserver": [{"pid": 1, "argv": c["command"]}]}


class FakeReader:
    def __init__(self, readings: dict[str, Reading]) -> None:
        self.readings = readings
        self.asked: dict[str, FactRequest] = {}
        self.timeout = 0.0

    def __call__(self, targets: Mapping[str, tuple[Connection, FactRequest]], timeout: float) -> dict[str, Reading]:
        self.asked = {name: req for name, (_conn, req) in targets.items()}
        self.timeout = timeout
        return self.readings


def drift_of(rec: dict[str, Any], name: str) -> list[str]:
    """The reasons, wherever they travel: `drift` in a preview, `repair` in the real run of up."""
    props = rec[name].props
    return list(props["drift"]) + list(props["repair"])


@pulumi.runtime.test
def test_only_the_drifted_master_gets_reasons() -> None:
    reader = FakeReader({"master-1": Reading(node()), "master-2": Reading(node(drop="--audit-policy-file")),
                         "master-3": Reading(node(policy_sha="f" * 64))})
    _, rec, _ = build(reader=reader)
    assert reader.asked["master-2"] == FactRequest("/etc/kubernetes/manifests/kube-apiserver.yaml",
                                                   "/etc/kubernetes/audit-policy/apiserver-audit-policy.yaml")
    assert reader.timeout == 20.0
    assert drift_of(rec, "audit-apiserver-master-1-manifest") == []
    assert drift_of(rec, "audit-apiserver-master-2-manifest") == [
        "master-2: --audit-policy-file missing from kube-apiserver.yaml"]
    assert drift_of(rec, "audit-apiserver-master-3-manifest") == []
    assert drift_of(rec, "audit-policy-master-2") == [] and drift_of(rec, "audit-policy-master-1") == []
    (reason,) = drift_of(rec, "audit-policy-master-3")
    assert reason.startswith("master-3: policy file /etc/kubernetes/audit-policy/apiserver-audit-policy.yaml changed")
    # The component's own inputs never carry drift: a component diff would outlive the repair.
    assert "drift" not in rec["audit-apiserver-master-2"].props


@pulumi.runtime.test
def test_an_unreachable_master_is_a_warning_and_no_drift(monkeypatch: pytest.MonkeyPatch) -> None:
    warnings: list[str] = []
    monkeypatch.setattr(pulumi.log, "warn", lambda msg, *a, **k: warnings.append(msg))
    reader = FakeReader({"master-1": Reading(node()), "master-2": Reading(None, "cannot connect to root@x: timed out"),
                         "master-3": Reading(node())})
    _, rec, _ = build(reader=reader)
    assert drift_of(rec, "audit-apiserver-master-2-manifest") == []
    assert warnings == ["master-2: drift not checked (cannot connect to root@x: timed out); the preview shows only "
                        "config changes for this master"]


@pulumi.runtime.test
def test_reading_off_asks_no_master() -> None:
    reader = FakeReader({})
    _, rec, _ = build({"drift": {"read": False}}, reader=reader)
    assert reader.asked == {}
    assert all(drift_of(rec, f"audit-apiserver-master-{i}-manifest") == [] for i in (1, 2, 3))


@pulumi.runtime.test
def test_disabled_stack_reads_no_policy_and_flags_leftover_audit() -> None:
    reader = FakeReader({m: Reading(node()) for m in ("master-1", "master-2", "master-3")})
    _, rec, _ = build({"enabled": "false"}, reader=reader)
    assert reader.asked["master-1"].policy is None
    reasons = drift_of(rec, "audit-apiserver-master-1-manifest")
    assert "master-1: volume audit-logs in kube-apiserver.yaml is not wanted" in reasons


@pulumi.runtime.test
def test_reasons_are_shown_in_preview_and_carried_hidden_in_up() -> None:
    readings = {"master-1": Reading(node()), "master-2": Reading(node(drop="--audit-policy-file")),
                "master-3": Reading(node())}
    reason = ["master-2: --audit-policy-file missing from kube-apiserver.yaml"]
    _, rec, _ = build(reader=FakeReader(readings), preview=True)
    props = rec["audit-apiserver-master-2-manifest"].props
    assert (props["drift"], props["repair"]) == (reason, [])
    _, rec, _ = build(reader=FakeReader(readings), preview=False)
    r = rec["audit-apiserver-master-2-manifest"]
    assert (r.props["drift"], r.props["repair"]) == ([], reason)
    # What the real run stores as inputs must not be shown as "changed from" by the next preview.
    assert r.opts.hide_diffs == ["repair"]


@pulumi.runtime.test
def test_a_drift_only_repair_reruns_every_preflight_check_first() -> None:
    readings = {"master-1": Reading(node()), "master-2": Reading(node(drop="--audit-policy-file")),
                "master-3": Reading(node(policy_sha="f" * 64))}
    _, rec, _ = build(reader=FakeReader(readings))
    reasons = drift_of(rec, "audit-apiserver-master-2-manifest") + drift_of(rec, "audit-policy-master-3")
    assert len(reasons) == 2
    # Every master's check learns which masters drifted: its inputs change, so the engine runs it
    # again, and the repair (which depends on all checks) waits for every check to pass.
    for i in (1, 2, 3):
        assert drift_of(rec, f"audit-preflight-master-{i}") == [
            "master-2 drifted: every master is checked again before the repair",
            "master-3 drifted: every master is checked again before the repair"], i
    # Each reason is shown once, under the resource that repairs it (and so under its own master).
    shown = [r for props in rec.values() for key in ("drift", "repair") for r in props.props.get(key) or []]
    assert sorted(r for r in shown if r in reasons) == sorted(reasons)
    _, rec, _ = build(reader=FakeReader({m: Reading(node()) for m in ("master-1", "master-2", "master-3")}))
    assert all(drift_of(rec, f"audit-preflight-master-{i}") == [] for i in (1, 2, 3))
