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

from components.manifest import files, planner, readiness, staticpods
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
    doubtful: tuple[str, ...] = ()
    """Files in the manifests dir we cannot read as the kubelet does ("path: why")."""
    not_dirs: tuple[str, ...] = ()
    """Directories we need whose path is taken by something else ("what is in the way")."""


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
    out += _stray_lines(request.manifest, facts.strays, facts.doubtful)
    out += list(facts.not_dirs)
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


def _stray_lines(manifest: str, strays: tuple[str, ...], doubtful: tuple[str, ...]) -> list[str]:
    where = os.path.dirname(manifest)
    return [f"{path} also declares the kube-apiserver pod; the kubelet may run it instead of {manifest}. Move it "
            f"out of {where} and retry" for path in strays] + [
            f"{entry}, so kube-audit cannot tell whether the kubelet reads a second kube-apiserver pod from it. "
            f"Move it out of {where} and retry" for entry in doubtful]


def dir_problems(manifest: str, pod: Any, request: NodeRequest) -> list[str]:
    """What in the node's directories stops a change before anything is written: other files the
    kubelet reads as our pod, and paths we must create that something else holds. Read-only."""
    strays, doubtful = staticpods.scan(manifest, staticpods.pod_key(pod))
    return _stray_lines(manifest, tuple(strays), tuple(doubtful)) + _not_dirs(request)


# --- facts from the node -------------------------------------------------------------------------


def _needed_dirs(request: NodeRequest) -> list[str]:
    state = request.state
    dirs = [os.path.dirname(request.manifest), request.backup_dir]
    if state.enabled:
        dirs += [state.policy_dir, state.log_host_dir]
    return dirs


def _not_dirs(request: NodeRequest) -> list[str]:
    """A directory we need (or would create) whose path, or a parent's, is a file: every master must
    say so in preflight, or the first masters change and a later one fails half way through."""
    found = []
    for directory in _needed_dirs(request):
        path = directory
        while not os.path.lexists(path) and os.path.dirname(path) != path:
            path = os.path.dirname(path)
        if not os.path.isdir(path):
            found.append(f"{path} is not a directory" if path == directory else
                         f"{path} is not a directory, so {directory} cannot be created below it")
    return found


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
    error: str | None = None
    strays: tuple[str, ...] = ()
    doubtful: tuple[str, ...] = ()
    containers, url, ready = 0, None, False
    try:
        # The same read as the change itself: a symlink, FIFO or oversized file is refused, never opened.
        text = files.read_manifest(request.manifest).decode("utf-8")
        pod = planner.parse_manifest(text, request.manifest)
        spec_containers = pod["spec"]["containers"]
        containers = sum(1 for c in spec_containers if isinstance(c, dict) and c.get("name") == "kube-apiserver")
        key = staticpods.pod_key(planner.kubelet_pod(text, request.manifest))
        found, doubts = staticpods.scan(request.manifest, key)
        strays, doubtful = tuple(found), tuple(doubts)
        url = readiness.readiness_url(pod, request.readiness_url)
        ready = probe(url)
        # Planned here too (pure, nothing written): a manifest the change would refuse to rewrite
        # is refused on every master before the first one changes, and a preview says so.
        planner.rewrite(text, request.state, request.manifest)
    except files.NodeError as exc:
        error = str(exc)
    except OSError as exc:
        error = f"cannot read {request.manifest}: {exc.strerror}"
    except (planner.ManifestError, UnicodeDecodeError) as exc:
        error = str(exc)
    state = request.state
    dirs = _needed_dirs(request)
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
        doubtful=doubtful,
        not_dirs=tuple(_not_dirs(request)),
    )


def run(request: NodeRequest, probe: Callable[[str], bool]) -> dict[str, Any]:
    facts = gather(request, probe)
    return {"master": request.master, "problems": problems(facts, request), "facts": dataclasses.asdict(facts)}
