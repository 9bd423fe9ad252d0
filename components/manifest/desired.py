"""The desired audit state of one kube-apiserver manifest: plain data, never code.

This is what crosses the wire to a master (JSON on stdin) and what `pulumi preview` shows per master,
so its keys are the words a platform engineer would use. Pure: imports neither pulumi nor yaml.
"""

from __future__ import annotations

import json
import math
import posixpath
import urllib.parse
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

# Names of the objects the planner owns in the Pod; anything else in the manifest is left alone.
POLICY_VOLUME = "audit-policy"
LOG_VOLUME = "audit-logs"
HASH_ANNOTATION = "kube-audit.io/policy-hash"

DEFAULT_MANIFEST = "/etc/kubernetes/manifests/kube-apiserver.yaml"
DEFAULT_BACKUP_DIR = "/etc/kubernetes/tmp"
DEFAULT_POLICY_DIR = "/etc/kubernetes/audit-policy"
DEFAULT_POLICY_FILE = "apiserver-audit-policy.yaml"
DEFAULT_LOG_PATH = "/var/log/audit/kube-apiserver-audit.log"
DEFAULT_LOG_HOST_DIR = "/var/log/kubernetes/audit"
DEFAULT_POD_LOG_DIR = "/var/log/pods"
# Under the backup dir: every policy version written, by sha256, so a rollback can put back the
# policy the previous manifest was started with (and a re-run can reinstall the new one).
POLICY_STORE = "kube-audit-policies"

# The largest --audit-log-* values a kube-apiserver runs with as asked. The flags are Go `int`s
# (k8s.io/apiserver pkg/server/options/audit.go, fs.IntVar), which pflag parses with
# strconv.ParseInt(s, 0, 64): past int64 the apiserver exits ("must be an integer"). Two are
# tighter because lumberjack v2.2.1 (the rotating writer) multiplies them in int64 and overflows:
# maxage: time.Duration(int64(24*time.Hour) * maxAge) wraps past 106751 days, moving the cutoff
#   for deleting rotated logs to an arbitrary date (audit logs deleted early);
# maxsize: int64(maxSize) * 1 MiB wraps negative past this many MB, and every write then
#   fails with "write length exceeds maximum file size".
MAX_AUDIT_LOG_MAXAGE = (2**63 - 1) // (24 * 3600 * 10**9)  # 106751 days
MAX_AUDIT_LOG_MAXSIZE = (2**63 - 1) >> 20  # MB
MAX_AUDIT_LOG_MAXBACKUP = 2**63 - 1
# Longest wait for one master's apiserver (each of restart, ready, first audit write). The lock on
# that master and the whole rollout wait this long; an apiserver that has not started within an
# hour will not, and an unbounded (or infinite) value would wait forever instead of rolling back.
MAX_WAIT_SECONDS = 3600


def http_url_problem(url: str) -> str | None:
    """Why `url` is not a readiness URL the gate can probe, or None.

    The gate speaks HTTP(S) only; a URL with credentials would put them in the preview and the logs.
    """
    if any(ord(c) < 0x21 or ord(c) == 0x7F for c in url):
        return "must not contain spaces or control characters"
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https"):
        return "must be an http:// or https:// URL"
    if not parts.hostname:
        return "must name a host (http(s)://HOST[:PORT]/PATH)"
    if parts.username is not None or parts.password is not None:
        return "must not carry credentials (user@ or user:password@)"
    try:
        parts.port  # noqa: B018 - raises ValueError for a port that is not 0..65535
    except ValueError:
        return "has a port that is not a number from 1 to 65535"
    if parts.port == 0:
        return "has a port that is not a number from 1 to 65535"
    return None


