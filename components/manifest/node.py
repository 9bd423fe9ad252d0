"""The master-side program: the "do" half of a manifest change (the planner is the "plan" half).

Runs on a control-plane node with a stock `python3` (shipped there as a zipapp with pure-Python yaml,
see bundle.py). Reads a NodeRequest as JSON, converges the kube-apiserver manifest, and proves the
apiserver came back; otherwise puts the previous manifest (and policy) back and fails naming the master.

Order of work, each step the reason the next one is safe:
  lock the manifests dir -> preflight (nothing written) -> plan -> backup outside the manifests dir
  -> atomic replace -> gate: a new kube-apiserver with the desired audit flags, ready N times in a row,
  writing the audit log (gate.py) -> on any failure or signal after the write, restore the backup and
  the previous policy.
Audit logs are never touched: only the manifest, its backup and the policy file are written.

Exit codes: 0 converged (changed or not), 1 change failed and was rolled back, 2 bad input (nothing
changed on this node).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import fcntl
import glob
import hashlib
import json
import os
import re
import signal
import sys
import time
from collections.abc import Iterator
from typing import Any

from components.manifest import gate as gate_mod
from components.manifest import planner, references
from components.manifest import preflight as preflight_mod
from components.manifest.desired import HASH_ANNOTATION, AuditState, NodeRequest
from components.manifest.files import (
    NodeError,
    WriteError,
    atomic_write,
    backup,
    check_backup_dir,
    file_mode,
    prune_backups,
    read_capped,
    read_manifest,
)
from components.manifest.readiness import http_ready, readiness_url, url_port

# --- preflight -----------------------------------------------------------------------------------


def preflight(request: NodeRequest) -> tuple[bytes, str, planner.Pod]:
    manifest = request.manifest
    check_backup_dir(request.backup_dir, manifest)
    data = read_manifest(manifest)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise NodeError(f"{manifest}: not UTF-8 text (byte {exc.start})") from exc
    pod = planner.parse_manifest(text, manifest)
    problems = preflight_mod.dir_problems(manifest, planner.kubelet_pod(text, manifest), request)
    if problems:
        raise NodeError("; ".join(problems))
    state = request.state
    if state.enabled and not os.path.isfile(state.policy_path):
        raise NodeError(f"the audit policy {state.policy_path} is missing; it must be written before the manifest")
    return data, text, pod


_CRI_PREFIX = re.compile(r"^\S+ (stdout|stderr) [FP] ")


def last_log_lines(pod_log_dir: str, lines: int = 12, width: int = 240) -> tuple[str, list[str]]:
    """The newest kube-apiserver container log where the kubelet keeps it, and its last lines.

    Lines lose the CRI time/stream prefix and are cut to `width`: the whole message must fit in
    what the SSH layer reports of stderr (its last 4000 characters).
    """
    paths = glob.glob(os.path.join(pod_log_dir, "kube-system_kube-apiserver-*", "kube-apiserver", "*.log"))
    if not paths:
        return "", []
    newest = max(paths, key=lambda p: os.stat(p).st_mtime)
    with open(newest, "rb") as handle:
        handle.seek(max(0, os.path.getsize(newest) - 65536))
        tail = handle.read().decode("utf-8", "replace").splitlines()
    return newest, [_CRI_PREFIX.sub("", line)[:width] for line in tail[-lines:]]


# --- policy versions -----------------------------------------------------------------------------


def _sha256_file(path: str) -> str | None:
    try:
        with open(path, "rb") as handle:
            return hashlib.sha256(handle.read()).hexdigest()
    except OSError:
        return None


def store_policy(store: str, data: bytes) -> None:
    """Keep this policy version by content hash (written once, never changed)."""
    path = os.path.join(store, hashlib.sha256(data).hexdigest() + ".yaml")
    if not os.path.exists(path):
        os.makedirs(store, mode=0o700, exist_ok=True)
        atomic_write(path, data, 0o600)


def install_policy(request: NodeRequest, digest: str | None) -> bool:
    """Make the live policy file the version `digest` from the store; False when it is not there."""
    path = request.state.policy_path
    if digest is None or _sha256_file(path) == digest:
        return True
    stored = os.path.join(request.policy_store, digest + ".yaml")
    try:
        with open(stored, "rb") as handle:
            data = handle.read()
    except OSError:
        return False
    atomic_write(path, data, 0o600)
    return True


# --- the change ----------------------------------------------------------------------------------


class Interrupted(BaseException):
    """A termination signal arrived; BaseException so no `except Exception` on the way swallows it."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class SignalGuard:
    """Notes SIGTERM/SIGINT/SIGHUP instead of dying; `check()` turns a noted signal into Interrupted.

    The handler itself never raises: an exception thrown into arbitrary code could land inside the
    restore. Signals are acted on only where `check()` runs (around the write, in the gate's loops),
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
    if isinstance(exc, gate_mod.GateError):
        return (f"the new kube-apiserver failed the {exc.check!r} check: {exc.detail} "
                f"(passed: {exc.passed or 'none'})")
    return f"{type(exc).__name__} while waiting for kube-apiserver: {exc}"


def _hash_annotation(pod: planner.Pod) -> str | None:
    value = ((pod.get("metadata") or {}).get("annotations") or {}).get(HASH_ANNOTATION)
    return value if isinstance(value, str) else None


def _serving_again(gate: gate_mod.Gate, request: NodeRequest, url: str, old_flags: tuple[str, ...],
                   first_write: float) -> str:
    """After a rollback: wait for the old configuration to serve; say how it went (raises only Interrupted)."""
    port = url_port(url)
    running = gate.listeners(port)
    # The kubelet never replaced the old process (the gate failed on new-process): it still serves.
    if (running and len({i.pid for i in running}) == 1 and running[0].started <= first_write
            and gate_mod.audit_tokens(running[0].argv) == sorted(old_flags) and gate.probe(url)):
        return f"the previous kube-apiserver (pid {running[0].pid}) is still serving"
    try:
        passed = gate.wait(url, port, gate_mod.Expectation(gate.boot(), old_flags),
                           restart_timeout=request.restart_timeout, ready_timeout=request.ready_timeout)
    except gate_mod.GateError as again:
        return f"the previous configuration is NOT serving yet ({again}); check the node"
    return f"the previous configuration is serving again (ready after {passed['ready']}s)"


def restore(request: NodeRequest, data: bytes, pod: planner.Pod, mode: int, backup_path: str, why: str,
            guard: SignalGuard, gate: gate_mod.Gate, first_write: float) -> NodeError:
    """Put the previous manifest back byte for byte, then the policy it ran with; the error to raise
    says what happened, where, and quotes the failed apiserver's last log lines."""
    try:  # read before the restore: afterwards the kubelet starts the old instance's log
        log_path, lines = last_log_lines(request.pod_log_dir)
    except OSError:
        log_path, lines = "", []
    quoted = (f"\nlast lines of {log_path}:\n  " + "\n  ".join(lines) if lines else
              f"\n(no kube-apiserver log under {request.pod_log_dir})")
    try:
        atomic_write(request.manifest, data, mode)
    except (OSError, NodeError) as exc:
        return NodeError(f"{why}; could NOT restore the previous manifest ({exc}): copy {backup_path} to "
                         f"{request.manifest} by hand{quoted}", code=1)
    restored = f"restored the previous manifest from {backup_path}"
    old_hash = _hash_annotation(pod)
    if old_hash and _sha256_file(request.state.policy_path) != old_hash:
        try:
            restored += (" and the previous policy file" if install_policy(request, old_hash) else
                         f" (the previous policy version {old_hash[:12]} is not in {request.policy_store})")
        except (OSError, NodeError) as exc:
            restored += f" (could NOT restore the previous policy version {old_hash[:12]}: {exc})"
    if guard.received is not None:  # asked to stop: the restore is what mattered, skip the wait
        return NodeError(f"{why}; {restored}{quoted}", code=1)
    try:
        serving = _serving_again(gate, request, readiness_url(pod, request.readiness_url),
                                 tuple(planner.audit_flags(pod)), first_write)
    except Interrupted:
        serving = "interrupted while waiting for it to serve"
    return NodeError(f"{why}; {restored}; {serving}{quoted}", code=1)


