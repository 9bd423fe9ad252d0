"""The kubelet's reading of the static-pod manifests directory, and the apiserver pod as a container spec.

Pure (files in, dicts out; no process is started), so lab/tests/test_supervisor_pure.py tests it
without root. See the package docstring for the rules it mirrors.
"""

from __future__ import annotations

import hashlib
import json
import os

import yaml

MAX_MANIFEST_BYTES = 10 * 1024 * 1024  # kubelet: maxConfigLength
APISERVER_KEY = ("kube-system", "kube-apiserver")
CONTAINER_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
IMAGE_ENTRYPOINT = ["/usr/local/bin/kube-apiserver"]


def _decode_pod(text: str) -> dict:
    """Decode one static-pod file as the kubelet would accept it, or raise ValueError."""
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ValueError(f"yaml: {exc}".replace("\n", " ")) from None
    if not isinstance(doc, dict):
        raise ValueError("not an object")
    if doc.get("apiVersion") != "v1" or doc.get("kind") != "Pod":
        raise ValueError(f"not a v1 Pod (apiVersion={doc.get('apiVersion')!r}, kind={doc.get('kind')!r})")
    meta = doc.get("metadata") or {}
    if not isinstance(meta, dict) or not meta.get("name"):
        raise ValueError("metadata.name is required")
    spec = doc.get("spec") or {}
    containers = spec.get("containers") if isinstance(spec, dict) else None
    if not isinstance(containers, list) or not containers:
        raise ValueError("spec.containers must be a non-empty list")
    return doc


def scan_manifests(directory: str) -> tuple[dict, dict]:
    """Return ({(namespace, name): (filename, pod)}, {filename: error}) for a manifests dir.

    Mirrors the kubelet file source: glob ``[^.]*``, sorted, subdirectories not read, invalid
    files skipped, the file sorting last wins for a duplicated pod.
    """
    pods: dict = {}
    errors: dict = {}
    try:
        names = sorted(os.listdir(directory))
    except FileNotFoundError:
        return pods, errors
    for name in names:
        if name.startswith("."):
            continue
        path = os.path.join(directory, name)
        try:
            if not os.path.isfile(path):
                continue
            if os.path.getsize(path) > MAX_MANIFEST_BYTES:
                errors[name] = "larger than 10 MiB"
                continue
            with open(path, encoding="utf-8") as fh:
                text = fh.read()
            pod = _decode_pod(text)
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            errors[name] = str(exc)
            continue
        meta = pod["metadata"]
        key = (meta.get("namespace") or "default", meta["name"])
        pods[key] = (name, pod)
    return pods, errors


def pod_identity(filename: str, pod: dict) -> str:
    """Stand-in for the static pod UID: hash of the parsed pod and its source file."""
    blob = json.dumps(pod, sort_keys=True, separators=(",", ":")) + "\0" + filename
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def container_spec(pod: dict, *, rootfs: str, binary: str, hostname: str, hosts: str) -> dict:
    """Turn the apiserver pod into what the runtime half needs (pure; raises ValueError)."""
    spec = pod.get("spec") or {}
    containers = spec.get("containers") or []
    ctr = next((c for c in containers if c.get("name") == "kube-apiserver"), containers[0])
    command = [str(x) for x in (ctr.get("command") or IMAGE_ENTRYPOINT)]
    args = [str(x) for x in (ctr.get("args") or [])]
    env = {"PATH": CONTAINER_PATH, "HOSTNAME": hostname, "HOME": "/root"}
    for item in ctr.get("env") or []:
        if isinstance(item, dict) and "name" in item and "value" in item:
            env[str(item["name"])] = str(item["value"])
    volumes = {}
    for vol in spec.get("volumes") or []:
        if isinstance(vol, dict) and vol.get("name"):
            volumes[vol["name"]] = vol
    mounts = []
    for vm in ctr.get("volumeMounts") or []:
        vol = volumes.get(vm.get("name"))
        if vol is None:
            raise ValueError(f"volumeMount {vm.get('name')!r} has no volume")
        hp = vol.get("hostPath")
        if not isinstance(hp, dict) or not hp.get("path"):
            continue  # only hostPath volumes are simulated
        mounts.append(
            {
                "name": vm["name"],
                "src": os.path.normpath(hp["path"]),
                "dst": os.path.normpath(vm["mountPath"]),
                "type": hp.get("type") or "",
                "readOnly": bool(vm.get("readOnly")),
            }
        )
    grace = spec.get("terminationGracePeriodSeconds")
    return {
        "rootfs": rootfs,
        "binary": binary,
        "hostname": hostname,
        "hosts": hosts,
        "command": command + args,
        "env": env,
        "workingDir": ctr.get("workingDir") or "/",
        "mounts": mounts,
        "grace": 30 if grace is None else int(grace),
    }


def prepare_host_paths(mounts: list) -> None:
    """Kubelet hostPath type checks plus the runtime's creation of missing directories."""
    for m in mounts:
        src, kind = m["src"], m["type"]
        if kind in ("", "DirectoryOrCreate"):
            if not os.path.exists(src):
                os.makedirs(src, mode=0o755, exist_ok=True)
        elif kind == "FileOrCreate":
            if not os.path.exists(src):
                os.makedirs(os.path.dirname(src), exist_ok=True)
                with open(src, "a", encoding="utf-8"):
                    pass
                os.chmod(src, 0o644)
        elif kind == "Directory":
            if not os.path.isdir(src):
                raise ValueError(f"hostPath type check failed: {src} is not a directory")
        elif kind == "File":
            if not os.path.isfile(src):
                raise ValueError(f"hostPath type check failed: {src} is not a file")
        elif kind in ("Socket", "CharDevice", "BlockDevice"):
            if not os.path.exists(src):
                raise ValueError(f"hostPath type check failed: {src} does not exist")
        else:
            raise ValueError(f"hostPath {src}: unsupported type {kind!r}")
