"""The drift comparer: one plain reason per difference, none on a converged master (fixtures + properties)."""

from __future__ import annotations

import base64
import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from components.drift.compare import compare, manifest_reasons, running_notes, sha256_text
from components.manifest import planner
from components.manifest.desired import AuditState

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures/manifests"
POLICY = "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: Metadata\n"
ON = AuditState(enabled=True, policy_hash=sha256_text(POLICY))
OFF = AuditState(enabled=False)
WHERE = "kube-apiserver.yaml"


def fixture(name: str = "kubeadm-v1.31.yaml") -> planner.Pod:
    return planner.parse_manifest((FIXTURES / name).read_text(), name)


def converged(state: AuditState = ON) -> planner.Pod:
    return planner.plan(fixture(), state)


def argv_of(pod: planner.Pod) -> list[str]:
    c = planner.apiserver_container(pod)
    return [str(t) for t in (c.get("command") or []) + (c.get("args") or [])]


def facts(pod: planner.Pod | None, policy_sha: str | None = None, processes: Any = "same") -> dict[str, Any]:
    text = planner.render(pod) if pod is not None else None
    out: dict[str, Any] = {"manifest": {"path": "/etc/kubernetes/manifests/kube-apiserver.yaml"}}
    if text is None:
        out["manifest"]["error"] = "No such file or directory"
    else:
        out["manifest"]["b64"] = base64.b64encode(text.encode()).decode()
    out["policy"] = ({"path": "/etc/kubernetes/audit-policy/p.yaml", "sha256": policy_sha} if policy_sha
                     else {"path": "/etc/kubernetes/audit-policy/p.yaml", "error": "No such file or directory"})
    out["apiserver"] = [{"pid": 42, "argv": argv_of(pod)}] if (processes == "same" and pod) else (processes or [])
    return out


def drop_flag(pod: planner.Pod, name: str) -> planner.Pod:
    pod = copy.deepcopy(pod)
    c = planner.apiserver_container(pod)
    c["command"] = [t for t in c["command"] if not str(t).startswith(name + "=")]
    return pod


def test_converged_master_has_no_drift() -> None:
    d = compare("master-1", ON, facts(converged(), sha256_text(POLICY)), sha256_text(POLICY))
    assert (d.manifest, d.policy, d.notes) == ((), (), ())


def test_a_dropped_flag_is_one_plain_reason_naming_the_master() -> None:
    pod = drop_flag(converged(), "--audit-policy-file")
    d = compare("master-2", ON, facts(pod, sha256_text(POLICY)), sha256_text(POLICY))
    assert d.manifest == ("master-2: --audit-policy-file missing from kube-apiserver.yaml",)
    assert d.policy == ()


def test_a_changed_flag_value_says_what_it_is_and_what_is_wanted() -> None:
    pod = converged()
    c = planner.apiserver_container(pod)
    c["command"] = [("--audit-log-maxage=7" if str(t).startswith("--audit-log-maxage=") else t) for t in c["command"]]
    assert manifest_reasons(planner.render(pod), ON, WHERE) == [
        "--audit-log-maxage is '7' in kube-apiserver.yaml, the stack wants '30'"]


def test_an_extra_audit_flag_is_not_wanted() -> None:
    pod = converged()
    planner.apiserver_container(pod)["command"].append("--audit-log-mode=batch")
    assert manifest_reasons(planner.render(pod), ON, WHERE) == [
        "--audit-log-mode=batch in kube-apiserver.yaml is not wanted"]


def test_missing_volume_and_mount_are_named() -> None:
    pod = converged()
    pod["spec"]["volumes"] = [v for v in pod["spec"]["volumes"] if v["name"] != "audit-logs"]
    assert manifest_reasons(planner.render(pod), ON, WHERE) == ["volume audit-logs missing from kube-apiserver.yaml"]
    pod = converged()
    c = planner.apiserver_container(pod)
    c["volumeMounts"] = [m for m in c["volumeMounts"] if m["name"] != "audit-policy"]
    assert manifest_reasons(planner.render(pod), ON, WHERE) == [
        "volumeMount audit-policy missing from kube-apiserver.yaml"]


def test_a_changed_mount_differs() -> None:
    pod = converged()
    c = planner.apiserver_container(pod)
    for m in c["volumeMounts"]:
        if m["name"] == "audit-policy":
            m["readOnly"] = False
    assert manifest_reasons(planner.render(pod), ON, WHERE) == [
        "volumeMount audit-policy in kube-apiserver.yaml differs from what the stack writes"]


def test_stale_and_missing_policy_hash_annotation() -> None:
    pod = converged(AuditState(enabled=True, policy_hash="a" * 64))
    assert manifest_reasons(planner.render(pod), ON, WHERE) == [
        f"annotation kube-audit.io/policy-hash in kube-apiserver.yaml is stale (aaaaaaaaaaaa…, the stack's policy is "
        f"{ON.policy_hash[:12]}…)"]
    pod = converged()
    del pod["metadata"]["annotations"]["kube-audit.io/policy-hash"]
    assert manifest_reasons(planner.render(pod), ON, WHERE) == [
        "annotation kube-audit.io/policy-hash missing from kube-apiserver.yaml"]


