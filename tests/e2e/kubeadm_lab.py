"""kubeadm in the lab: a realistic kube-system/kubeadm-config, and a master's manifest regenerated from it.

Regeneration is what `kubeadm upgrade` does to the apiserver manifest: the real kubeadm (built from the
same k8s.io/kubernetes pin as kube-apiserver) runs `init phase control-plane apiserver --config FILE`
inside the master's mount namespace, so it writes that master's /etc/kubernetes/manifests.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml

from lab import lab as labmod
from lab.config import Host, find_binary
from lab.kube import ApiError

from .harness import E2E

CM_PATH = "/api/v1/namespaces/kube-system/configmaps/kubeadm-config"
VERSION = "v1.37.2"


def cluster_configuration(e2e: E2E, api_version: str) -> str:
    """What `kubeadm init` uploads for this lab (external etcd, the lab's service range), with a comment."""
    gw = e2e.lab.gateway
    doc = {
        "apiServer": {} if api_version.endswith("v1beta4") else {"timeoutForControlPlane": "4m0s"},
        "apiVersion": api_version,
        "certificatesDir": "/etc/kubernetes/pki",
        "clusterName": "kubernetes",
        "controllerManager": {},
        "dns": {},
        "etcd": {"external": {"endpoints": [f"https://{gw}:2379"], "caFile": "/etc/kubernetes/pki/etcd/ca.crt",
                              "certFile": "/etc/kubernetes/pki/apiserver-etcd-client.crt",
                              "keyFile": "/etc/kubernetes/pki/apiserver-etcd-client.key"}},
        "imageRepository": "registry.k8s.io",
        "kind": "ClusterConfiguration",
        "kubernetesVersion": VERSION,
        "networking": {"dnsDomain": "cluster.local", "serviceSubnet": "10.96.0.0/12"},
        "scheduler": {},
    }
    return "# uploaded by kubeadm init (kube-audit e2e)\n" + yaml.safe_dump(doc, sort_keys=True)


def store(e2e: E2E, text: str) -> None:
    """Create or replace kube-system/kubeadm-config with this ClusterConfiguration."""
    body = {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "kubeadm-config", "namespace": "kube-system"},
            "data": {"ClusterConfiguration": text}}
    c = e2e.client()
    try:
        current = c.get(CM_PATH)
        body["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]  # type: ignore[index]
        c.put(CM_PATH, body)
    except ApiError as exc:
        if exc.status != 404:
            raise
        c.post("/api/v1/namespaces/kube-system/configmaps", body)


def stored(e2e: E2E) -> str | None:
    try:
        return e2e.client().get(CM_PATH)["data"]["ClusterConfiguration"]  # type: ignore[index]
    except ApiError as exc:
        if exc.status == 404:
            return None
        raise


def remove(e2e: E2E) -> None:
    try:
        e2e.client().delete(CM_PATH)
    except ApiError as exc:
        if exc.status != 404:
            raise


def as_v1beta4(cluster_config: str) -> str:
    """A v1beta3 ClusterConfiguration as kubeadm's own conversion gives it in v1beta4.

    extraArgs maps become `{name, value}` lists sorted by name, and the control-plane timeout, which
    v1beta4 moved to InitConfiguration.timeouts, is dropped (regeneration does not use it).
    """
    doc = yaml.safe_load(cluster_config)
    assert doc["apiVersion"] == "kubeadm.k8s.io/v1beta3", doc["apiVersion"]
    doc["apiVersion"] = "kubeadm.k8s.io/v1beta4"
    for part in ("apiServer", "controllerManager", "scheduler"):
        component = doc.get(part) or {}
        component.pop("timeoutForControlPlane", None)
        if isinstance(component.get("extraArgs"), dict):
            component["extraArgs"] = [{"name": k, "value": v} for k, v in sorted(component["extraArgs"].items())]
    return yaml.safe_dump(doc, sort_keys=True)


def regenerate(e2e: E2E, h: Host, cluster_config: str) -> subprocess.CompletedProcess[str]:
    """`kubeadm init phase control-plane apiserver --config` on host `h`, from the stored configuration."""
    kubeadm = find_binary("kubeadm")
    assert kubeadm is not None
    init = yaml.safe_dump({
        "apiVersion": yaml.safe_load(cluster_config)["apiVersion"], "kind": "InitConfiguration",
        "localAPIEndpoint": {"advertiseAddress": h.ip, "bindPort": 6443},
        "nodeRegistration": {"name": h.name, "criSocket": "unix:///var/run/containerd/containerd.sock"},
    })
    config = h.tmp / "kubeadm-regenerate.yaml"  # the host's /tmp
    config.write_text(init + "---\n" + cluster_config)
    pid = labmod.supervisor_pid(h)
    assert pid, f"{h.name} is not running"
    return subprocess.run(["nsenter", "-t", str(pid), "-m", "-u", "-n", "--", str(kubeadm), "init", "phase",
                           "control-plane", "apiserver", "--config", "/tmp/kubeadm-regenerate.yaml"],
                          capture_output=True, text=True, timeout=120, check=False)


def have_kubeadm() -> Path | None:
    return find_binary("kubeadm")


POLICY_IN_HOST = "audit-policy/apiserver-audit-policy.yaml"  # under the host's /etc/kubernetes


def snapshot_manifests(e2e: E2E) -> dict[str, dict[str, bytes | None]]:
    """Each master's manifest and the policy file it may name (None when there is none)."""
    out: dict[str, dict[str, bytes | None]] = {}
    for h in e2e.hosts:
        policy = h.etc_kubernetes / POLICY_IN_HOST
        out[h.name] = {"manifest": h.manifest.read_bytes(), "policy": policy.read_bytes() if policy.exists() else None}
    return out


def restore_manifests(e2e: E2E, snapshot: dict[str, dict[str, bytes | None]], timeout: float = 180) -> None:
    """Put back any master's manifest that differs from `snapshot` and wait until it runs again.

    The policy file goes back first: a module's destroy removes it, and a manifest put back naming a
    policy that is not there crash-loops that apiserver (last session's lost lab-master-1).
    """
    import os
    import time

    for h in e2e.hosts:
        policy, found = h.etc_kubernetes / POLICY_IN_HOST, snapshot[h.name]
        if found["policy"] is not None and (not policy.exists() or policy.read_bytes() != found["policy"]):
            policy.parent.mkdir(parents=True, exist_ok=True)
            tmp = policy.with_name("." + policy.name + ".restore")
            tmp.write_bytes(found["policy"])
            os.chmod(tmp, 0o600)
            tmp.replace(policy)
        manifest = found["manifest"]
        assert manifest is not None
        if h.manifest.read_bytes() == manifest:
            continue
        starts = e2e.status(h)["starts"]
        tmp = h.manifest.with_name(".kube-apiserver.yaml.restore")
        tmp.write_bytes(manifest)
        os.chmod(tmp, 0o600)
        tmp.replace(h.manifest)
        deadline = time.monotonic() + timeout
        while not (e2e.status(h)["starts"] > starts and e2e.client(h).ready()):
            assert time.monotonic() < deadline, f"{h.name} did not come back after the restore: {e2e.status(h)}"
            time.sleep(0.5)
