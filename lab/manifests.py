"""Text the lab writes: kubeadm-shaped kube-apiserver manifests, kubeconfigs, sshd configs."""

from __future__ import annotations

import base64
from pathlib import Path

import yaml


def _probe(ip: str, path: str, **extra: int) -> dict:
    return {"httpGet": {"host": ip, "path": path, "port": 6443, "scheme": "HTTPS"}, **extra}


def _host_volume(name: str, path: str, mount: str | None = None) -> tuple[dict, dict]:
    return (
        {"mountPath": mount or path, "name": name, "readOnly": True},
        {"hostPath": {"path": path, "type": "DirectoryOrCreate"}, "name": name},
    )


def apiserver_pod(ip: str, etcd_url: str, version: str) -> dict:
    """What `kubeadm init phase control-plane apiserver` writes (v1beta4 defaults, external etcd)."""
    flags = [
        f"--advertise-address={ip}",
        "--allow-privileged=true",
        "--authorization-mode=Node,RBAC",
        "--client-ca-file=/etc/kubernetes/pki/ca.crt",
        "--enable-admission-plugins=NodeRestriction",
        "--enable-bootstrap-token-auth=true",
        "--etcd-cafile=/etc/kubernetes/pki/etcd/ca.crt",
        "--etcd-certfile=/etc/kubernetes/pki/apiserver-etcd-client.crt",
        "--etcd-keyfile=/etc/kubernetes/pki/apiserver-etcd-client.key",
        f"--etcd-servers={etcd_url}",
        "--kubelet-client-certificate=/etc/kubernetes/pki/apiserver-kubelet-client.crt",
        "--kubelet-client-key=/etc/kubernetes/pki/apiserver-kubelet-client.key",
        "--kubelet-preferred-address-types=InternalIP,ExternalIP,Hostname",
        "--proxy-client-cert-file=/etc/kubernetes/pki/front-proxy-client.crt",
        "--proxy-client-key-file=/etc/kubernetes/pki/front-proxy-client.key",
        "--requestheader-allowed-names=front-proxy-client",
        "--requestheader-client-ca-file=/etc/kubernetes/pki/front-proxy-ca.crt",
        "--requestheader-extra-headers-prefix=X-Remote-Extra-",
        "--requestheader-group-headers=X-Remote-Group",
        "--requestheader-username-headers=X-Remote-User",
        "--secure-port=6443",
        "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
        "--service-account-key-file=/etc/kubernetes/pki/sa.pub",
        "--service-account-signing-key-file=/etc/kubernetes/pki/sa.key",
        "--service-cluster-ip-range=10.96.0.0/12",
        "--tls-cert-file=/etc/kubernetes/pki/apiserver.crt",
        "--tls-private-key-file=/etc/kubernetes/pki/apiserver.key",
    ]
    pairs = [
        _host_volume("ca-certs", "/etc/ssl/certs"),
        _host_volume("etc-ca-certificates", "/etc/ca-certificates"),
        _host_volume("k8s-certs", "/etc/kubernetes/pki"),
        _host_volume("usr-local-share-ca-certificates", "/usr/local/share/ca-certificates"),
        _host_volume("usr-share-ca-certificates", "/usr/share/ca-certificates"),
    ]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "annotations": {"kubeadm.kubernetes.io/kube-apiserver.advertise-address.endpoint": f"{ip}:6443"},
            "labels": {"component": "kube-apiserver", "tier": "control-plane"},
            "name": "kube-apiserver",
            "namespace": "kube-system",
        },
        "spec": {
            "containers": [
                {
                    "command": ["kube-apiserver", *flags],
                    "image": f"registry.k8s.io/kube-apiserver:{version}",
                    "imagePullPolicy": "IfNotPresent",
                    "livenessProbe": _probe(ip, "/livez", failureThreshold=8, initialDelaySeconds=10,
                                            periodSeconds=10, timeoutSeconds=15),
                    "name": "kube-apiserver",
                    "readinessProbe": _probe(ip, "/readyz", failureThreshold=3, periodSeconds=1,
                                             timeoutSeconds=15),
                    "resources": {"requests": {"cpu": "250m"}},
                    "startupProbe": _probe(ip, "/livez", failureThreshold=24, initialDelaySeconds=10,
                                           periodSeconds=10, timeoutSeconds=15),
                    "volumeMounts": [m for m, _ in pairs],
                }
            ],
            "hostNetwork": True,
            "priority": 2000001000,
            "priorityClassName": "system-node-critical",
            "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
            "volumes": [v for _, v in pairs],
        },
        "status": {},
    }


def apiserver_yaml(ip: str, etcd_url: str, version: str) -> str:
    # kubeadm marshals through JSON, so keys come out sorted and lists are not indented.
    pod = apiserver_pod(ip, etcd_url, version)
    pod["metadata"]["creationTimestamp"] = None
    return yaml.safe_dump(pod, sort_keys=True, default_flow_style=False)


def kubeconfig(server: str, ca: Path, cert: Path, key: Path, cluster: str = "kubernetes") -> str:
    def b64(p: Path) -> str:
        return base64.b64encode(p.read_bytes()).decode()

    user = "kubernetes-admin"
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": cluster, "cluster": {"server": server, "certificate-authority-data": b64(ca)}}],
        "users": [{"name": user, "user": {"client-certificate-data": b64(cert), "client-key-data": b64(key)}}],
        "contexts": [{"name": f"{user}@{cluster}", "context": {"cluster": cluster, "user": user}}],
        "current-context": f"{user}@{cluster}",
        "preferences": {},
    }
    return yaml.safe_dump(doc, sort_keys=False)


def sshd_config(ip: str, host_key: Path, authorized_keys: Path, pid_file: Path) -> str:
    return f"""# kube-audit lab host sshd (generated)
ListenAddress {ip}
Port 22
HostKey {host_key}
PidFile {pid_file}
AuthorizedKeysFile {authorized_keys}
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
# The state dir may live under a group-writable path such as /tmp.
StrictModes no
PrintMotd no
UseDNS no
MaxStartups 100:30:200
MaxSessions 64
LogLevel INFO
Subsystem sftp internal-sftp
"""
