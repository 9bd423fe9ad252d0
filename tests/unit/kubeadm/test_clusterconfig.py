"""The ClusterConfiguration editor: our audit args and volumes in, out again, everything else kept."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from components.kubeadm.clusterconfig import ClusterConfigError, audit_view, desired_args, edit
from components.manifest.desired import AuditState

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures/kubeadm"
ON = AuditState(enabled=True, policy_hash="a" * 64)
OFF = AuditState(enabled=False)
WANT_ARGS = ["audit-log-maxage=30", "audit-log-maxbackup=1", "audit-log-maxsize=100",
             "audit-log-path=/var/log/audit/kube-apiserver-audit.log",
             "audit-policy-file=/etc/kubernetes/audit-policy/apiserver-audit-policy.yaml"]
WANT_VOLUMES = [
    {"name": "audit-logs", "hostPath": "/var/log/kubernetes/audit", "mountPath": "/var/log/audit",
     "readOnly": False, "pathType": "DirectoryOrCreate"},
    {"name": "audit-policy", "hostPath": "/etc/kubernetes/audit-policy", "mountPath": "/etc/kubernetes/audit-policy",
     "readOnly": True, "pathType": "DirectoryOrCreate"},
]


def text(name: str) -> str:
    return (FIXTURES / name).read_text()


def test_v1beta4_gets_name_value_args_and_volumes() -> None:
    out = edit(text("v1beta4.yaml"), ON)
    doc = yaml.safe_load(out)
    assert doc["apiServer"]["extraArgs"] == [{"name": a.split("=", 1)[0], "value": a.split("=", 1)[1]}
                                             for a in WANT_ARGS]
    assert doc["apiServer"]["extraVolumes"] == WANT_VOLUMES
    before = yaml.safe_load(text("v1beta4.yaml"))
    assert {k: v for k, v in doc.items() if k != "apiServer"} == {k: v for k, v in before.items() if k != "apiServer"}
    assert "extraArgs:\n  - name: audit-log-maxage\n" in out, out  # block style, not flow


def test_v1beta3_gets_a_map_and_keeps_comments_and_other_args() -> None:
    out = edit(text("v1beta3.yaml"), ON)
    doc = yaml.safe_load(out)
    args = doc["apiServer"]["extraArgs"]
    assert args["authorization-mode"] == "Node,RBAC" and args["service-node-port-range"] == "30000-32767"
    assert {f"{k}={v}" for k, v in args.items() if k.startswith("audit-")} == set(WANT_ARGS)
    assert all(isinstance(v, str) for v in args.values()), "kubeadm wants a map of strings"
    assert "authorization-mode: Node,RBAC   # keep" in out
    assert doc["apiServer"]["timeoutForControlPlane"] == "4m0s"


def test_disable_removes_exactly_what_enable_added() -> None:
    for name in ("v1beta4.yaml", "v1beta3.yaml"):
        original = text(name)
        assert edit(edit(original, ON), OFF) == original, name


def test_customised_config_keeps_comments_order_and_foreign_entries() -> None:
    original = text("v1beta4-customised.yaml")
    out = edit(original, ON)
    for kept in ("# DCE: edited by the platform team, keep the comments", "clusterName: dce-prod   # the name",
                 "- name: service-node-port-range   # DCE needs the wide range", "name: extra-certs",
                 "- name: feature-gates"):
        assert kept in out, kept
    view = audit_view(out)
    assert view["extraArgs"] == WANT_ARGS, "the hand-made audit-log-maxage=7 is replaced, not duplicated"
    assert view["extraVolumes"] == WANT_VOLUMES
    off = yaml.safe_load(edit(out, OFF))
    assert [a["name"] for a in off["apiServer"]["extraArgs"]] == ["service-node-port-range", "feature-gates"]
    assert [v["name"] for v in off["apiServer"]["extraVolumes"]] == ["extra-certs"]


def test_edit_is_idempotent_and_view_is_empty_when_off() -> None:
    for name in ("v1beta4.yaml", "v1beta3.yaml", "v1beta4-customised.yaml"):
        once = edit(text(name), ON)
        assert edit(once, ON) == once
        assert audit_view(edit(once, OFF)) == {"extraArgs": [], "extraVolumes": []}


@pytest.mark.parametrize("bad, field", [
    ("apiVersion: kubeadm.k8s.io/v1beta2\nkind: ClusterConfiguration\n", "apiVersion"),
    ("apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\n", "ClusterConfiguration"),
    ("apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\napiServer:\n  extraArgs: {a: b}\n",
     "apiServer.extraArgs"),
    ("apiVersion: kubeadm.k8s.io/v1beta3\nkind: ClusterConfiguration\napiServer:\n  extraArgs: [a]\n",
     "apiServer.extraArgs"),
    ("a: [", "not valid YAML"),
])
def test_bad_configs_name_the_field(bad: str, field: str) -> None:
    with pytest.raises(ClusterConfigError, match=field):
        edit(bad, ON, "kube-system/kubeadm-config:ClusterConfiguration")


@settings(max_examples=40, deadline=None)
@given(max_age=st.integers(0, 400), mode=st.sampled_from([None, "batch"]), compress=st.sampled_from([None, True]))
def test_args_are_the_manifest_flags_without_dashes(max_age: int, mode: str | None, compress: bool | None) -> None:
    state = AuditState(enabled=True, max_age=max_age, log_mode=mode, log_compress=compress)
    assert [f"--{k}={v}" for k, v in desired_args(state)] == state.flags()
    for name in ("v1beta4.yaml", "v1beta3.yaml"):
        assert edit(edit(text(name), state), OFF) == text(name)


@pytest.mark.parametrize("name", ["v1beta4.yaml", "v1beta3.yaml"])
def test_an_underscore_spelled_audit_arg_is_ours_too(name: str) -> None:
    # kubeadm writes extraArg `audit_policy_file` as `--audit_policy_file=`, which kube-apiserver obeys
    # as --audit-policy-file: left in, it would override ours (or keep audit on after a disable).
    original = yaml.safe_load(text(name))
    stale = {"audit_policy_file": "/etc/old.yaml", "audit-log_maxage": "7"}
    args = original["apiServer"].setdefault("extraArgs", [] if name == "v1beta4.yaml" else {})
    if isinstance(args, list):
        args += [{"name": k, "value": v} for k, v in stale.items()]
    else:
        args.update(stale)
    dirty = yaml.safe_dump(original, sort_keys=False)
    assert audit_view(dirty)["extraArgs"] == [f"{k}={v}" for k, v in stale.items()]
    assert audit_view(edit(dirty, ON))["extraArgs"] == WANT_ARGS
    assert audit_view(edit(dirty, OFF))["extraArgs"] == []
