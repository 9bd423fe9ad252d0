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


# --- a manifest kubeadm regenerated: no annotation, but the facts prove the policy was loaded ------------

ANN = "kube-audit.io/policy-hash"
WRITTEN, STARTED = 1_700_000_000.0, 1_700_000_060.0  # policy file last changed; apiserver started a minute later


def regenerated() -> planner.Pod:
    """What kubeadm writes from a kubeadm-config holding our flags and mounts: all of it but the annotation."""
    pod = converged()
    c = planner.apiserver_container(pod)
    c["volumeMounts"] = sorted(c["volumeMounts"], key=lambda m: m["name"])
    pod["spec"]["volumes"] = sorted(pod["spec"]["volumes"], key=lambda v: v["name"])
    del pod["metadata"]["annotations"][ANN]
    return pod


def loaded_facts(pod: planner.Pod) -> dict[str, Any]:
    f = facts(pod, sha256_text(POLICY))
    f["policy"]["ctime"] = WRITTEN
    f["apiserver"] = [{"pid": 42, "argv": argv_of(pod), "started": STARTED}]
    return f


def test_regenerated_manifest_whose_apiserver_loaded_the_stacks_policy_is_not_drift() -> None:
    pod = regenerated()
    d = compare("master-1", ON, loaded_facts(pod), sha256_text(POLICY))
    assert (d.manifest, d.policy, d.notes) == ((), (), ())
    # The same manifest with no proof (what the program saw before it read start times) is drift.
    assert compare("master-1", ON, facts(pod, sha256_text(POLICY)), sha256_text(POLICY)).manifest == (
        f"master-1: annotation {ANN} missing from kube-apiserver.yaml",)


def _policy_edited_after_start(f: dict[str, Any]) -> None:
    f["policy"]["ctime"] = STARTED + 5


def _policy_written_as_it_started(f: dict[str, Any]) -> None:
    f["policy"]["ctime"] = STARTED


def _no_policy_time(f: dict[str, Any]) -> None:
    del f["policy"]["ctime"]


def _no_start_time(f: dict[str, Any]) -> None:
    f["apiserver"][0]["started"] = None


def _no_process(f: dict[str, Any]) -> None:
    f["apiserver"] = []


def _stale_process_from_another_manifest(f: dict[str, Any]) -> None:
    # Started after the policy was written, but from a manifest without our flags: it audits nothing.
    f["apiserver"][0]["argv"] = argv_of(fixture())


def _a_second_process_started_before_the_policy(f: dict[str, Any]) -> None:
    f["apiserver"].append({"pid": 43, "argv": f["apiserver"][0]["argv"], "started": WRITTEN - 1})


@pytest.mark.parametrize("spoil", [_policy_edited_after_start, _policy_written_as_it_started, _no_policy_time,
                                   _no_start_time, _no_process, _stale_process_from_another_manifest,
                                   _a_second_process_started_before_the_policy])
def test_a_missing_annotation_is_drift_unless_every_fact_proves_the_policy_was_loaded(spoil: Any) -> None:
    pod = regenerated()
    good = loaded_facts(pod)
    assert compare("m", ON, good, sha256_text(POLICY)).manifest == ()  # the control: these facts are proof
    spoiled = copy.deepcopy(good)
    spoil(spoiled)
    assert compare("m", ON, spoiled, sha256_text(POLICY)).manifest == (f"m: annotation {ANN} missing from "
                                                                       "kube-apiserver.yaml",)


def test_a_policy_file_that_is_not_the_stacks_proves_nothing() -> None:
    pod = regenerated()
    f = loaded_facts(pod)
    assert compare("m", ON, f, sha256_text(POLICY)).manifest == ()
    f["policy"]["sha256"] = sha256_text(POLICY + "# edited\n")
    d = compare("m", ON, f, sha256_text(POLICY))
    assert d.manifest == (f"m: annotation {ANN} missing from kube-apiserver.yaml",) and len(d.policy) == 1


def test_a_present_but_different_annotation_stays_drift_whatever_the_facts() -> None:
    pod = regenerated()
    assert compare("m", ON, loaded_facts(pod), sha256_text(POLICY)).manifest == ()
    pod["metadata"]["annotations"][ANN] = "c" * 64
    (reason,) = compare("m", ON, loaded_facts(pod), sha256_text(POLICY)).manifest
    assert reason.startswith(f"m: annotation {ANN} in kube-apiserver.yaml is stale (cccccccccccc…")


def test_other_drift_beside_a_missing_annotation_is_still_named() -> None:
    pod = drop_flag(regenerated(), "--audit-log-maxage")
    assert compare("m", ON, loaded_facts(regenerated()), sha256_text(POLICY)).manifest == ()
    assert compare("m", ON, loaded_facts(pod), sha256_text(POLICY)).manifest == (
        "m: --audit-log-maxage missing from kube-apiserver.yaml", f"m: annotation {ANN} missing from "
        "kube-apiserver.yaml")


