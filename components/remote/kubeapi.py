"""Kubernetes API access from a kubeconfig: Helm's release records and kube-system/kubeadm-config.

Stdlib only (no kubernetes client package): server + CA, and client certificates, a bearer token
(inline or `tokenFile`) or basic auth from the kubeconfig the kubernetes provider uses.
Exec/auth-provider plugins are refused with a message, not half-supported.

Why not the kubernetes provider: Helm's records must be read before any resource is declared (the
revision is unknown until listed), and kubeadm-config's ClusterConfiguration must be edited with its
comments kept, with a PUT on the read resourceVersion (a patch resource would, on delete, give up the
whole `data.ClusterConfiguration` field).
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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml


class KubeApiError(RuntimeError):
    """The cluster could not be used; the message names the kubeconfig or request and what failed.

    `status` is the HTTP status, 0 when no HTTP answer came (bad kubeconfig, server not reached).
    """

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class KubeAccess:
    """The parts of one kubeconfig context we use, as plain strings (so it can be a secret resource input)."""

    server: str
    ca_pem: str | None = None
    cert_pem: str | None = None
    key_pem: str | None = None
    token: str | None = None
    insecure: bool = False
    username: str | None = None
    password: str | None = None
    source: str = field(default="kubernetes:kubeconfig", compare=False)
    """Where it came from, for error messages only."""

    def to_props(self) -> dict[str, Any]:
        props: dict[str, Any] = {"server": self.server, "caPem": self.ca_pem, "certPem": self.cert_pem,
                                 "keyPem": self.key_pem, "token": self.token, "insecure": self.insecure}
        # Only when used: a stored input that gains keys would show as a change on every existing stack.
        if self.username is not None:
            props.update(username=self.username, password=self.password)
        return props

    @classmethod
    def from_props(cls, p: dict[str, Any]) -> KubeAccess:
        return cls(server=p["server"], ca_pem=p.get("caPem"), cert_pem=p.get("certPem"), key_pem=p.get("keyPem"),
                   token=p.get("token"), insecure=bool(p.get("insecure")), username=p.get("username"),
                   password=p.get("password"))


def _named(items: Any, name: str, what: str, source: str) -> dict[str, Any]:
    for item in items or []:
        if isinstance(item, dict) and item.get("name") == name:
            return dict(item.get(what) or {})
    raise KubeApiError(f"{source}: no {what} named {name!r}")


def _text(entry: dict[str, Any], key: str, base: Path, source: str) -> str | None:
    """`<key>-data` (base64) or the file `<key>` names, relative to the kubeconfig's directory."""
    try:
        if entry.get(f"{key}-data"):
            return base64.b64decode(entry[f"{key}-data"]).decode()
        if entry.get(key):
            path = Path(entry[key])
            return (path if path.is_absolute() else base / path).read_text()
    except (OSError, ValueError) as exc:
        raise KubeApiError(f"{source}: cannot read {key}: {exc}") from None
    return None


def _kubeconfig_text(value: str | None) -> tuple[str, Path | None]:
    """(text, file it came from): `value` is a path or the kubeconfig itself; None: $KUBECONFIG, ~/.kube/config."""
    if value and ("\n" in value or value.lstrip().startswith("{")):
        return value, None
    if value:
        path = Path(value).expanduser()
    else:
        first = (os.environ.get("KUBECONFIG") or "").split(os.pathsep)[0]
        path = Path(first).expanduser() if first else Path.home() / ".kube/config"
    if not path.is_file():
        raise KubeApiError(f"no kubeconfig at {path}: set kubernetes:kubeconfig (or $KUBECONFIG)")
    return path.read_text(), path