@dataclass(frozen=True)
class AuditState:
    """Everything the planner needs to converge one manifest.

    `enabled=False` means audit-off: every `--audit-*` flag and our mounts, volumes and annotation
    are removed. The log fields still matter then: they tell the planner which stale mounts are ours.
    """

    enabled: bool
    policy_dir: str = DEFAULT_POLICY_DIR
    policy_file: str = DEFAULT_POLICY_FILE
    log_path: str = DEFAULT_LOG_PATH
    log_host_dir: str = DEFAULT_LOG_HOST_DIR
    max_age: int = 30
    max_backup: int = 1
    max_size: int = 100
    log_format: str | None = None
    log_mode: str | None = None
    log_compress: bool | None = None
    policy_hash: str | None = None

    @property
    def policy_path(self) -> str:
        return posixpath.join(self.policy_dir, self.policy_file)

    @property
    def log_dir(self) -> str:
        """The directory inside the container: mounted whole, because rotation renames files in it."""
        return posixpath.dirname(self.log_path)

    def flags(self) -> list[str]:
        """The exact `--audit-*` flags the apiserver gets, sorted as kubeadm sorts its flags."""
        if not self.enabled:
            return []
        values: dict[str, str] = {
            "--audit-log-maxage": str(self.max_age),
            "--audit-log-maxbackup": str(self.max_backup),
            "--audit-log-maxsize": str(self.max_size),
            "--audit-log-path": self.log_path,
            "--audit-policy-file": self.policy_path,
        }
        if self.log_format is not None:
            values["--audit-log-format"] = self.log_format
        if self.log_mode is not None:
            values["--audit-log-mode"] = self.log_mode
        if self.log_compress is not None:
            values["--audit-log-compress"] = "true" if self.log_compress else "false"
        return [f"{name}={value}" for name, value in sorted(values.items())]


