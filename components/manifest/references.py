"""Which static-pod manifests on this node point at a file: the guard before a policy file is removed.

An apiserver whose manifest names an audit policy that is not there exits at start and crash-loops, so
the policy file may only go when no manifest the kubelet reads (every non-dot file in the manifests
dir) refers to it. Removal is the dangerous direction: anything we cannot read counts as a reference
when its bytes mention the file's name. Stdlib and yaml only: this module travels in the node bundle.
"""

from __future__ import annotations

import os
import posixpath
from typing import Any

from components.manifest import yamlrt
from components.manifest.files import MAX_MANIFEST_BYTES

POLICY_FLAG = "--audit-policy-file"


def _flag_values(tokens: list[Any]) -> list[str]:
    """Values of --audit-policy-file, as `--flag=value` or as `--flag value`."""
    values = []
    for i, token in enumerate(tokens):
        if not isinstance(token, str):
            continue
        if token.startswith(POLICY_FLAG + "="):
            values.append(token.split("=", 1)[1])
        elif token == POLICY_FLAG and i + 1 < len(tokens) and isinstance(tokens[i + 1], str):
            values.append(tokens[i + 1])
    return values


def _on_host(container_path: str, container: dict[str, Any], volumes: dict[str, str]) -> str:
    """The host path behind a path inside the container, through the deepest hostPath mount covering it."""
    best: tuple[int, str] | None = None
    for mount in container.get("volumeMounts") or []:
        if not isinstance(mount, dict):
            continue
        inner, host = mount.get("mountPath"), volumes.get(str(mount.get("name")))
        if not isinstance(inner, str) or host is None:
            continue
        inner = inner.rstrip("/") or "/"
        if container_path == inner or container_path.startswith(inner.rstrip("/") + "/"):
            rest = container_path[len(inner):].lstrip("/")
            sub = mount.get("subPath")
            candidate = posixpath.join(host, sub, rest) if isinstance(sub, str) and sub else posixpath.join(host, rest)
            if best is None or len(inner) > best[0]:
                best = (len(inner), candidate)
    # No hostPath mount covers it: the process would look in its own filesystem, the same path.
    return posixpath.normpath(best[1] if best else container_path)


def pod_references(pod: Any, host_path: str) -> bool:
    """True when some container of this pod runs with --audit-policy-file naming `host_path` on the host."""
    if not isinstance(pod, dict) or not isinstance(pod.get("spec"), dict):
        return False
    spec = pod["spec"]
    volumes = {str(v.get("name")): str(v["hostPath"].get("path"))
               for v in spec.get("volumes") or []
               if isinstance(v, dict) and isinstance(v.get("hostPath"), dict) and v["hostPath"].get("path")}
    want = posixpath.normpath(host_path)
    for key in ("initContainers", "containers"):
        for container in spec.get(key) or []:
            if not isinstance(container, dict):
                continue
            tokens = [*(container.get("command") or []), *(container.get("args") or [])]
            if any(_on_host(value, container, volumes) == want for value in _flag_values(tokens)):
                return True
    return False


def referencing_manifests(host_path: str, manifest: str) -> list[str]:
    """Every file the kubelet reads beside `manifest` (and `manifest` itself) that refers to `host_path`."""
    directory = os.path.dirname(manifest) or "."
    found = []
    try:
        entries = sorted(os.listdir(directory))
    except FileNotFoundError:
        return []
    name = os.path.basename(host_path).encode()
    for entry in entries:
        path = os.path.join(directory, entry)
        if entry.startswith(".") or not os.path.isfile(path):
            continue
        try:
            with open(path, "rb") as handle:
                raw = handle.read(MAX_MANIFEST_BYTES)
        except OSError:
            continue  # unreadable to root: not read by the kubelet either
        try:
            pod = yamlrt.loose_load(raw.decode("utf-8"))
        except Exception:
            # Not parseable here, but a reader more lenient than ours might still run it.
            if name in raw:
                found.append(path)
            continue
        if pod_references(pod, host_path):
            found.append(path)
    return found
