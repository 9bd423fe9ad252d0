"""Where and how a master's kube-apiserver is probed for readiness: the URL the kubelet itself would use.

Apart from node.py so the preflight (which node.py runs) can name the URL without importing node.py.
"""

from __future__ import annotations

import http.client
import ssl
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from components.manifest import flags, planner


def readiness_url(pod: planner.Pod, override: str | None) -> str:
    """Where the kubelet itself would probe: the container's readinessProbe, else --secure-port."""
    if override:
        return override
    container = planner.apiserver_container(pod)
    probe = (container.get("readinessProbe") or {}).get("httpGet") or {}
    port: Any = probe.get("port")
    if not isinstance(port, int):
        named = {p.get("name"): p.get("containerPort") for p in container.get("ports") or [] if isinstance(p, dict)}
        port = named.get(port)
    if not isinstance(port, int):
        # As kube-apiserver reads it: `--secure_port 6444` counts, and the last one wins.
        secure = flags.parse_container(container).value("--secure-port")
        port = int(secure) if secure is not None else 6443
    host = probe.get("host") or "127.0.0.1"
    scheme = str(probe.get("scheme") or "HTTPS").lower()
    path = probe.get("path") or "/readyz"
    host = f"[{host}]" if ":" in host else host
    return f"{scheme}://{host}:{port}{path}"


def url_port(url: str) -> int:
    parts = urllib.parse.urlsplit(url)
    return parts.port or (443 if parts.scheme == "https" else 80)


def http_ready(url: str) -> bool:
    # Unverified TLS is deliberate: we only read /readyz's status code, send no credentials, and
    # the serving certificate may not be signed by any CA this node trusts.
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        with urllib.request.urlopen(url, timeout=2, context=context) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError, ValueError, http.client.HTTPException):
        # Whatever answers on that port, anything but a clean 200 is "not ready" (an odd status line
        # from a half-started server raises HTTPException, which is not an OSError).
        return False
