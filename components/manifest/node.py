"""The master-side program: the "do" half of a manifest change (the planner is the "plan" half).

Runs on a control-plane node with a stock `python3` (shipped there as a zipapp with pure-Python yaml,
see bundle.py). Reads a NodeRequest as JSON, converges the kube-apiserver manifest, and proves the
apiserver came back; otherwise puts the previous manifest back and fails naming the master.

Order of work, each step the reason the next one is safe:
  preflight (nothing written) -> plan -> backup outside the manifests dir -> atomic replace
  -> wait for the old apiserver to go and the new one to be ready -> on failure restore the backup.
Audit logs are never touched: only the manifest, its backup and the policy file are written.

Exit codes: 0 converged (changed or not), 1 change failed and was rolled back, 2 bad input (nothing
changed on this node).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import ssl
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

import yaml

from components.manifest import planner
from components.manifest.desired import AuditState, NodeRequest

Probe = Callable[[str], bool]


class NodeError(Exception):
    """A failure to report; `code` is the process exit code."""

    def __init__(self, message: str, code: int = 2) -> None:
        super().__init__(message)
        self.code = code


# --- files ---------------------------------------------------------------------------------------


def atomic_write(path: str, data: bytes, mode: int) -> None:
    """Write a dot-file beside `path`, fsync, rename: readers see the old or the new file, never half.

    The temporary name starts with a dot because the kubelet ignores dot-files in the manifests dir.
    """
    directory, base = os.path.split(path)
    tmp = os.path.join(directory, f".{base}.kube-audit.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.write(fd, data)
        os.fchmod(fd, mode)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.rename(tmp, path)
    dir_fd = os.open(directory or ".", os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def backup(manifest: str, data: bytes, backup_dir: str, now: float) -> str:
    os.makedirs(backup_dir, mode=0o700, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))
    path = os.path.join(backup_dir, f"{os.path.basename(manifest)}.{stamp}.kube-audit.bak")
    n = 1
    while os.path.exists(path):
        n += 1
        path = os.path.join(backup_dir, f"{os.path.basename(manifest)}.{stamp}-{n}.kube-audit.bak")
    atomic_write(path, data, 0o600)
    return path


# --- preflight -----------------------------------------------------------------------------------


def _same_dir(a: str, b: str) -> bool:
    return os.path.realpath(a).rstrip("/") == os.path.realpath(b).rstrip("/")


def stray_manifests(manifest: str, pod: planner.Pod) -> list[str]:
    """Other non-dot files in the manifests dir declaring the same pod.

    The kubelet parses every non-dot file there whatever its extension, and on a re-list the one
    sorting last wins: a `kube-apiserver.yaml.bak` silently overrides every edit we make.
    """
    directory = os.path.dirname(manifest) or "."
    meta = pod.get("metadata") or {}
    key = (meta.get("namespace") or "default", meta.get("name"))
    found = []
    for entry in sorted(os.listdir(directory)):
        path = os.path.join(directory, entry)
        if entry.startswith(".") or os.path.samefile(path, manifest) or not os.path.isfile(path):
            continue
        try:
            with open(path, encoding="utf-8", errors="replace") as handle:
                other = yaml.safe_load(handle)
        except (OSError, yaml.YAMLError):
            continue
        other_meta = other.get("metadata") if isinstance(other, dict) else None
        if isinstance(other_meta, dict) and (other_meta.get("namespace") or "default", other_meta.get("name")) == key:
            found.append(path)
    return found


def preflight(request: NodeRequest) -> tuple[bytes, planner.Pod]:
    manifest = request.manifest
    if _same_dir(request.backup_dir, os.path.dirname(manifest)):
        raise NodeError(f"backup dir {request.backup_dir} is the manifests dir; the kubelet would run the backup")
    try:
        with open(manifest, "rb") as handle:
            data = handle.read()
    except OSError as exc:
        raise NodeError(f"cannot read {manifest}: {exc.strerror}") from exc
    pod = planner.parse_manifest(data.decode("utf-8"), manifest)
    strays = stray_manifests(manifest, pod)
    if strays:
        raise NodeError(
            f"{', '.join(strays)} also declare{'s' if len(strays) == 1 else ''} the kube-apiserver pod; the kubelet "
            f"may run that file instead of {manifest}. Move it out of {os.path.dirname(manifest)} and retry."
        )
    state = request.state
    if state.enabled and not os.path.isfile(state.policy_path):
        raise NodeError(f"the audit policy {state.policy_path} is missing; it must be written before the manifest")
    return data, pod


# --- readiness -----------------------------------------------------------------------------------


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
        port = 6443
        for token in (container.get("command") or []) + (container.get("args") or []):
            if isinstance(token, str) and token.startswith("--secure-port="):
                port = int(token.split("=", 1)[1])
    host = probe.get("host") or "127.0.0.1"
    scheme = str(probe.get("scheme") or "HTTPS").lower()
    path = probe.get("path") or "/readyz"
    host = f"[{host}]" if ":" in host else host
    return f"{scheme}://{host}:{port}{path}"


def http_ready(url: str) -> bool:
    # Unverified TLS is deliberate: we only read /readyz's status code, send no credentials, and
    # the serving certificate may not be signed by any CA this node trusts.
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        with urllib.request.urlopen(url, timeout=2, context=context) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError, ValueError):
        return False


@dataclasses.dataclass
class Waiter:
    """Bounded polling; clock and sleep are injectable so tests need no real time."""

    probe: Probe = http_ready
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    interval: float = 0.5
    consecutive: int = 3

    def until_down(self, url: str, timeout: float) -> float | None:
        start = self.clock()
        while self.clock() - start < timeout:
            if not self.probe(url):
                return self.clock() - start
            self.sleep(self.interval)
        return None

    def until_ready(self, url: str, timeout: float) -> float | None:
        # Several answers in a row: an apiserver that crash-loops can answer once between restarts.
        start, streak = self.clock(), 0
        while self.clock() - start < timeout:
            streak = streak + 1 if self.probe(url) else 0
            if streak >= self.consecutive:
                return self.clock() - start
            self.sleep(self.interval)
        return None


# --- the change ----------------------------------------------------------------------------------


def converge(request: NodeRequest, waiter: Waiter) -> dict[str, Any]:
    data, pod = preflight(request)
    new_pod = planner.plan(pod, request.state)
    report: dict[str, Any] = {"master": request.master, "manifest": request.manifest,
                              "auditEnabled": planner.audit_enabled(new_pod), "changed": False}
    if new_pod == pod:
        return report
    if request.state.enabled:
        # Created 0700 like the apiserver itself would; an existing dir (and its logs) is left alone.
        os.makedirs(request.state.log_host_dir, mode=0o700, exist_ok=True)
    url = readiness_url(new_pod, request.readiness_url)
    backup_path = backup(request.manifest, data, request.backup_dir, time.time())
    mode = os.stat(request.manifest).st_mode & 0o777
    atomic_write(request.manifest, planner.render(new_pod).encode("utf-8"), mode)
    report.update(changed=True, backup=backup_path, changes=planner.summarize(pod, new_pod), readinessUrl=url)

    down = waiter.until_down(url, request.restart_timeout)
    ready = waiter.until_ready(url, request.ready_timeout) if down is not None else None
    if ready is not None:
        report.update(downAfterSeconds=round(down or 0.0, 2), readyAfterSeconds=round(ready, 2))
        return report

    atomic_write(request.manifest, data, mode)
    back = waiter.until_ready(url, request.ready_timeout)
    why = (f"kube-apiserver was not restarted within {request.restart_timeout:.0f}s (is the kubelet running "
           f"and watching {os.path.dirname(request.manifest)}?)" if down is None else
           f"kube-apiserver did not become ready at {url} within {request.ready_timeout:.0f}s")
    restored = "it is ready again" if back is not None else "it is NOT ready yet; check the node"
    raise NodeError(f"{why}; restored the previous manifest from {backup_path} and {restored}", code=1)


def write_file(path: str, data: bytes, mode: int) -> dict[str, Any]:
    os.makedirs(os.path.dirname(path) or ".", mode=0o755, exist_ok=True)
    atomic_write(path, data, mode)
    return {"path": path, "sha256": hashlib.sha256(data).hexdigest(), "mode": oct(mode)}


def remove_file(path: str) -> dict[str, Any]:
    try:
        os.unlink(path)
        return {"path": path, "removed": True}
    except FileNotFoundError:
        return {"path": path, "removed": False}


def _parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="kube-audit-node", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="action", required=True)
    apply = sub.add_parser("apply", help="converge the manifest; the request is JSON on stdin or --request")
    apply.add_argument("--request", help="the request JSON (used by destroy, where no stdin is given)")
    write = sub.add_parser("write-file", help="atomically write stdin to PATH")
    write.add_argument("--path", required=True)
    write.add_argument("--mode", default="0600")
    remove = sub.add_parser("remove-file", help="remove PATH if present")
    remove.add_argument("--path", required=True)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None, waiter: Waiter | None = None) -> int:
    args = _parse_args(sys.argv[1:] if argv is None else argv)
    master = "this master"
    try:
        if args.action == "write-file":
            result = write_file(args.path, sys.stdin.buffer.read(), int(args.mode, 8))
        elif args.action == "remove-file":
            result = remove_file(args.path)
        else:
            text = args.request if args.request else sys.stdin.read()
            try:
                request = NodeRequest.from_json(text)
            except (ValueError, TypeError) as exc:
                raise NodeError(f"bad request: {exc}") from exc
            master = request.master
            result = converge(request, waiter or Waiter())
    except planner.ManifestError as exc:
        print(f"kube-audit[{master}]: {exc}; nothing was changed", file=sys.stderr)
        return 2
    except NodeError as exc:
        suffix = "; nothing was changed" if exc.code == 2 else ""
        print(f"kube-audit[{master}]: {exc}{suffix}", file=sys.stderr)
        return exc.code
    except OSError as exc:
        print(f"kube-audit[{master}]: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result, sort_keys=True))
    return 0


__all__ = ["AuditState", "NodeRequest", "Waiter", "converge", "main"]
