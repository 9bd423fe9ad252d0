"""Paths in the stack config: how they are written, and which directories they may not share.

Part of settings (components/settings/__init__.py is the only reader of Pulumi config); kept apart because
the path rules are one coherent set: a path must say plainly where it is (absolute, no `..`, no
control characters, a file path not ending in `/`), and every directory we write to or mount is
its own, apart from each other and from what kubeadm mounts into kube-apiserver.
"""

from __future__ import annotations

import posixpath
from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field

# Directories kubeadm owns or mounts into kube-apiserver (cmd/kubeadm/app/phases/controlplane/volumes.go,
# caCertsVolumePath and caCertsExtraVolumePaths; in a manifest: k8s-certs, ca-certs, etc-pki,
# etc-ca-certificates, usr-share-ca-certificates, usr-local-share-ca-certificates). An audit log dir
# there would be mounted over (or under) one of those volumes, so the planner could not tell our
# mount from kubeadm's, and audit logs would land among certificates and kubeconfigs.
KUBEADM_DIRS: Mapping[str, str] = {
    "/etc/kubernetes": "kubeadm's own dir (manifests, certificates as the k8s-certs mount, kubeconfigs)",
    "/etc/ssl/certs": "mounted into kube-apiserver by kubeadm as ca-certs",
    "/etc/pki": "mounted into kube-apiserver by kubeadm as etc-pki",
    "/etc/ca-certificates": "mounted into kube-apiserver by kubeadm as etc-ca-certificates",
    "/usr/share/ca-certificates": "mounted into kube-apiserver by kubeadm as usr-share-ca-certificates",
    "/usr/local/share/ca-certificates": "mounted into kube-apiserver by kubeadm as usr-local-share-ca-certificates",
}


def _no_control_characters(value: str) -> None:
    if "\0" in value:
        raise ValueError("must not contain a NUL byte")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        # Legal in a Linux file name, but a newline or escape in a path is a paste accident, and it
        # would travel into the manifest and every message quoting the path.
        raise ValueError("must not contain control characters (newline, tab, escape, ...)")


def _normalise(value: str) -> str:
    """`/etc/kubernetes//manifests/` -> `/etc/kubernetes/manifests`; `..` is refused, not resolved.

    Lexical `..` resolution can disagree with the real path when a component is a symlink, and
    every overlap check below compares paths, so a path must say plainly where it is.
    """
    _no_control_characters(value)
    parts = [p for p in value.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise ValueError("must not contain '..' (write the path it leads to)")
    return "/" + "/".join(parts)


def _names_a_file(value: Any) -> Any:
    # Checked on the text as written: normalising first would turn `/var/log/audit/` into
    # `/var/log/audit`, a file named `audit` in /var/log, which is not what was asked for.
    if isinstance(value, str) and (value.endswith("/") or posixpath.basename(value) in (".", "..")):
        raise ValueError(f"{value!r} names a directory; give the file's path (e.g. {value.rstrip('/.')}/audit.log)")
    return value


AbsPath = Annotated[str, Field(pattern=r"^/"), AfterValidator(_normalise)]


def _not_root(value: str) -> str:
    if value == "/":
        raise ValueError("must be a directory below /, not / itself")
    return value


DirPath = Annotated[AbsPath, AfterValidator(_not_root)]
FilePath = Annotated[AbsPath, BeforeValidator(_names_a_file)]


def _file_name(value: str) -> str:
    _no_control_characters(value)
    if value in (".", ".."):
        raise ValueError("must be a file name, not '.' or '..'")
    return value


FileName = Annotated[str, Field(pattern=r"^[^/]+$"), AfterValidator(_file_name)]


def overlap(a: str, b: str) -> bool:
    return a == b or a.startswith(b.rstrip("/") + "/") or b.startswith(a.rstrip("/") + "/")


def _key(namespace: str, name: str) -> str:
    return f"{namespace}:{name.split(' ')[0]}"


def dirs_apart_problems(namespace: str, on_host: Mapping[str, str], in_container: Mapping[str, str],
                        log_dirs: Mapping[str, str]) -> list[str]:
    """Every directory we write to or mount is its own: no two are the same or nested.

    `on_host` / `in_container`: setting (`paths.policyDir`, or `log.path (its directory)`) -> dir.
    `log_dirs`: the audit log's dirs, which must also keep clear of kubeadm's (KUBEADM_DIRS).
    The kubelet runs every non-dot file in the manifests dir (a backup or the policy there starts
    a second pod or is parsed as one); the policy dir is mounted read-only, so logs in it could not
    be written; audit logs are evidence and share their dir with nothing we write.
    """
    problems = []
    for where, dirs in (("on the master", on_host), ("inside the apiserver container", in_container)):
        names = list(dirs)
        for i, first in enumerate(names):
            for second in names[i + 1:]:
                if overlap(dirs[first], dirs[second]):
                    why = (" (the kubelet runs every non-dot file in the manifests dir)"
                           if first.startswith("paths.manifest") else "")
                    problems.append(f"{_key(namespace, second)}: {dirs[second]} overlaps {_key(namespace, first)} "
                                    f"({dirs[first]}) {where}; each must be a directory of its own, neither inside "
                                    f"the other{why}")
    for name, directory in log_dirs.items():
        for kubeadm_dir, what in KUBEADM_DIRS.items():
            if overlap(directory, kubeadm_dir):
                problems.append(f"{_key(namespace, name)}: {directory} overlaps {kubeadm_dir}, {what}; the audit log "
                                "needs a directory of its own outside it")
    return problems
