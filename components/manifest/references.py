"""Which static-pod manifests on this node point at a file: the guard before a policy file is removed.

An apiserver whose manifest names an audit policy that is not there exits at start and crash-loops, so
the policy file may only go when no manifest the kubelet reads (every non-dot file in the manifests
dir) refers to it. Each file is read as the kubelet reads it: bytes decoded as its YAML reader does
(a UTF-16 byte-order mark means UTF-16), duplicate keys resolved as it does (the last one), flags as
kube-apiserver reads them (`--audit_policy_file` is `--audit-policy-file`; flags.py), and the host
file behind a hostPath mount compared by real path (a symlinked directory reaches the same file).
Removal is the dangerous direction, so doubt keeps the file: every occurrence of the flag counts, not
only the one in force, and a file we cannot read the way the kubelet would keeps it, naming why.
Stdlib and yaml only: this module travels in the node bundle.
"""

from __future__ import annotations

import dataclasses
import os
import posixpath
from collections.abc import Callable
from typing import Any

from components.manifest import flags, yamlrt
from components.manifest.files import MAX_MANIFEST_BYTES

POLICY_FLAG = "--audit-policy-file"
_UTF16_BOMS = ((b"\xff\xfe", "utf-16-le"), (b"\xfe\xff", "utf-16-be"))
_UTF8_BOM = b"\xef\xbb\xbf"


def kubelet_text(raw: bytes) -> str:
    """The text the kubelet's YAML reader (go-yaml v2, readerc.go) finds in these bytes.

    A UTF-16 byte-order mark (either order) means UTF-16; anything else is UTF-8, with or without
    its BOM. Raises UnicodeDecodeError where that reader fails too (bad UTF-8, a lone surrogate).
    """
    for bom, codec in _UTF16_BOMS:
        if raw.startswith(bom):
            return raw[len(bom):].decode(codec)
    return raw[len(_UTF8_BOM):].decode("utf-8") if raw.startswith(_UTF8_BOM) else raw.decode("utf-8")


def _policy_values(container: dict[str, Any]) -> list[str]:
    """Every --audit-policy-file value, in any spelling: not only the one in force (doubt keeps)."""
    return [f.value for f in flags.parse_container(container).flags if f.name == POLICY_FLAG and f.value]


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


def pod_references(pod: Any, host_path: str, resolve: Callable[[str], str] = os.path.realpath) -> bool:
    """True when some container of this pod runs with --audit-policy-file naming `host_path` on the host.

    Paths are compared as written and as `resolve` (the real path on this node) gives them: the
    kubelet's bind mount follows a symlink in a hostPath, so `/etc/policy-link/p.yaml` is the file
    `/etc/kubernetes/audit-policy/p.yaml` when the link points there.
    """
    if not isinstance(pod, dict) or not isinstance(pod.get("spec"), dict):
        return False
    spec = pod["spec"]
    volumes = {str(v.get("name")): str(v["hostPath"].get("path"))
               for v in spec.get("volumes") or []
               if isinstance(v, dict) and isinstance(v.get("hostPath"), dict) and v["hostPath"].get("path")}
    want = posixpath.normpath(host_path)
    real = resolve(want)
    for key in ("initContainers", "containers"):
        for container in spec.get(key) or []:
            if not isinstance(container, dict):
                continue
            for value in _policy_values(container):
                # A relative path is the process's: from the container's workingDir (the image's is /).
                inner = posixpath.join(str(container.get("workingDir") or "/"), value)
                found = _on_host(posixpath.normpath(inner), container, volumes)
                if found == want or resolve(found) == real:
                    return True
    return False


@dataclasses.dataclass(frozen=True)
class References:
    users: list[str]
    """Files that name the policy file."""
    unreadable: list[tuple[str, str]]
    """(file, why) for files we cannot read as the kubelet would; each keeps the policy file too."""


def _read_pod(raw: bytes, names: set[str]) -> tuple[Any, str | None]:
    """(the pod as the kubelet reads it, None) or (None, why it keeps the file) or (None, None)."""
    try:
        text = kubelet_text(raw)
    except UnicodeDecodeError as exc:
        # Nothing to search: its bytes may name the file in any encoding.
        return None, f"not UTF-8 or UTF-16 text (byte {exc.start}), so whether it names the file is unknown"
    try:
        return yamlrt.loose_load(text), None
    except Exception:
        # Not parseable here, but a reader more lenient than ours might still run it.
        if any(name in text for name in names):
            return None, "not YAML we can read, and it mentions the file"
        return None, None


def find_references(host_path: str, manifest: str, resolve: Callable[[str], str] = os.path.realpath) -> References:
    """Every file the kubelet reads beside `manifest` (and `manifest` itself) that refers to `host_path`."""
    directory = os.path.dirname(manifest) or "."
    users: list[str] = []
    unreadable: list[tuple[str, str]] = []
    try:
        entries = sorted(os.listdir(directory))
    except FileNotFoundError:
        return References(users, unreadable)
    names = {os.path.basename(host_path), os.path.basename(resolve(host_path))}
    for entry in entries:
        path = os.path.join(directory, entry)
        if entry.startswith(".") or not os.path.isfile(path):
            continue
        try:
            with open(path, "rb") as handle:
                raw = handle.read(MAX_MANIFEST_BYTES)
        except OSError:
            continue  # unreadable to root: not read by the kubelet either
        pod, why = _read_pod(raw, names)
        if why is not None:
            unreadable.append((path, why))
        elif pod_references(pod, host_path, resolve):
            users.append(path)
    return References(users, unreadable)


def referencing_manifests(host_path: str, manifest: str) -> list[str]:
    """The files that keep `host_path`: those naming it and those we cannot read as the kubelet would."""
    found = find_references(host_path, manifest)
    return found.users + [path for path, _ in found.unreadable]
