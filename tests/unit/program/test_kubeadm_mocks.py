"""kubeadm persistence under Pulumi mocks: a resource with a readable field diff, or a note saying why not."""

from __future__ import annotations

from typing import Any

import pulumi

from components.kubeadm.persistence import NOT_KUBEADM, KubeadmObservation
from components.remote.kubeapi import KubeAccess

from .test_program_mocks import build

KUBECONFIG = """apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:6443/", insecure-skip-tls-verify: true}}]
users: [{name: u, user: {token: t0ken}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
"""
TYPE = "pulumi-python:dynamic/kube-audit:KubeadmConfig"


class Observer:
    def __init__(self, obs: KubeadmObservation) -> None:
        self.obs = obs
        self.access: KubeAccess | None = None

    def __call__(self, access: KubeAccess) -> KubeadmObservation:
        self.access = access
        return self.obs


@pulumi.runtime.test
def test_kubeadm_cluster_gets_a_config_resource_after_the_last_master() -> Any:
    observer = Observer(KubeadmObservation(True, {"extraArgs": [], "extraVolumes": []}))
    _, rec, audit = build(kubeadm_observer=observer, kubernetes={"kubeconfig": KUBECONFIG})
    assert observer.access == KubeAccess(server="https://127.0.0.1:6443", token="t0ken", insecure=True)
    config = rec["audit-kubeadm-config"]
    assert config.typ == TYPE
    view = config.props["apiServerAudit"]
    assert "audit-policy-file=/etc/kubernetes/audit-policy/apiserver-audit-policy.yaml" in view["extraArgs"]
    assert [v["name"] for v in view["extraVolumes"]] == ["audit-logs", "audit-policy"]
    assert "kubeadm-config: apiServer.extraArgs lacks audit-log-maxage=30" in config.props["repair"]
    assert {r._name for r in config.depends_on} == {"audit-apiserver-master-3"}  # type: ignore[attr-defined]
    assert audit.kubeadm_note == "audit flags and mounts recorded in kube-system/kubeadm-config"

    def check_secret(secret: bool) -> None:
        assert secret, "the kubeconfig's credentials are a secret input"

    return pulumi.Output.from_input(config.props["access"].is_secret()).apply(check_secret)


@pulumi.runtime.test
def test_in_sync_config_has_no_drift_and_a_non_kubeadm_cluster_is_a_note() -> None:
    observer = Observer(KubeadmObservation(True, None))
    _, rec, _ = build(kubeadm_observer=observer, kubernetes={"kubeconfig": KUBECONFIG})
    desired = rec["audit-kubeadm-config"].props["apiServerAudit"]
    observer = Observer(KubeadmObservation(True, desired))
    _, rec, _ = build(kubeadm_observer=observer, kubernetes={"kubeconfig": KUBECONFIG})
    assert rec["audit-kubeadm-config"].props["drift"] == []
    _, rec, audit = build(kubeadm_observer=Observer(KubeadmObservation(False)), kubernetes={"kubeconfig": KUBECONFIG})
    assert not any(r.typ == TYPE for r in rec.values())
    assert audit.kubeadm_note == NOT_KUBEADM


@pulumi.runtime.test
def test_persist_off_leaves_kubeadm_config_alone() -> None:
    observer = Observer(KubeadmObservation(True, None))
    _, rec, audit = build({"kubeadm": {"persist": False}}, kubeadm_observer=observer,
                          kubernetes={"kubeconfig": KUBECONFIG})
    assert observer.access is None and not any(r.typ == TYPE for r in rec.values())
    assert audit.kubeadm_note.startswith("kubeadm.persist is off")
