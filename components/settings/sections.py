"""The objects under each stack config key: `log`, `paths`, `rollout`, `insightAgent`, `drift`, `kubeadm`.

Part of settings (components/settings/__init__.py reads the config and names the key in every error);
each model here is one key's JSON object, typed and bounded, with the defaults of the DCE guide.
"""

from __future__ import annotations

import posixpath
from typing import Annotated, Literal

from pydantic import Field, field_validator

from components.manifest.desired import (
    DEFAULT_BACKUP_DIR,
    DEFAULT_LOG_HOST_DIR,
    DEFAULT_LOG_PATH,
    DEFAULT_MANIFEST,
    DEFAULT_POLICY_DIR,
    DEFAULT_POLICY_FILE,
    MAX_AUDIT_LOG_MAXAGE,
    MAX_AUDIT_LOG_MAXBACKUP,
    MAX_AUDIT_LOG_MAXSIZE,
    MAX_WAIT_SECONDS,
    http_url_problem,
)
from components.settings.base import Strict
from components.settings.paths import AbsPath, DirPath, FileName, FilePath


class LogSettings(Strict):
    """Where and how much the apiserver logs; defaults are the DCE guide's."""

    path: FilePath = DEFAULT_LOG_PATH
    host_dir: DirPath = Field(default=DEFAULT_LOG_HOST_DIR, alias="hostDir")
    # Bounded by what kube-apiserver runs with (the Go int flags and lumberjack's int64 arithmetic,
    # see components/manifest/desired.py): past these it exits, or rotates wrongly, after the write.
    max_age: Annotated[int, Field(ge=0, le=MAX_AUDIT_LOG_MAXAGE)] = Field(default=30, alias="maxAge")
    max_backup: Annotated[int, Field(ge=0, le=MAX_AUDIT_LOG_MAXBACKUP)] = Field(default=1, alias="maxBackup")
    max_size: Annotated[int, Field(ge=0, le=MAX_AUDIT_LOG_MAXSIZE)] = Field(default=100, alias="maxSize")
    format: Literal["json", "legacy"] | None = None
    mode: Literal["blocking", "blocking-strict", "batch"] | None = None
    compress: bool | None = None

    @field_validator("path")
    @classmethod
    def _file_in_a_dir(cls, value: str) -> str:
        if posixpath.dirname(value) == "/":
            raise ValueError("must be a file inside a directory (the directory is mounted, not the file)")
        return value


class PathSettings(Strict):
    """Where things live on each master."""

    policy_dir: DirPath = Field(default=DEFAULT_POLICY_DIR, alias="policyDir")
    policy_file: FileName = Field(default=DEFAULT_POLICY_FILE, alias="policyFile")
    manifest: FilePath = DEFAULT_MANIFEST
    backup_dir: DirPath = Field(default=DEFAULT_BACKUP_DIR, alias="backupDir")
    node_program_dir: DirPath = Field(default="/var/lib/kube-audit", alias="nodeProgramDir")

    @field_validator("manifest")
    @classmethod
    def _manifest_in_a_dir(cls, value: str) -> str:
        if posixpath.dirname(value) == "/":
            raise ValueError("must be a file inside the kubelet's static-pod directory")
        return value


class RolloutSettings(Strict):
    """How long each master may take; the next master starts only after this one is ready."""

    restart_timeout_seconds: Annotated[int, Field(gt=0, le=MAX_WAIT_SECONDS)] = Field(
        default=90, alias="restartTimeoutSeconds")
    ready_timeout_seconds: Annotated[int, Field(gt=0, le=MAX_WAIT_SECONDS)] = Field(
        default=180, alias="readyTimeoutSeconds")
    readiness_url: str | None = Field(default=None, alias="readinessUrl")
    # Our timestamped manifest backups in paths.backupDir: the newest this many are kept.
    keep_backups: Annotated[int, Field(ge=1, le=1000)] = Field(default=5, alias="keepBackups")
    # The new-instance gate and the whole-cluster preflight (see components/manifest/gate.py).
    ready_consecutive: Annotated[int, Field(ge=1, le=100)] = Field(default=3, alias="readyConsecutive")
    audit_write_timeout_seconds: Annotated[int, Field(ge=0, le=MAX_WAIT_SECONDS)] = Field(
        default=60, alias="auditWriteTimeoutSeconds")
    log_space_margin_mb: Annotated[int, Field(ge=0)] = Field(default=64, alias="logSpaceMarginMb")
    pod_log_dir: AbsPath = Field(default="/var/log/pods", alias="podLogDir")

    @field_validator("readiness_url")
    @classmethod
    def _probe_url(cls, value: str | None) -> str | None:
        problem = None if value is None else http_url_problem(value)
        if problem:
            raise ValueError(problem)
        return value


class InsightAgentSettings(Strict):
    """The insight-agent Helm release whose FluentBit ships the audit log."""

    enabled: bool = True
    namespace: str = "insight-system"
    release: str = "insight-agent"
    chart: Annotated[str, Field(min_length=1)] = "insight-agent"
    # DCE's procedure adds this alias (`helm repo add insight-release ...`) before its `helm upgrade`.
    repository: Annotated[str, Field(min_length=1)] = "insight-release"
    version: Annotated[str, Field(min_length=1)] | None = None
    adopt: bool = True
    collect_global_management_audit: bool = Field(default=True, alias="collectGlobalManagementAudit")
    # Unset: read from the installed chart (components/insight_agent/chart.py); set: used as is.
    kube_audit_value: Annotated[str, Field(pattern=r"^[^.\s]+(\.[^.\s]+)*$")] | None = Field(
        default=None, alias="kubeAuditValue")
    global_management_audit_value: Annotated[str, Field(pattern=r"^[^.\s]+(\.[^.\s]+)*$")] | None = Field(
        default=None, alias="globalManagementAuditValue")
    fluent_bit_daemon_set: str = Field(default="insight-agent-fluent-bit", alias="fluentBitDaemonSet")
    # The rendered FluentBit config, read at preview and checked after `up`; unset: `<release>-fluent-bit-config`.
    fluent_bit_config_map: Annotated[str, Field(min_length=1)] | None = Field(default=None, alias="fluentBitConfigMap")
    skip_await: bool = Field(default=False, alias="skipAwait")
    timeout_seconds: Annotated[int, Field(gt=0)] = Field(default=300, alias="timeoutSeconds")

    @property
    def config_map(self) -> str:
        return self.fluent_bit_config_map or f"{self.release}-fluent-bit-config"


class DriftSettings(Strict):
    """Reading each master at every preview and up, to show drift (README "Drift")."""

    read: bool = True
    timeout_seconds: Annotated[int, Field(gt=0, le=300)] = Field(default=20, alias="timeoutSeconds")


class KubeadmSettings(Strict):
    """Mirroring the audit flags and mounts into kube-system/kubeadm-config (README "kubeadm")."""

    persist: bool = True