def test_audit_left_on_a_master_of_a_disabled_stack_is_not_wanted() -> None:
    reasons = manifest_reasons(planner.render(converged()), OFF, WHERE)
    assert "--audit-policy-file=/etc/kubernetes/audit-policy/apiserver-audit-policy.yaml in kube-apiserver.yaml " \
           "is not wanted" in reasons
    assert "volume audit-logs in kube-apiserver.yaml is not wanted" in reasons
    assert "annotation kube-audit.io/policy-hash in kube-apiserver.yaml is not wanted" in reasons
    assert manifest_reasons(planner.render(fixture()), OFF, WHERE) == []


def test_policy_file_changed_or_gone_and_ignored_when_audit_is_off() -> None:
    want = sha256_text(POLICY)
    d = compare("master-3", ON, facts(converged(), sha256_text(POLICY + "# edited\n")), want)
    assert d.manifest == () and len(d.policy) == 1
    assert d.policy[0].startswith("master-3: policy file /etc/kubernetes/audit-policy/p.yaml changed (sha256 ")
    d = compare("master-3", ON, facts(converged(), None), want)
    assert d.policy == ("master-3: policy file /etc/kubernetes/audit-policy/p.yaml is gone (No such file or "
                        "directory)",)
    assert compare("master-3", OFF, facts(fixture(), None), None).policy == ()


def test_unreadable_or_broken_manifest_is_a_reason() -> None:
    d = compare("m", ON, facts(None, sha256_text(POLICY)), sha256_text(POLICY))
    assert d.manifest == ("m: /etc/kubernetes/manifests/kube-apiserver.yaml cannot be read: No such file or "
                          "directory",)
    f = facts(converged(), sha256_text(POLICY))
    f["manifest"]["b64"] = base64.b64encode(b"kind: [").decode()
    (reason,) = compare("m", ON, f, sha256_text(POLICY)).manifest
    assert reason.startswith("m: kube-apiserver.yaml:") and "not valid YAML" in reason


def test_running_apiserver_that_lacks_manifest_flags_is_a_note() -> None:
    pod = converged()
    old = fixture()  # what it was started from: no audit flags
    d = compare("master-1", ON, facts(pod, sha256_text(POLICY), [{"pid": 7, "argv": argv_of(old)}]),
                sha256_text(POLICY))
    assert d.manifest == () and len(d.notes) == 1
    note = d.notes[0]
    assert note.startswith("master-1: the running kube-apiserver (pid 7) lacks --audit-log-maxage=30, ")
    assert "--audit-policy-file=" in note
    assert running_notes(planner.render(pod), [], WHERE)[0].startswith("no kube-apiserver process runs")


states = st.builds(
    AuditState, enabled=st.booleans(), max_age=st.integers(0, 400), max_backup=st.integers(0, 20),
    log_mode=st.sampled_from([None, "batch", "blocking"]), policy_hash=st.sampled_from([None, "b" * 64]))
manifests = st.sampled_from(sorted(p.name for p in FIXTURES.glob("*.yaml")))


@settings(max_examples=60, deadline=None)
@given(name=manifests, current=states, wanted=states)
def test_drift_exactly_when_the_planner_would_change_the_manifest(name: str, current: AuditState,
                                                                   wanted: AuditState) -> None:
    pod = planner.plan(fixture(name), current)
    reasons = manifest_reasons(planner.render(pod), wanted, WHERE)
    assert bool(reasons) == (planner.plan(pod, wanted) != pod)
    # After the repair (what `up` writes), nothing is left to report.
    assert manifest_reasons(planner.render(planner.plan(pod, wanted)), wanted, WHERE) == []


@pytest.mark.parametrize("name", sorted(p.name for p in FIXTURES.glob("*.yaml")))
def test_fixtures_render_back_to_the_same_document(name: str) -> None:
    # The comparer re-parses what the reader sends; a render/parse round trip must not invent drift.
    pod = fixture(name)
    assert yaml.safe_load(planner.render(pod)) == pod


def test_kubeadm_sorted_volumes_are_converged_and_only_the_annotation_is_missing() -> None:
    # What kubeadm writes from extraVolumes: the same mounts and volumes, sorted by name among the rest.
    pod = converged()
    c = planner.apiserver_container(pod)
    c["volumeMounts"] = sorted(c["volumeMounts"], key=lambda m: m["name"])
    pod["spec"]["volumes"] = sorted(pod["spec"]["volumes"], key=lambda v: v["name"])
    assert planner.plan(pod, ON) == pod
    del pod["metadata"]["annotations"]["kube-audit.io/policy-hash"]
    assert manifest_reasons(planner.render(pod), ON, WHERE) == [
        "annotation kube-audit.io/policy-hash missing from kube-apiserver.yaml"]
