"""Fixture table: real-shaped manifests in, the exact audit content out, everything else untouched."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from components.manifest import planner
from components.manifest.desired import AuditState

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "manifests"
ON = AuditState(enabled=True, policy_hash="abc123")
OFF = AuditState(enabled=False)
DCE_FLAGS = [
    "--audit-log-maxage=30",
    "--audit-log-maxbackup=1",
    "--audit-log-maxsize=100",
    "--audit-log-path=/var/log/audit/kube-apiserver-audit.log",
    "--audit-policy-file=/etc/kubernetes/audit-policy/apiserver-audit-policy.yaml",
]
OUR_MOUNTS = [
    {"mountPath": "/var/log/audit", "name": "audit-logs"},
    {"mountPath": "/etc/kubernetes/audit-policy", "name": "audit-policy", "readOnly": True},
]
OUR_VOLUMES = [
    {"hostPath": {"path": "/var/log/kubernetes/audit", "type": "DirectoryOrCreate"}, "name": "audit-logs"},
    {"hostPath": {"path": "/etc/kubernetes/audit-policy", "type": "DirectoryOrCreate"}, "name": "audit-policy"},
]


def load(name: str) -> planner.Pod:
    return planner.parse_manifest((FIXTURES / name).read_text(), name)


def container(pod: planner.Pod) -> dict:
    return pod["spec"]["containers"][0]


@pytest.mark.parametrize("name", ["kubeadm-v1.31.yaml", "kubeadm-v1.24.yaml"])
def test_kubeadm_enable_places_flags_in_alphabetical_position(name: str) -> None:
    pod = load(name)
    new = planner.plan(pod, ON)
    command = container(new)["command"]
    original = container(pod)["command"]
    # kubeadm sorts flags: ours go right after --allow-privileged and before --authorization-mode.
    at = command.index("--allow-privileged=true") + 1
    assert command[at : at + 5] == DCE_FLAGS
    assert command[at + 5] == "--authorization-mode=Node,RBAC"
    assert [t for t in command if not t.startswith("--audit-")] == original
    assert container(new)["volumeMounts"][-2:] == OUR_MOUNTS
    assert new["spec"]["volumes"][-2:] == OUR_VOLUMES
    assert new["metadata"]["annotations"]["kube-audit.io/policy-hash"] == "abc123"


@pytest.mark.parametrize("name", ["kubeadm-v1.31.yaml", "kubeadm-v1.24.yaml", "split-args-unordered.yaml"])
def test_disable_after_enable_gives_back_the_original(name: str) -> None:
    pod = load(name)
    assert planner.plan(planner.plan(pod, ON), OFF) == pod


def test_flags_follow_args_when_command_is_only_the_binary() -> None:
    pod = load("split-args-unordered.yaml")
    new = planner.plan(pod, ON)
    assert container(new)["command"] == ["kube-apiserver"]
    args = container(new)["args"]
    # Unsorted list: inserted before the first flag that sorts after --audit- (here the very first),
    # and the two-token --etcd-servers pair stays together.
    assert args == [*DCE_FLAGS, "--secure-port=6443", "--etcd-servers", "https://127.0.0.1:2379",
                    "--advertise-address=10.0.0.5", "--tls-cert-file=/etc/kubernetes/pki/apiserver.crt"]
    assert "volumes" in new["spec"] and new["spec"]["volumes"] == OUR_VOLUMES
    assert list(new)[:2] == ["kind", "apiVersion"], "key order of the document is kept"


HAND_MADE_MOUNT = {"mountPath": "/etc/kubernetes/audit-policy/apiserver-audit-policy.yaml", "name": "audit-policy-file"}
HAND_MADE_VOLUME = {"hostPath": {"path": "/etc/kubernetes/audit-policy/apiserver-audit-policy.yaml", "type": "File"},
                    "name": "audit-policy-file"}
K8S_CERTS_MOUNT = {"mountPath": "/etc/kubernetes/pki", "name": "k8s-certs", "readOnly": True}
K8S_CERTS_VOLUME = {"hostPath": {"path": "/etc/kubernetes/pki", "type": "DirectoryOrCreate"}, "name": "k8s-certs"}


def test_stale_hand_made_audit_settings_are_replaced_not_duplicated() -> None:
    pod = load("stale-hand-made.yaml")
    new = planner.plan(pod, ON)
    command = container(new)["command"]
    assert command == ["kube-apiserver", "--advertise-address=10.6.0.12", *DCE_FLAGS,
                       "--etcd-servers=https://127.0.0.1:2379"]
    # Ours by name (audit-logs) is replaced; a mount of another name is someone else's, wherever it points.
    assert container(new)["volumeMounts"] == [K8S_CERTS_MOUNT, HAND_MADE_MOUNT, *OUR_MOUNTS]
    assert new["spec"]["volumes"] == [K8S_CERTS_VOLUME, HAND_MADE_VOLUME, *OUR_VOLUMES]


def test_disable_removes_every_audit_flag_and_only_our_mounts_and_volumes_of_a_hand_made_manifest() -> None:
    new = planner.plan(load("stale-hand-made.yaml"), OFF)
    assert container(new)["command"] == ["kube-apiserver", "--advertise-address=10.6.0.12",
                                         "--etcd-servers=https://127.0.0.1:2379"]
    assert container(new)["volumeMounts"] == [K8S_CERTS_MOUNT, HAND_MADE_MOUNT]
    assert new["spec"]["volumes"] == [K8S_CERTS_VOLUME, HAND_MADE_VOLUME]
    assert "annotations" not in new["metadata"]


def test_optional_log_settings_become_flags() -> None:
    state = AuditState(enabled=True, log_format="json", log_mode="batch", log_compress=True, max_age=7)
    flags = planner.audit_flags(planner.plan(load("kubeadm-v1.31.yaml"), state))
    assert flags == ["--audit-log-compress=true", "--audit-log-format=json", "--audit-log-maxage=7",
                     "--audit-log-maxbackup=1", "--audit-log-maxsize=100", "--audit-log-mode=batch",
                     "--audit-log-path=/var/log/audit/kube-apiserver-audit.log",
                     "--audit-policy-file=/etc/kubernetes/audit-policy/apiserver-audit-policy.yaml"]


def test_policy_only_change_changes_only_the_annotation() -> None:
    first = planner.plan(load("kubeadm-v1.31.yaml"), ON)
    second = planner.plan(first, AuditState(enabled=True, policy_hash="def456"))
    assert planner.summarize(first, second) == ["~ annotation kube-audit.io/policy-hash: abc123 -> def456"]


def test_plan_does_not_modify_its_input() -> None:
    pod = load("kubeadm-v1.31.yaml")
    before = copy.deepcopy(pod)
    planner.plan(pod, ON)
    assert pod == before


def test_render_is_kubeadm_style_and_round_trips() -> None:
    pod = load("kubeadm-v1.31.yaml")
    text = planner.render(planner.plan(pod, ON))
    assert "\n  - command:\n    - kube-apiserver\n" in text
    assert yaml.safe_load(text) == planner.plan(pod, ON)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("spec: [unclosed", "not valid YAML"),
        ("- a\n- b\n", "expected a Pod manifest"),
        ("apiVersion: apps/v1\nkind: Deployment\n", "expected apiVersion v1, kind Pod"),
        ("apiVersion: v1\nkind: Pod\nspec:\n  containers:\n  - name: etcd\n", "no container named 'kube-apiserver'"),
        ("apiVersion: v1\nkind: Pod\nspec: {}\n", "spec.containers is missing"),
    ],
)
def test_bad_manifests_are_refused_naming_the_file(text: str, message: str) -> None:
    with pytest.raises(planner.ManifestError, match=message) as info:
        planner.parse_manifest(text, "/etc/kubernetes/manifests/kube-apiserver.yaml")
    assert str(info.value).startswith("/etc/kubernetes/manifests/kube-apiserver.yaml")


def test_yaml_error_names_line_and_column() -> None:
    with pytest.raises(planner.ManifestError, match=r"^m.yaml:3:\d+: not valid YAML"):
        planner.parse_manifest("apiVersion: v1\nkind: Pod\nspec: {a: [}\n", "m.yaml")
