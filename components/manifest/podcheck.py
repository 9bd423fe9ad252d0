"""The kubelet's judgement of a planned pod, mirrored for what our change can affect.

Two questions, both about pods as the kubelet decodes them (yamlrt.kubelet_view):
- `same_pod`: would the kubelet see two manifests as the same pod? It hashes the decoded, typed pod
  into the pod's UID, and only a new UID restarts a static pod. A typed decode forgets a `null`, an
  unknown field, `readOnly: false` and other zero values, and defaults a hostPath's `type` to "", so
  a rewrite that changes only those is no change at all: writing it would restart nothing and leave
  the health gate waiting for a restart that never comes.
- `problems`: would the kubelet reject the planned pod (ValidatePodCreate in pkg/kubelet/config
  common.go)? A rejected static pod is not run, so the apiserver goes away. Only the rules our change
  can break are mirrored: every volumeMount of every container, initContainer and ephemeral container
  names a volume; volume names are unique DNS labels; mountPaths are unique in a container (ours are
  also compared normalised, since the runtime would mount both at one place); and the change never
  alters which program the apiserver container runs.
tests/kubelet checks these against the kubelet's own code. Pure: shipped in the node bundle.
"""

from __future__ import annotations

import dataclasses
import posixpath
import re
from typing import Any

from components.manifest.desired import LOG_VOLUME, POLICY_VOLUME

OURS = (LOG_VOLUME, POLICY_VOLUME)
CONTAINER_LISTS = ("initContainers", "containers", "ephemeralContainers")

# k8s.io/api core/v1 VolumeMount: the fields a typed decode keeps, and those whose zero value
# (false, "") is the same as absent (plain Go values with omitempty, no defaulting).
_MOUNT_FIELDS = frozenset({"name", "readOnly", "recursiveReadOnly", "mountPath", "subPath", "mountPropagation",
                           "subPathExpr", "bindMountOptions"})
_MOUNT_ZERO = {"readOnly": False, "subPath": "", "subPathExpr": "", "name": "", "mountPath": ""}
# core/v1 VolumeSource, inlined into Volume: every other key of a volume is dropped by the decoder.
_VOLUME_FIELDS = frozenset({
    "name", "hostPath", "emptyDir", "gcePersistentDisk", "awsElasticBlockStore", "gitRepo", "secret", "nfs",
    "iscsi", "glusterfs", "persistentVolumeClaim", "rbd", "flexVolume", "cinder", "cephfs", "flocker",
    "downwardAPI", "fc", "azureFile", "configMap", "vsphereVolume", "quobyte", "azureDisk", "photonPersistentDisk",
    "projected", "portworxVolume", "scaleIO", "storageos", "csi", "ephemeral", "image",
})
_DNS1123_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")


def _no_nulls(value: Any) -> Any:
    """JSON null decodes to the zero value, exactly as an absent key does."""
    if isinstance(value, dict):
        return {k: _no_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_no_nulls(v) for v in value]
    return value


def _typed_mount(mount: Any) -> Any:
    if not isinstance(mount, dict):
        return mount
    return {k: v for k, v in mount.items() if k in _MOUNT_FIELDS and _MOUNT_ZERO.get(k, ...) != v}


def _typed_volume(volume: Any) -> Any:
    if not isinstance(volume, dict):
        return volume
    typed = {k: v for k, v in volume.items() if k in _VOLUME_FIELDS}
    host = typed.get("hostPath")
    if isinstance(host, dict):
        # SetDefaults_HostPathVolumeSource: an unset type becomes "" before the kubelet hashes the pod.
        typed["hostPath"] = {"path": host.get("path", ""), "type": host.get("type", "")}
    return typed


def _typed(pod: Any) -> Any:
    """The parts of a decoded pod our change edits, as the kubelet's typed decode sees them."""
    pod = _no_nulls(pod)
    spec = pod.get("spec") if isinstance(pod, dict) else None
    if not isinstance(spec, dict):
        return pod
    if isinstance(spec.get("volumes"), list):
        spec["volumes"] = [_typed_volume(v) for v in spec["volumes"]]
    for key in CONTAINER_LISTS:
        for container in spec.get(key) or [] if isinstance(spec.get(key), list) else []:
            if isinstance(container, dict) and isinstance(container.get("volumeMounts"), list):
                container["volumeMounts"] = [_typed_mount(m) for m in container["volumeMounts"]]
    return pod


def same_pod(a: Any, b: Any) -> bool:
    """Would the kubelet decode both into the same pod (same UID, so no restart)?"""
    return bool(a == b or _typed(a) == _typed(b))


@dataclasses.dataclass(frozen=True)
class Problem:
    """Why the kubelet would reject the planned pod, at a field of the new pod."""

    path: tuple[str | int, ...]
    """Where in the new pod, e.g. ("spec", "initContainers", 0, "volumeMounts", 1, "name")."""
    message: str
    """The kubelet's words (field.Error), then why it happens."""
    old_path: tuple[str | int, ...] | None = None
    """The same item in the old pod, when it was there (for a file:line)."""
    before: bool = False
    """The old pod had this problem too."""
    related: tuple[str | int, ...] | None = None
    """The other item involved (the first of two mounts at one path), in the new pod."""

    @property
    def field(self) -> str:
        out = ""
        for part in self.path:
            out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
        return out