def _without_annotation(pod: planner.Pod) -> planner.Pod:
    pod = copy.deepcopy(pod)
    annotations = (pod.get("metadata") or {}).get("annotations") or {}
    annotations.pop(ANN, None)
    if "metadata" in pod and not annotations:
        pod["metadata"].pop("annotations", None)
    return pod


@settings(max_examples=60, deadline=None)
@given(name=manifests, current=states, wanted=states, drop=st.booleans())
def test_with_the_policy_proven_loaded_only_the_missing_annotation_is_forgiven(
        name: str, current: AuditState, wanted: AuditState, drop: bool) -> None:
    pod = planner.plan(fixture(name), current)
    if drop:
        pod = _without_annotation(pod)
    reasons = manifest_reasons(planner.render(pod), wanted, WHERE, policy_loaded=True)
    repaired = planner.plan(pod, wanted)
    if reasons:
        assert repaired != pod
    else:
        # Converged, or nothing but the annotation differs, and only by being absent from the node.
        assert repaired == pod or _without_annotation(repaired) == pod


REAL_KUBEADM = FIXTURES.parent / "kubeadm/apiserver-regenerated-v1.37.yaml"


def test_the_real_kubeadm_output_lacks_only_the_annotation_and_is_not_drift_with_the_proof() -> None:
    # kubeadm appends extraArgs after its own flags; the planner leaves flags that are exactly ours
    # where they are, so the real regenerated manifest differs only by the annotation.
    pod = planner.parse_manifest(REAL_KUBEADM.read_text(), REAL_KUBEADM.name)
    assert planner.audit_flags(pod) == ON.flags() and planner.apiserver_container(pod)["command"][-1] == \
        "--audit-policy-file=/etc/kubernetes/audit-policy/apiserver-audit-policy.yaml"
    repaired = planner.plan(pod, ON)
    assert _without_annotation(repaired) == pod and repaired["metadata"]["annotations"][ANN] == ON.policy_hash
    assert manifest_reasons(planner.render(pod), ON, WHERE) == [f"annotation {ANN} missing from kube-apiserver.yaml"]
    assert compare("master-1", ON, loaded_facts(pod), sha256_text(POLICY)).manifest == ()


def test_flags_moved_but_exactly_ours_stay_put_and_anything_else_is_reordered() -> None:
    pod = converged()
    c = planner.apiserver_container(pod)
    audit = [t for t in c["command"] if str(t).startswith("--audit-")]
    c["command"] = [t for t in c["command"] if t not in audit] + list(reversed(audit))
    assert planner.plan(pod, ON) == pod
    c["command"][-1] = c["command"][-1] + "x"  # one of them differs: all are rewritten in kubeadm's order
    replanned = planner.apiserver_container(planner.plan(pod, ON))["command"]
    assert [t for t in replanned if str(t).startswith("--audit-")] == ON.flags()


# --- flags read as kube-apiserver reads them (issue 22) ---------------------------------------------

def with_flag(pod: planner.Pod, *tokens: str) -> planner.Pod:
    dirty = copy.deepcopy(pod)
    planner.apiserver_container(dirty)["command"] += list(tokens)
    return dirty


def test_an_underscore_policy_flag_after_ours_is_drift_naming_the_policy_in_force() -> None:
    pod = with_flag(converged(), "--audit_policy_file=/etc/old.yaml")
    d = compare("m", ON, facts(pod, sha256_text(POLICY)), sha256_text(POLICY))
    assert d.manifest == (f"m: --audit-policy-file is '/etc/old.yaml' in {WHERE}, the stack wants "
                          f"'{ON.policy_path}'",)


def test_an_underscore_audit_flag_is_drift_when_audit_is_off() -> None:
    pod = with_flag(fixture(), "--audit_log_path", "/var/log/a.log")
    assert manifest_reasons(planner.render(pod), OFF, WHERE) == [
        f"--audit-log-path=/var/log/a.log in {WHERE} is not wanted"]


def test_a_running_apiserver_with_another_value_of_a_two_argument_flag_is_a_note() -> None:
    on_disk = with_flag(converged(), "--etcd-prefix", "/registry")
    running = with_flag(converged(), "--etcd-prefix", "/other")
    notes = running_notes(planner.render(on_disk), [{"pid": 7, "argv": argv_of(running)}], WHERE)
    assert len(notes) == 1 and "lacks --etcd-prefix /registry" in notes[0] and "has --etcd-prefix /other" in notes[0]