@contextlib.contextmanager
def exclusive(manifest: str) -> Iterator[None]:
    """One change at a time on a master: a second run (a re-run after a lost connection while the
    first still waits for its apiserver, or two `pulumi up`s) waits here for the first to finish.

    The lock is on the manifests directory itself, so taking it writes nothing.
    """
    try:
        fd = os.open(os.path.dirname(manifest) or ".", os.O_RDONLY | os.O_DIRECTORY)
    except OSError as exc:
        raise NodeError(f"cannot open the manifests dir of {manifest}: {exc.strerror}") from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def converge(request: NodeRequest, gate: gate_mod.Gate) -> dict[str, Any]:
    with exclusive(request.manifest):
        return _converge(request, gate)


def _converge(request: NodeRequest, gate: gate_mod.Gate) -> dict[str, Any]:
    data, text, _ = preflight(request)
    pod, new_pod, new_text = planner.rewrite(text, request.state, request.manifest)
    report: dict[str, Any] = {"master": request.master, "manifest": request.manifest,
                              "auditEnabled": planner.audit_enabled(new_pod), "changed": False}
    state = request.state
    # After a rollback the live policy is the previous version; a re-run puts the planned one back.
    # Without a stored copy (written by hand, or by an older node program) the file is used as is.
    if state.enabled and not install_policy(request, state.policy_hash):
        report["policyNote"] = f"policy version {state.policy_hash} is not in {request.policy_store}; file used as is"
    if new_pod == pod:
        return report
    new_data = new_text.encode("utf-8")
    url = readiness_url(new_pod, request.readiness_url)
    mode = os.stat(request.manifest).st_mode & 0o777
    audit_log = (os.path.join(state.log_host_dir, os.path.basename(state.log_path))
                 if state.enabled and request.audit_write_timeout > 0 else None)
    with SignalGuard() as guard:
        gate = dataclasses.replace(gate, check=guard.check)
        backup_path = backup(request.manifest, data, request.backup_dir, time.time())
        if state.enabled:
            # Created 0700 like the apiserver itself would; an existing dir (and its logs) is left alone.
            try:
                os.makedirs(state.log_host_dir, mode=0o700, exist_ok=True)
            except OSError as exc:
                raise NodeError(f"cannot create the audit log dir {state.log_host_dir}: "
                                f"{exc.strerror or exc}") from exc
        if guard.received is not None:
            raise NodeError(f"interrupted by {signal.Signals(guard.received).name} before the manifest was "
                            "written; nothing changed", code=1)
        report.update(backup=backup_path, readinessUrl=url)
        # Taken before the write: the new process must have started after it.
        want = gate_mod.Expectation(gate.boot(), tuple(state.flags()))
        written_wall = time.time()
        # Everything from the write on restores the backup (and the previous policy) on any failure or signal.
        try:
            atomic_write(request.manifest, new_data, mode)
            report.update(changed=True, changes=planner.summarize(pod, new_pod))
            guard.check()
            report["gate"] = gate.wait(url, url_port(url), want, restart_timeout=request.restart_timeout,
                                       ready_timeout=request.ready_timeout, audit_log=audit_log,
                                       written_wall=written_wall, audit_timeout=request.audit_write_timeout)
        except WriteError:
            raise  # the rename never happened: the old manifest is in place
        except BaseException as exc:
            raise restore(request, data, pod, mode, backup_path, _why(exc), guard, gate, want.written_at) from exc
        try:
            report["prunedBackups"] = prune_backups(request.manifest, request.backup_dir, request.keep_backups)
        except OSError as exc:  # old backups left behind are untidy, not a failed change
            report["pruneError"] = f"{request.backup_dir}: {exc.strerror or exc}"
        return report


