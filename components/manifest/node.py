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
import contextlib
import dataclasses
import hashlib
import http.client
import json
import os
import signal
import ssl
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

from components.manifest import planner, yamlrt
from components.manifest.desired import AuditState, NodeRequest
from components.manifest.files import (
    MAX_MANIFEST_BYTES,
    NodeError,
    WriteError,
    atomic_write,
    backup,
    check_backup_dir,
    prune_backups,
    read_manifest,
)

Probe = Callable[[str], bool]


# --- preflight -----------------------------------------------------------------------------------


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
                other = yamlrt.loose_load(handle.read(MAX_MANIFEST_BYTES))
        except Exception:
            continue  # unreadable or not YAML: not something the kubelet runs either
        other_meta = other.get("metadata") if isinstance(other, dict) else None
        if isinstance(other_meta, dict) and (other_meta.get("namespace") or "default", other_meta.get("name")) == key:
            found.append(path)
    return found


def preflight(request: NodeRequest) -> tuple[bytes, str, planner.Pod]:
    manifest = request.manifest
    check_backup_dir(request.backup_dir, manifest)
    data = read_manifest(manifest)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise NodeError(f"{manifest}: not UTF-8 text (byte {exc.start})") from exc
    pod = planner.parse_manifest(text, manifest)
    strays = stray_manifests(manifest, pod)
    if strays:
        raise NodeError(
            f"{', '.join(strays)} also declare{'s' if len(strays) == 1 else ''} the kube-apiserver pod; the kubelet "
            f"may run that file instead of {manifest}. Move it out of {os.path.dirname(manifest)} and retry."
        )
    state = request.state
    if state.enabled and not os.path.isfile(state.policy_path):
        raise NodeError(f"the audit policy {state.policy_path} is missing; it must be written before the manifest")
    return data, text, pod


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
    except (urllib.error.URLError, OSError, ValueError, http.client.HTTPException):
        # Whatever answers on that port, anything but a clean 200 is "not ready" (an odd status line
        # from a half-started server raises HTTPException, which is not an OSError).
        return False


def _go_on() -> None:
    return None


@dataclasses.dataclass
class Waiter:
    """Bounded polling; clock and sleep are injectable so tests need no real time.

    `check` runs after every probe and sleep and may raise to stop the wait (a signal arrived).
    """

    probe: Probe = http_ready
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    interval: float = 0.5
    consecutive: int = 3
    check: Callable[[], None] = _go_on

    def until_down(self, url: str, timeout: float) -> float | None:
        start = self.clock()
        while self.clock() - start < timeout:
            up = self.probe(url)
            self.check()
            if not up:
                return self.clock() - start
            self.sleep(self.interval)
            self.check()
        return None

    def until_ready(self, url: str, timeout: float) -> float | None:
        # Several answers in a row: an apiserver that crash-loops can answer once between restarts.
        start, streak = self.clock(), 0
        while self.clock() - start < timeout:
            streak = streak + 1 if self.probe(url) else 0
            self.check()
            if streak >= self.consecutive:
                return self.clock() - start
            self.sleep(self.interval)
            self.check()
        return None


# --- the change ----------------------------------------------------------------------------------


