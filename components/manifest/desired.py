"""The desired audit state of one kube-apiserver manifest: plain data, never code.

This is what crosses the wire to a master (JSON on stdin) and what `pulumi preview` shows per master,
so its keys are the words a platform engineer would use. Pure: imports neither pulumi nor yaml.
"""

from __future__ import annotations

import json
import posixpath
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
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self, compact: bool = False) -> str:
        """Stable, one key per line: this text is what a preview diff shows."""
        if compact:
            return json.dumps(asdict(self), sort_keys=True, separators=(",", ":"))
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> NodeRequest:
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError("the request must be a JSON object")
        state = data.pop("state", None)
        if not isinstance(state, dict):
            raise ValueError("the request has no 'state' object")
        return cls(state=AuditState(**state), **data)