def write_file(path: str, data: bytes, mode: int, store: str | None = None) -> dict[str, Any]:
    """Atomically replace `path`; with `store`, keep the previous and the new version there by hash."""
    if store:
        try:
            with open(path, "rb") as handle:
                store_policy(store, handle.read())
        except FileNotFoundError:
            pass
        store_policy(store, data)
    os.makedirs(os.path.dirname(path) or ".", mode=0o755, exist_ok=True)
    atomic_write(path, data, mode)
    return {"path": path, "sha256": hashlib.sha256(data).hexdigest(), "mode": oct(mode)}


def remove_file(path: str, keep_if_used_by: str | None = None) -> dict[str, Any]:
    """Remove `path`; with `keep_if_used_by` (a manifest), keep it while any manifest beside that one
    refers to it, holding the manifests-dir lock so no change adds a reference in between.

    A policy file removed under a manifest that names it crash-loops that apiserver at its next
    start; every version is also kept in the policy store, so the removal itself is reversible.
    """
    if keep_if_used_by is None:
        return _unlink(path)
    with exclusive(keep_if_used_by):
        found = references.find_references(path, keep_if_used_by)
        if found.users or found.unreadable:
            kept: dict[str, Any] = {"path": path, "removed": False}
            if found.users:
                kept["keptBecauseUsedBy"] = found.users
            if found.unreadable:
                # Read otherwise than the kubelet reads it, a file could name the policy unseen.
                kept["keptBecauseUnreadable"] = [f"{p}: {why}" for p, why in found.unreadable]
            return kept
        return _unlink(path)


