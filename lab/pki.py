"""The lab's certificates, made with openssl as kubeadm lays them out (idempotent: existing files kept).

Shared (state/pki): the cluster CA, the front-proxy CA, the etcd CA, their client certificates,
the service-account key pair and the admin client certificate. Per host: the apiserver serving
certificate with the host's name and address in its SANs.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

DAYS = "3650"


def _run(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def _key(path: Path) -> None:
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        _run("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", str(path))
        path.chmod(0o600)


def ca(base: Path, cn: str) -> None:
    """base.key/base.crt: a self-signed CA."""
    key, crt = base.with_suffix(".key"), base.with_suffix(".crt")
    _key(key)
    if not crt.exists():
        _run("req", "-x509", "-new", "-key", str(key), "-subj", f"/CN={cn}", "-days", DAYS,
             "-sha256", "-out", str(crt),
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,digitalSignature,keyEncipherment,keyCertSign")


def leaf(base: Path, ca_base: Path, subject: str, *, server: bool = False, client: bool = False,
         sans: list[str] | None = None) -> None:
    """base.key/base.crt signed by ca_base; subject like "/O=system:masters/CN=kubernetes-admin"."""
    key, crt = base.with_suffix(".key"), base.with_suffix(".crt")
    _key(key)
    if crt.exists():
        return
    usages = [u for u, on in (("serverAuth", server), ("clientAuth", client)) if on]
    ext = ["basicConstraints=critical,CA:FALSE", "keyUsage=critical,digitalSignature,keyEncipherment",
           f"extendedKeyUsage={','.join(usages)}"]
    if sans:
        ext.append("subjectAltName=" + ",".join(sans))
    with tempfile.TemporaryDirectory() as tmp:
        csr, extfile = Path(tmp, "req.csr"), Path(tmp, "ext.cnf")
        extfile.write_text("\n".join(ext) + "\n")
        _run("req", "-new", "-key", str(key), "-subj", subject, "-out", str(csr))
        _run("x509", "-req", "-in", str(csr), "-CA", str(ca_base.with_suffix(".crt")),
             "-CAkey", str(ca_base.with_suffix(".key")), "-CAcreateserial", "-days", DAYS,
             "-sha256", "-extfile", str(extfile), "-out", str(crt))


def shared(pki: Path, etcd_ip: str) -> None:
    pki.mkdir(parents=True, exist_ok=True)
    ca(pki / "ca", "kubernetes")
    ca(pki / "front-proxy-ca", "front-proxy-ca")
    ca(pki / "etcd/ca", "etcd-ca")
    leaf(pki / "front-proxy-client", pki / "front-proxy-ca", "/CN=front-proxy-client", client=True)
    leaf(pki / "apiserver-etcd-client", pki / "etcd/ca", "/CN=kube-apiserver-etcd-client", client=True)
    leaf(pki / "apiserver-kubelet-client", pki / "ca",
         "/O=kubeadm:cluster-admins/CN=kube-apiserver-kubelet-client", client=True)
    leaf(pki / "etcd/server", pki / "etcd/ca", "/CN=lab-etcd", server=True, client=True,
         sans=[f"IP:{etcd_ip}", "IP:127.0.0.1", "DNS:localhost"])
    leaf(pki / "admin", pki / "ca", "/O=system:masters/CN=kubernetes-admin", client=True)
    leaf(pki / "controllers", pki / "ca", "/O=system:masters/CN=kalab-controllers", client=True)
    if not (pki / "sa.key").exists():
        _key(pki / "sa.key")
    if not (pki / "sa.pub").exists():
        _run("pkey", "-in", str(pki / "sa.key"), "-pubout", "-out", str(pki / "sa.pub"))


def apiserver(pki: Path, name: str, ip: str, out_dir: Path) -> None:
    """out_dir/apiserver.{key,crt} for one host."""
    sans = ["DNS:kubernetes", "DNS:kubernetes.default", "DNS:kubernetes.default.svc",
            "DNS:kubernetes.default.svc.cluster.local", f"DNS:{name}", "IP:10.96.0.1", f"IP:{ip}"]
    leaf(out_dir / "apiserver", pki / "ca", "/CN=kube-apiserver", server=True, sans=sans)


HOST_FILES = [
    "ca.crt", "ca.key", "front-proxy-ca.crt", "front-proxy-ca.key",
    "front-proxy-client.crt", "front-proxy-client.key",
    "apiserver-etcd-client.crt", "apiserver-etcd-client.key",
    "apiserver-kubelet-client.crt", "apiserver-kubelet-client.key",
    "sa.key", "sa.pub", "etcd/ca.crt",
]


def install_host(pki: Path, name: str, ip: str, host_pki: Path) -> None:
    """Lay out /etc/kubernetes/pki of one host like kubeadm's (external etcd)."""
    (host_pki / "etcd").mkdir(parents=True, exist_ok=True)
    for rel in HOST_FILES:
        dst = host_pki / rel
        if not dst.exists():
            shutil.copy2(pki / rel, dst)
    apiserver(pki, name, ip, host_pki)