class Interrupted(BaseException):
    """A termination signal arrived; BaseException so no `except Exception` on the way swallows it."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class NotReadyError(Exception):
    """The new apiserver did not restart or did not become ready in time."""


class SignalGuard:
    """Notes SIGTERM/SIGINT/SIGHUP instead of dying; `check()` turns a noted signal into Interrupted.

    The handler itself never raises: an exception thrown into arbitrary code could land inside the
    restore. Signals are acted on only where `check()` runs (around the write, in the wait loops),
    so a cancelled `pulumi up` or a dropped SSH session still gets the old manifest back, and a second
    signal never cuts the restore short. SIGKILL cannot be caught: the backup in the log is the way
    back then.
    """

    SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)

    def __init__(self) -> None:
        self.received: int | None = None
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: object) -> None:
        self.received = self.received or signum

    def check(self) -> None:
        if self.received is not None:
            raise Interrupted(self.received)

    def __enter__(self) -> SignalGuard:
        with contextlib.suppress(ValueError):  # not the main thread: signals go to the main thread anyway
            for signum in self.SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)


def _why(exc: BaseException) -> str:
    if isinstance(exc, Interrupted):
        return f"interrupted by {exc} while kube-apiserver was restarting"
    if isinstance(exc, NotReadyError):
        return str(exc)
    return f"{type(exc).__name__} while waiting for kube-apiserver: {exc}"


def restore(request: NodeRequest, data: bytes, mode: int, backup_path: str, why: str,
            guard: SignalGuard, url: str, waiter: Waiter) -> NodeError:
    """Put the previous manifest back byte for byte; the error to raise says what happened and where."""
    try:
        atomic_write(request.manifest, data, mode)
    except (OSError, NodeError) as exc:
        return NodeError(f"{why}; could NOT restore the previous manifest ({exc}): copy {backup_path} to "
                         f"{request.manifest} by hand", code=1)
    if guard.received is not None:  # asked to stop: the restore is what mattered, skip the wait
        return NodeError(f"{why}; restored the previous manifest from {backup_path}", code=1)
    try:
        back = waiter.until_ready(url, request.ready_timeout)
    except Interrupted:
        return NodeError(f"{why}; restored the previous manifest from {backup_path} (interrupted while "
                         "waiting for it to be ready)", code=1)
    restored = "it is ready again" if back is not None else "it is NOT ready yet; check the node"
    return NodeError(f"{why}; restored the previous manifest from {backup_path} and {restored}", code=1)


def converge(request: NodeRequest, waiter: Waiter) -> dict[str, Any]:
    data, text, _ = preflight(request)
    pod, new_pod, new_text = planner.rewrite(text, request.state, request.manifest)
    report: dict[str, Any] = {"master": request.master, "manifest": request.manifest,
                              "auditEnabled": planner.audit_enabled(new_pod), "changed": False}
    if new_pod == pod:
        return report
    new_data = new_text.encode("utf-8")
    url = readiness_url(new_pod, request.readiness_url)
    mode = os.stat(request.manifest).st_mode & 0o777
    with SignalGuard() as guard:
        waiter = dataclasses.replace(waiter, check=guard.check)
        backup_path = backup(request.manifest, data, request.backup_dir, time.time())
        if request.state.enabled:
            # Created 0700 like the apiserver itself would; an existing dir (and its logs) is left alone.
            try:
                os.makedirs(request.state.log_host_dir, mode=0o700, exist_ok=True)
            except OSError as exc:
                raise NodeError(f"cannot create the audit log dir {request.state.log_host_dir}: "
                                f"{exc.strerror or exc}") from exc
        if guard.received is not None:
            raise NodeError(f"interrupted by {signal.Signals(guard.received).name} before the manifest was "
                            "written; nothing changed", code=1)
        report.update(backup=backup_path, readinessUrl=url)
        # Everything from the write on restores the backup on any failure or signal.
        try:
            atomic_write(request.manifest, new_data, mode)
            report.update(changed=True, changes=planner.summarize(pod, new_pod))
            guard.check()
            down = waiter.until_down(url, request.restart_timeout)
            if down is None:
                raise NotReadyError(f"kube-apiserver was not restarted within {request.restart_timeout:.0f}s (is the "
                               f"kubelet running and watching {os.path.dirname(request.manifest)}?)")
            ready = waiter.until_ready(url, request.ready_timeout)
            if ready is None:
                raise NotReadyError(f"kube-apiserver did not become ready at {url} within {request.ready_timeout:.0f}s")
        except WriteError:
            raise  # the rename never happened: the old manifest is in place
        except BaseException as exc:
            raise restore(request, data, mode, backup_path, _why(exc), guard, url, waiter) from exc
        report.update(downAfterSeconds=round(down, 2), readyAfterSeconds=round(ready, 2))
        try:
            report["prunedBackups"] = prune_backups(request.manifest, request.backup_dir, request.keep_backups)
        except OSError as exc:  # old backups left behind are untidy, not a failed change
            report["pruneError"] = f"{request.backup_dir}: {exc.strerror or exc}"
        return report


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
            try:
                mode = int(args.mode, 8)
            except ValueError as exc:
                raise NodeError(f"--mode {args.mode!r} is not an octal file mode") from exc
            result = write_file(args.path, sys.stdin.buffer.read(), mode)
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
    except Exception as exc:
        # A one-line refusal, never a traceback, on a control plane. converge restores by itself
        # once the manifest is written, so anything reaching here came before the write.
        print(f"kube-audit[{master}]: unexpected {type(exc).__name__}: {exc}; nothing was changed", file=sys.stderr)
        return 2
    print(json.dumps(result, sort_keys=True))
    return 0


__all__ = ["AuditState", "NodeError", "NodeRequest", "Waiter", "WriteError", "atomic_write", "converge", "main"]