def _items(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _containers(pod: Any) -> list[tuple[str, int, dict[str, Any]]]:
    spec = pod.get("spec") if isinstance(pod, dict) else None
    spec = spec if isinstance(spec, dict) else {}
    return [(key, i, c) for key in CONTAINER_LISTS for i, c in enumerate(_items(spec.get(key))) if isinstance(c, dict)]


def _volume_names(pod: Any) -> tuple[set[str], list[Problem]]:
    """The names a mount may use (ValidateVolumes keeps only the valid ones), and what is wrong."""
    names: set[str] = set()
    found: list[Problem] = []
    spec = pod.get("spec") if isinstance(pod, dict) else None
    volumes = _items(spec.get("volumes")) if isinstance(spec, dict) else []
    for i, volume in enumerate(volumes):
        name = volume.get("name") if isinstance(volume, dict) else None
        path: tuple[str | int, ...] = ("spec", "volumes", i, "name")
        if not isinstance(name, str) or not name:
            found.append(Problem(path, "Required value"))
        elif not _DNS1123_LABEL.fullmatch(name) or len(name) > 63:
            found.append(Problem(path, f'Invalid value: "{name}": must be a lowercase RFC 1123 label'))
        elif name in names:
            found.append(Problem(path, f'Duplicate value: "{name}"'))
        else:
            names.add(name)
    return names, found


def _mount_problems(pod: Any, apiserver: int) -> list[Problem]:
    names, found = _volume_names(pod)
    for key, i, container in _containers(pod):
        seen: dict[str, tuple[int, Any]] = {}
        for j, mount in enumerate(_items(container.get("volumeMounts"))):
            if not isinstance(mount, dict):
                continue
            at: tuple[str | int, ...] = ("spec", key, i, "volumeMounts", j)
            name, path = mount.get("name"), mount.get("mountPath")
            if name not in names:
                owner = f"container {container.get('name')!r}"
                why = (f"{owner} mounts kube-audit's volume, which is gone once audit logging is off: remove "
                       "that mount first" if name in OURS else f"{owner} mounts a volume the pod does not have")
                found.append(Problem((*at, "name"), f'Not found: "{name}" ({why})'))
            if isinstance(path, str) and path:
                clash = seen.get(path)
                if clash is None and key == "containers" and i == apiserver:
                    # The kubelet compares the strings, but the runtime would mount "/a" and "/a/" at one
                    # place: for our mounts, the normalised paths must differ too.
                    norm = posixpath.normpath(path)
                    clash = next(((k, n) for p, (k, n) in seen.items()
                                  if posixpath.normpath(p) == norm and (name in OURS or n in OURS)), None)
                if clash is not None:
                    mine = name if name in OURS else clash[1] if clash[1] in OURS else None
                    hint = "" if mine is None else (
                        f"; kube-audit's {mine} mount goes there: choose another "
                        f"{'log path' if mine == LOG_VOLUME else 'policy dir'}")
                    found.append(Problem((*at, "mountPath"), f'Invalid value: "{path}": must be unique ('
                                                             f"{clash[1]!r} is mounted there too{hint})",
                                         related=("spec", key, i, "volumeMounts", clash[0])))
                seen.setdefault(path, (j, name))
    return found


def _executable(container: dict[str, Any]) -> Any:
    command = container.get("command")
    return command[0] if isinstance(command, list) and command else None


def problems(old: Any, new: Any, apiserver: int) -> list[Problem]:
    """Why the kubelet would reject `new` (the planned pod), or run another program in it. Pure.

    `apiserver` is the index of the kube-apiserver container in spec.containers.
    """
    found = _mount_problems(new, apiserver)
    before = {(p.field, p.message) for p in _mount_problems(old, apiserver)}
    old_c = _items((old.get("spec") or {}).get("containers"))[apiserver]
    new_c = _items((new.get("spec") or {}).get("containers"))[apiserver]
    if _executable(old_c) != _executable(new_c):
        found.append(Problem(("spec", "containers", apiserver, "command", 0),
                             f"the change would make the container run {_executable(new_c)!r} instead of "
                             f"{_executable(old_c) or 'the image entrypoint'!r}"))
    return [dataclasses.replace(p, before=(p.field, p.message) in before, old_path=_old_path(old, new, p.path) or (
        _old_path(old, new, p.related) if p.related else None)) for p in found]


def _old_path(old: Any, new: Any, path: tuple[str | int, ...]) -> tuple[str | int, ...] | None:
    """The same item in the old pod: lists we edit shift, so an item is found by its value."""
    cut = next((k for k in range(len(path) - 1, -1, -1) if isinstance(path[k], int)), None)
    if cut is None:
        return path
    try:
        node_new, node_old = new, old
        for part in path[:cut]:
            node_new, node_old = node_new[part], node_old[part]
        item = node_new[path[cut]]
    except (KeyError, IndexError, TypeError):
        return None
    if not isinstance(node_old, list) or item not in node_old:
        return None
    return (*path[:cut], node_old.index(item), *path[cut + 1:])
