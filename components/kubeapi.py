"""Read-only Kubernetes API access from a kubeconfig, for reading Helm's release records at preview.

Stdlib only (no kubernetes client package): server + CA, and client certificates, a bearer token or
basic auth from the kubeconfig the kubernetes provider uses. Exec/auth-provider plugins are refused
with a message, not half-supported.
"""

from __future__ import annotations

import base64
import json
import os
import ssl
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml


class KubeApiError(RuntimeError):
    """The cluster could not be read; the message names the kubeconfig and what failed."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def _named(items: Any, name: str, what: str, source: str) -> dict[str, Any]:
    for item in items or []:
        if item.get("name") == name:
            return dict(item.get(what) or {})
    raise KubeApiError(f"{source}: no {what} named {name!r}")


def _data(entry: dict[str, Any], key: str, base: Path) -> bytes | None:
    if entry.get(f"{key}-data"):
        return base64.b64decode(entry[f"{key}-data"])
    if entry.get(key):
        path = Path(entry[key])
        return (path if path.is_absolute() else base / path).read_bytes()
    return None


@dataclass(frozen=True)
class KubeApi:
    """GET against one cluster, authenticated as the kubeconfig's current (or named) context says."""

    server: str
    source: str
    context: ssl.SSLContext
    headers: dict[str, str]

    @classmethod
    def from_kubeconfig(cls, kubeconfig: str | None, context: str | None) -> KubeApi:
        """`kubeconfig`: `kubernetes:kubeconfig` (contents or a path), else $KUBECONFIG, else ~/.kube/config."""
        path: Path | None
        if kubeconfig and "\n" not in kubeconfig and Path(kubeconfig).expanduser().is_file():
            path = Path(kubeconfig).expanduser()
            text = path.read_text()
        elif kubeconfig:
            path, text = None, kubeconfig
        else:
            first = (os.environ.get("KUBECONFIG") or "").split(os.pathsep)[0]
            path = Path(first) if first else Path.home() / ".kube/config"
            if not path.is_file():
                raise KubeApiError(f"no kubeconfig: set kubernetes:kubeconfig (or $KUBECONFIG); {path} does not exist")
            text = path.read_text()
        source = str(path) if path else "kubernetes:kubeconfig"
        base = path.parent if path else Path.cwd()
        try:
            doc = yaml.safe_load(text) or {}
        except yaml.YAMLError as exc:
            raise KubeApiError(f"{source}: not YAML ({exc})") from None
        ctx_name = context or doc.get("current-context")
        if not ctx_name:
            raise KubeApiError(f"{source}: no current-context; set kubernetes:context")
        ctx = _named(doc.get("contexts"), ctx_name, "context", source)
        cluster = _named(doc.get("clusters"), ctx.get("cluster", ""), "cluster", source)
        user = _named(doc.get("users"), ctx.get("user", ""), "user", source) if ctx.get("user") else {}
        if user.get("exec") or user.get("auth-provider"):
            raise KubeApiError(f"{source}: user {ctx.get('user')!r} authenticates with an exec/auth-provider "
                               "plugin, which kube-audit cannot run to read the installed release; use a "
                               "kubeconfig with a client certificate or token")
        ssl_ctx = ssl.create_default_context()
        if cluster.get("insecure-skip-tls-verify"):
            ssl_ctx.check_hostname = False
            ssl_ctx.verify_mode = ssl.CERT_NONE
        else:
            ca = _data(cluster, "certificate-authority", base)
            if ca:
                ssl_ctx.load_verify_locations(cadata=ca.decode())
        cert, key = _data(user, "client-certificate", base), _data(user, "client-key", base)
        if cert and key:
            # load_cert_chain takes only paths: a 0600 file that lives for this one call.
            with tempfile.NamedTemporaryFile("wb", suffix=".pem") as fh:
                fh.write(cert + b"\n" + key)
                fh.flush()
                ssl_ctx.load_cert_chain(fh.name)
        headers = {"Accept": "application/json"}
        token = user.get("token") or (Path(user["tokenFile"]).read_text().strip() if user.get("tokenFile") else None)
        if token:
            headers["Authorization"] = f"Bearer {token}"
        elif user.get("username"):
            basic = base64.b64encode(f"{user['username']}:{user.get('password', '')}".encode()).decode()
            headers["Authorization"] = f"Basic {basic}"
        server = str(cluster.get("server", "")).rstrip("/")
        if not server:
            raise KubeApiError(f"{source}: cluster {ctx.get('cluster')!r} has no server")
        return cls(server, f"{source} (context {ctx_name})", ssl_ctx, headers)

    def get(self, path: str, query: dict[str, str] | None = None, timeout: float = 15.0) -> Any:
        url = self.server + path + (("?" + urllib.parse.urlencode(query)) if query else "")
        req = urllib.request.Request(url, headers=self.headers, method="GET")
        try:
            with urllib.request.urlopen(req, context=self.context, timeout=timeout) as resp:
                return json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            body = exc.read().decode(errors="replace")[:300]
            raise KubeApiError(f"GET {url}: {exc.code} {body}", exc.code) from None
        except (urllib.error.URLError, OSError) as exc:
            raise KubeApiError(f"GET {url} via {self.source}: {exc}") from None