@dataclass(frozen=True)
class NodeRequest:
    """What the master-side program is asked to do: the state plus where and how long to wait."""

    master: str
    state: AuditState
    manifest: str = DEFAULT_MANIFEST
    backup_dir: str = DEFAULT_BACKUP_DIR
    # Seconds to see the old apiserver go away after the write, then to see the new one ready.
    restart_timeout: float = 90.0
    ready_timeout: float = 180.0
    # Where to ask; None means "read it from the manifest's readinessProbe".
    readiness_url: str | None = None
    # How many of our timestamped backups of the manifest to keep (the newest ones).
    keep_backups: int = 5
    # The new-instance gate: answers in a row from one process, then seconds for the first audit
    # write (0: not checked); preflight's free-space margin for the audit log dir.
    ready_consecutive: int = 3
    audit_write_timeout: float = 60.0
    log_margin_mb: int = 64
    # Where the kubelet keeps container logs: a failed change quotes the apiserver's last lines.
    pod_log_dir: str = DEFAULT_POD_LOG_DIR
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def policy_store(self) -> str:
        return posixpath.join(self.backup_dir, POLICY_STORE)

    def to_json(self, compact: bool = False) -> str:
        """Stable, one key per line: this text is what a preview diff shows."""
        if compact:
            return json.dumps(asdict(self), sort_keys=True, separators=(",", ":"))
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> NodeRequest:
        """Parse and type-check a request; every error names the field (`state.enabled`).

        Checked before anything is written: JSON `"false"` for `enabled` must not turn audit on.
        """
        try:
            data = json.loads(text, object_pairs_hook=_no_duplicate_keys)
        except json.JSONDecodeError as exc:
            raise RequestError(f"not valid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from exc
        if not isinstance(data, dict):
            raise RequestError("the request must be a JSON object")
        state = data.get("state")
        if not isinstance(state, dict):
            raise RequestError("state: required, a JSON object")
        _check(data, _REQUEST_FIELDS, "")
        _check(state, _STATE_FIELDS, "state.")
        return cls(state=AuditState(**state), **{k: v for k, v in data.items() if k != "state"})


class RequestError(ValueError):
    """A request that does not have the expected shape; the message names the field."""


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise RequestError(f"{key}: given twice")
        result[key] = value
    return result


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _int_in(low: int, high: int) -> Callable[[Any], bool]:
    return lambda v: _is_int(v) and low <= v <= high


def _seconds(low_exclusive: bool) -> Callable[[Any], bool]:
    # JSON's NaN and Infinity parse as floats: a wait must be a finite number of seconds.
    def ok(v: Any) -> bool:
        if not (_is_int(v) or (isinstance(v, float) and math.isfinite(v))):
            return False
        return bool((v > 0 if low_exclusive else v >= 0) and v <= MAX_WAIT_SECONDS)
    return ok


def _abs_path(value: Any) -> bool:
    # Normalised absolute paths only: `//`, `.` and `..` make overlap checks lie.
    return (isinstance(value, str) and value.startswith("/") and posixpath.normpath(value) == value
            and "\0" not in value)


def _name(value: Any) -> bool:
    return isinstance(value, str) and value not in ("", ".", "..") and "/" not in value and "\0" not in value


# field -> (check, what it must be). Each check is a plain predicate so this module stays pure.
_Check = tuple[Callable[[Any], bool], str]
_REQUEST_FIELDS: dict[str, _Check] = {
    "master": (lambda v: isinstance(v, str) and bool(v), "a non-empty string"),
    "state": (lambda v: isinstance(v, dict), "an object"),
    "manifest": (_abs_path, "a normalised absolute path"),
    "backup_dir": (_abs_path, "a normalised absolute path"),
    "restart_timeout": (_seconds(True), f"a number > 0 and <= {MAX_WAIT_SECONDS}"),
    "ready_timeout": (_seconds(True), f"a number > 0 and <= {MAX_WAIT_SECONDS}"),
    "readiness_url": (lambda v: v is None or (isinstance(v, str) and http_url_problem(v) is None),
                      "null or an http(s) URL"),
    "keep_backups": (lambda v: _is_int(v) and v >= 1, "an integer >= 1"),
    "ready_consecutive": (lambda v: _is_int(v) and v >= 1, "an integer >= 1"),
    "audit_write_timeout": (_seconds(False), f"a number >= 0 and <= {MAX_WAIT_SECONDS}"),
    "log_margin_mb": (lambda v: _is_int(v) and v >= 0, "an integer >= 0"),
    "pod_log_dir": (_abs_path, "a normalised absolute path"),
    "extra": (lambda v: isinstance(v, dict), "an object"),
}
_STATE_FIELDS: dict[str, _Check] = {
    "enabled": (lambda v: isinstance(v, bool), "true or false"),
    "policy_dir": (_abs_path, "a normalised absolute path"),
    "policy_file": (_name, "a file name"),
    "log_path": (lambda v: _abs_path(v) and posixpath.dirname(v) != "/", "a normalised absolute path in a directory"),
    "log_host_dir": (_abs_path, "a normalised absolute path"),
    "max_age": (_int_in(0, MAX_AUDIT_LOG_MAXAGE), f"an integer >= 0 and <= {MAX_AUDIT_LOG_MAXAGE}"),
    "max_backup": (_int_in(0, MAX_AUDIT_LOG_MAXBACKUP), f"an integer >= 0 and <= {MAX_AUDIT_LOG_MAXBACKUP}"),
    "max_size": (_int_in(0, MAX_AUDIT_LOG_MAXSIZE), f"an integer >= 0 and <= {MAX_AUDIT_LOG_MAXSIZE}"),
    "log_format": (lambda v: v in (None, "json", "legacy"), 'null, "json" or "legacy"'),
    "log_mode": (lambda v: v in (None, "blocking", "blocking-strict", "batch"),
                 'null, "blocking", "blocking-strict" or "batch"'),
    "log_compress": (lambda v: v is None or isinstance(v, bool), "null, true or false"),
    "policy_hash": (lambda v: v is None or (isinstance(v, str) and v.isprintable() and bool(v)),
                    "null or a non-empty string"),
}
_REQUIRED = {"master", "state", "enabled"}


def _check(data: dict[str, Any], fields: dict[str, _Check], prefix: str) -> None:
    problems = [f"{prefix}{key}: unknown field" for key in sorted(set(data) - set(fields))]
    problems += [f"{prefix}{key}: required" for key in sorted(_REQUIRED & set(fields) - set(data))]
    for key, (ok, expected) in fields.items():
        if key in data and not ok(data[key]):
            problems.append(f"{prefix}{key}: expected {expected}, got {json.dumps(data[key])[:80]}")
    if problems:
        raise RequestError("; ".join(problems))