def load_kubeconfig(value: str | None, context: str | None) -> KubeAccess:
    """`value`: `kubernetes:kubeconfig` (contents or a path), as the kubernetes provider takes it."""
    text, path = _kubeconfig_text(value)
    source = str(path) if path else "kubernetes:kubeconfig"
    base = path.parent if path else Path.cwd()
    try:
        doc = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise KubeApiError(f"{source}: not YAML ({exc})") from None
    if not isinstance(doc, dict):
        raise KubeApiError(f"{source}: not a YAML mapping")
    ctx_name = context or doc.get("current-context")
    if not ctx_name:
        raise KubeApiError(f"{source}: no current-context; set kubernetes:context")
    ctx = _named(doc.get("contexts"), ctx_name, "context", source)
    cluster = _named(doc.get("clusters"), ctx.get("cluster", ""), "cluster", source)
    user = _named(doc.get("users"), ctx.get("user", ""), "user", source) if ctx.get("user") else {}
    if user.get("exec") or user.get("auth-provider"):
        raise KubeApiError(f"{source}: user {ctx.get('user')!r} authenticates with an exec/auth-provider "
                           "plugin, which kube-audit cannot run; use a kubeconfig with a client certificate or token")
    server = str(cluster.get("server") or "").rstrip("/")
    if not server:
        raise KubeApiError(f"{source}: cluster {ctx.get('cluster')!r} has no server")
    token = user.get("token")
    if not token and user.get("tokenFile"):
        path = Path(user["tokenFile"])
        try:
            token = (path if path.is_absolute() else base / path).read_text().strip()
        except OSError as exc:
            raise KubeApiError(f"{source}: cannot read tokenFile: {exc}") from None
    return KubeAccess(server=server, ca_pem=_text(cluster, "certificate-authority", base, source),
                      cert_pem=_text(user, "client-certificate", base, source),
                      key_pem=_text(user, "client-key", base, source), token=token or None,
                      insecure=bool(cluster.get("insecure-skip-tls-verify")),
                      username=user.get("username"), password=user.get("password") if user.get("username") else None,
                      source=f"{source} (context {ctx_name})")


class KubeApi:
    """JSON GET/PUT against one apiserver, authenticated as a KubeAccess says."""

    def __init__(self, access: KubeAccess, timeout: float = 15.0) -> None:
        self.access = access
        self.timeout = timeout
        self.context = ssl.create_default_context()
        if access.insecure:
            self.context.check_hostname = False
            self.context.verify_mode = ssl.CERT_NONE
        elif access.ca_pem:
            self.context.load_verify_locations(cadata=access.ca_pem)
        if access.cert_pem and access.key_pem:
            # load_cert_chain takes only paths: a 0600 file (mkstemp) that lives for this one call.
            with tempfile.NamedTemporaryFile("w", suffix=".pem") as fh:
                fh.write(access.cert_pem + "\n" + access.key_pem)
                fh.flush()
                self.context.load_cert_chain(fh.name)
        self.headers = {"Accept": "application/json"}
        if access.token:
            self.headers["Authorization"] = f"Bearer {access.token}"
        elif access.username:
            basic = base64.b64encode(f"{access.username}:{access.password or ''}".encode()).decode()
            self.headers["Authorization"] = f"Basic {basic}"

    @classmethod
    def from_kubeconfig(cls, kubeconfig: str | None, context: str | None, timeout: float = 15.0) -> KubeApi:
        return cls(load_kubeconfig(kubeconfig, context), timeout)

    @property
    def server(self) -> str:
        return self.access.server

    def request(self, method: str, path: str, body: dict[str, Any] | None = None,
                query: dict[str, str] | None = None) -> Any:
        url = self.server + path + (("?" + urllib.parse.urlencode(query)) if query else "")
        data = json.dumps(body).encode() if body is not None else None
        headers = dict(self.headers, **({"Content-Type": "application/json"} if data is not None else {}))
        req = urllib.request.Request(url, data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(req, context=self.context, timeout=self.timeout) as resp:
                return json.loads(resp.read() or b"{}")
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")[:500]
            raise KubeApiError(f"{method} {url}: HTTP {exc.code}: {detail}", exc.code) from None
        except (urllib.error.URLError, OSError) as exc:
            raise KubeApiError(f"{method} {url}: cannot reach {self.server} ({self.access.source}): {exc}") from None

    def get(self, path: str, query: dict[str, str] | None = None) -> Any:
        return self.request("GET", path, query=query)

    def get_or_none(self, path: str) -> dict[str, Any] | None:
        """The object, or None when it does not exist (404)."""
        try:
            return dict(self.get(path))
        except KubeApiError as exc:
            if exc.status == 404:
                return None
            raise

    def put(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        return dict(self.request("PUT", path, body))