def _unlink(path: str) -> dict[str, Any]:
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
    sub.add_parser("preflight", help="check, read-only, that this master may be changed (request on stdin)")
    write = sub.add_parser("write-file", help="atomically write stdin to PATH")
    write.add_argument("--path", required=True)
    write.add_argument("--mode", default="0600")
    write.add_argument("--store", help="keep the previous and the new content in this dir, by sha256")
    remove = sub.add_parser("remove-file", help="remove PATH if present")
    remove.add_argument("--path", required=True)
    remove.add_argument("--keep-if-used-by", metavar="MANIFEST",
                        help="keep PATH while a manifest in MANIFEST's dir names it (--audit-policy-file, any "
                             "spelling) or cannot be read as the kubelet reads it")
    return parser.parse_args(argv)


def _read_request(text: str) -> NodeRequest:
    try:
        return NodeRequest.from_json(text)
    except (ValueError, TypeError) as exc:
        raise NodeError(f"bad request: {exc}") from exc


def main(argv: list[str] | None = None, gate: gate_mod.Gate | None = None) -> int:
    args = _parse_args(sys.argv[1:] if argv is None else argv)
    master = "this master"
    try:
        if args.action == "write-file":
            result = write_file(args.path, read_capped(sys.stdin.buffer), file_mode(args.mode), args.store)
        elif args.action == "remove-file":
            result = remove_file(args.path, args.keep_if_used_by)
        elif args.action == "preflight":
            request = _read_request(sys.stdin.read())
            master = request.master
            result = preflight_mod.run(request, gate.probe if gate else http_ready)
            if result["problems"]:
                raise NodeError("preflight refused this master:\n  - " + "\n  - ".join(result["problems"]))
        else:
            request = _read_request(args.request if args.request else sys.stdin.read())
            master = request.master
            result = converge(request, gate or gate_mod.Gate(probe=http_ready, consecutive=request.ready_consecutive))
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


__all__ = ["AuditState", "NodeError", "NodeRequest", "WriteError", "atomic_write", "converge", "main"]
