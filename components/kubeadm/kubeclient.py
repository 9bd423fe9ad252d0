"""Just enough Kubernetes client for one ConfigMap: GET and PUT with optimistic concurrency.

Why not the kubernetes provider: its patch resources apply server-side and, on delete, give up the
field (`data.ClusterConfiguration`), which would delete kubeadm's whole configuration; and a read of
a ConfigMap that may not exist fails the program. This client reads the same kubeconfig (path or
content, optional context) with client certificates or a bearer token; exec plugins are not supported.
"""

from __future__ import annotations

import base64
import json
import os
import ssl
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml


class KubeError(RuntimeError):
    """A request failed; `status` is the HTTP status (0 when the server was not reached)."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class KubeAccess:
    """The parts of one kubeconfig context we use (all plain strings, so it can be a resource input)."""

    server: str
    ca_pem: str | None = None
    cert_pem: str | None = None
    key_pem: str | None = None
    token: str | None = None
    insecure: bool = False

    def to_props(self) -> dict[str, Any]:
        return {"server": self.server, "caPem": self.ca_pem, "certPem": self.cert_pem, "keyPem": self.key_pem,
                "token": self.token, "insecure": self.insecure}

    @classmethod
    def from_props(cls, p: dict[str, Any]) -> KubeAccess:
        return cls(server=p["server"], ca_pem=p.get("caPem"), cert_pem=p.get("certPem"), key_pem=p.get("keyPem"),
                   token=p.get("token"), insecure=bool(p.get("insecure")))


def _data_or_file(entry: dict[str, Any], key: str, base: Path) -> str | None:
    if entry.get(f"{key}-data"):
        return base64.b64decode(entry[f"{key}-data"]).decode()
    if entry.get(key):
        path = Path(entry[key])
        return (path if path.is_absolute() else base / path).read_text()
    return None


def load_kubeconfig(value: str | None, context: str | None) -> KubeAccess:
    """`value` is a path or the kubeconfig text (as the kubernetes provider takes it); None: $KUBECONFIG."""
    value = value or os.environ.get("KUBECONFIG") or str(Path.home() / ".kube/config")
    base = Path.cwd()
    if "\n" not in value and Path(value).expanduser().is_file():
        path = Path(value).expanduser()
        base, value = path.parent, path.read_text()
    elif "\n" not in value:
        raise KubeError(f"no kubeconfig at {value} (set kubernetes:kubeconfig)")
    try:
        doc = yaml.safe_load(value) or {}
    except yaml.YAMLError as exc:
        raise KubeError(f"the kubeconfig is not valid YAML: {exc}") from None
    if not isinstance(doc, dict):
        raise KubeError("the kubeconfig is not a YAML mapping")
    name = context or doc.get("current-context")
    ctx = next((c["context"] for c in doc.get("contexts") or [] if c.get("name") == name), None)
    if ctx is None:
        raise KubeError(f"kubeconfig has no context {name!r}")
    cluster = next((c["cluster"] for c in doc.get("clusters") or [] if c.get("name") == ctx.get("cluster")), None)
    user: dict[str, Any] = next((u["user"] for u in doc.get("users") or [] if u.get("name") == ctx.get("user")),
                                {}) or {}
    if cluster is None:
        raise KubeError(f"kubeconfig context {name!r} names no known cluster")
    if user.get("exec") or user.get("auth-provider"):
        raise KubeError("kubeconfig users with exec or auth-provider plugins are not supported here")
    return KubeAccess(server=cluster["server"].rstrip("/"),
                      ca_pem=_data_or_file(cluster, "certificate-authority", base),
                      cert_pem=_data_or_file(user, "client-certificate", base),
                      key_pem=_data_or_file(user, "client-key", base), token=user.get("token"),
                      insecure=bool(cluster.get("insecure-skip-tls-verify")))


class Client:
    """GET/PUT JSON against one apiserver."""

    def __init__(self, access: KubeAccess, timeout: float = 15) -> None:
        self.access = access
        self.timeout = timeout
        self._context = ssl.create_default_context()
        if access.insecure:
            self._context.check_hostname = False
            self._context.verify_mode = ssl.CERT_NONE
        elif access.ca_pem:
            self._context.load_verify_locations(cadata=access.ca_pem)
        if access.cert_pem and access.key_pem:
            # ssl only loads a key pair from files: private (0600) temporaries, removed at once.
            with tempfile.TemporaryDirectory() as d:
                cert, key = Path(d) / "c.pem", Path(d) / "k.pem"
                for path, text in ((cert, access.cert_pem), (key, access.key_pem)):
                    path.touch(mode=0o600)
                    path.write_text(text)
                self._context.load_cert_chain(str(cert), str(key))

    def request(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.access.server + path, data=data, method=method)
        req.add_header("Accept", "application/json")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        if self.access.token:
            req.add_header("Authorization", f"Bearer {self.access.token}")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout, context=self._context) as resp:
                return dict(json.loads(resp.read() or b"{}"))
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")[:500]
            raise KubeError(f"{method} {path}: HTTP {exc.code}: {detail}", exc.code) from None
        except (urllib.error.URLError, OSError) as exc:
            raise KubeError(f"{method} {path}: cannot reach {self.access.server}: {exc}") from None

    def get(self, path: str) -> dict[str, Any] | None:
        """The object, or None when it does not exist (404)."""
        try:
            return self.request("GET", path)
        except KubeError as exc:
            if exc.status == 404:
                return None
            raise

    def put(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        return self.request("PUT", path, body)
