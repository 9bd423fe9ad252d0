"""Whole-cluster preflight: every master is checked, read-only, before any master is changed.

`gather` reads one master's facts (nothing is written, nothing restarted); `problems` judges them
(pure). The Pulumi side runs this on every master at once and makes every manifest change depend
on all of them, so one failing master means no master changes, with every problem listed.
Stdlib and yaml only: this module travels in the node bundle.
"""

from __future__ import annotations

import contextlib
import dataclasses
import glob
import os
import sys
from collections.abc import Callable
from typing import Any

from components.manifest import files, planner
from components.manifest.desired import NodeRequest

MIB = 1024 * 1024
# lumberjack's size when --audit-log-maxsize is 0 (before Kubernetes 1.36).
_LUMBERJACK_DEFAULT_MB = 100


@dataclasses.dataclass(frozen=True)
class Facts:
    """What one master looks like right now."""

    python: tuple[int, int]
    manifest_error: str | None
    apiserver_containers: int
    strays: tuple[str, ...]
    unwritable: tuple[str, ...]
    """Directories we must write to (or their nearest existing parent) that are not writable."""
    log_dir: str
    log_free_bytes: int
    log_used_bytes: int
    """Bytes our audit log and its rotated files already take (they count toward the budget)."""
    ready_url: str | None
    ready: bool


def log_budget_bytes(request: NodeRequest) -> int:
    """Room the audit log may take: maxSize x (maxBackup + 1), plus the configured margin."""
    s = request.state
    size = s.max_size or _LUMBERJACK_DEFAULT_MB
    # maxBackup 0 means "keep every rotated file": unbounded, so only the live file is counted.
    files = s.max_backup + 1 if s.max_backup else 1
    return (size * files + request.log_margin_mb) * MIB


def problems(facts: Facts, request: NodeRequest) -> list[str]:
    """Every reason this master must not be changed now (empty: go). Pure."""
    out: list[str] = []
    if facts.python < (3, 9):
        out.append(f"python3 is {facts.python[0]}.{facts.python[1]}; 3.9 or newer is required")
    if facts.manifest_error:
        out.append(facts.manifest_error)
    elif facts.apiserver_containers != 1:
        out.append(f"{request.manifest}: {facts.apiserver_containers} containers named kube-apiserver; "
                   "exactly one is required")
    for path in facts.strays:
        out.append(f"{path} also declares the kube-apiserver pod; the kubelet may run it instead of "
                   f"{request.manifest}. Move it out of {os.path.dirname(request.manifest)} and retry")
    for path in facts.unwritable:
        out.append(f"{path} is not writable")
    if request.state.enabled:
        need = log_budget_bytes(request) - facts.log_used_bytes
        if facts.log_free_bytes < need:
            s = request.state
            out.append(
                f"{facts.log_dir} has {facts.log_free_bytes // MIB} MiB free; the audit log needs "
                f"{need // MIB} MiB (maxSize {s.max_size} MB x (maxBackup {s.max_backup} + 1) + margin "
                f"{request.log_margin_mb} MiB, less {facts.log_used_bytes // MIB} MiB already used). Free space "
                f"or lower kube-audit:log.maxSize / log.maxBackup"
            )
    if not facts.ready:
        out.append(f"kube-apiserver is not ready now at {facts.ready_url or '(no readiness URL)'}; a rollout never "
                   "starts on a degraded cluster")
    return out


# --- facts from the node -------------------------------------------------------------------------


def _existing(path: str) -> str:
    while path and not os.path.exists(path):
        parent = os.path.dirname(path.rstrip("/")) or "/"
        if parent == path:
            break
        path = parent
    return path or "/"


def _used(log_dir: str, log_name: str) -> int:
    stem, ext = os.path.splitext(log_name)
    total = 0
    # The live file and lumberjack's rotated `<stem>-<timestamp><ext>[.gz]`.
    for path in {os.path.join(log_dir, log_name), *glob.glob(os.path.join(log_dir, f"{stem}-*{ext}*"))}:
        with contextlib.suppress(OSError):
            total += os.stat(path).st_size
    return total


def gather(request: NodeRequest, probe: Callable[[str], bool]) -> Facts:
    """Read one master's facts. Writes nothing."""
    from components.manifest import node  # node imports this module for its own preflight

    error: str | None = None
    strays: tuple[str, ...] = ()
    containers, url, ready = 0, None, False
    try:
        # The same read as the change itself: a symlink, FIFO or oversized file is refused, never opened.
        pod = planner.parse_manifest(files.read_manifest(request.manifest).decode("utf-8"), request.manifest)
        spec_containers = pod["spec"]["containers"]
        containers = sum(1 for c in spec_containers if isinstance(c, dict) and c.get("name") == "kube-apiserver")
        strays = tuple(node.stray_manifests(request.manifest, pod))
        url = node.readiness_url(pod, request.readiness_url)
        ready = probe(url)
    except files.NodeError as exc:
        error = str(exc)
    except OSError as exc:
        error = f"cannot read {request.manifest}: {exc.strerror}"
    except (planner.ManifestError, UnicodeDecodeError) as exc:
        error = str(exc)
    state = request.state
    dirs = [os.path.dirname(request.manifest), request.backup_dir]
    if state.enabled:
        dirs += [state.policy_dir, state.log_host_dir]
    unwritable = tuple(sorted({d if os.path.exists(d) else f"{_existing(d)} (nearest existing parent of {d})"
                               for d in dirs if not os.access(_existing(d), os.W_OK)}))
    log_dir = _existing(state.log_host_dir)
    vfs = os.statvfs(log_dir)
    return Facts(
        python=(sys.version_info[0], sys.version_info[1]),
        manifest_error=error,
        apiserver_containers=containers,
        strays=strays,
        unwritable=unwritable,
        log_dir=log_dir,
        log_free_bytes=vfs.f_bavail * vfs.f_frsize,
        log_used_bytes=_used(state.log_host_dir, os.path.basename(state.log_path)),
        ready_url=url,
        ready=ready,
    )


def run(request: NodeRequest, probe: Callable[[str], bool]) -> dict[str, Any]:
    facts = gather(request, probe)
    return {"master": request.master, "problems": problems(facts, request), "facts": dataclasses.asdict(facts)}
