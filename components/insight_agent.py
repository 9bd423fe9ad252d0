"""insight-agent's audit-log collection: one Helm value, and a FluentBit restart when it flips.

DCE installs insight-agent itself, so by default the release is adopted (imported by
`namespace/name`) and never uninstalled by a destroy. Only our values are set; `reuse_values` keeps
every value the release already has.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.settings import InsightAgentSettings

KUBE_AUDIT_VALUE = ("global", "exporters", "auditLog", "kubeAudit", "enabled")
# Assumption, documented in the README: DCE's guide only shows deleting the ghippo INPUT from the
# FluentBit ConfigMap by hand, which the next `helm upgrade` undoes; a chart value is the durable way.
GHIPPO_AUDIT_VALUE = ("global", "exporters", "auditLog", "ghippoAudit", "enabled")
RESTART_ANNOTATION = "kube-audit.io/audit-collection"


def _nested(path: tuple[str, ...], value: Any, into: dict[str, Any]) -> dict[str, Any]:
    node = into
    for key in path[:-1]:
        node = node.setdefault(key, {})
    node[path[-1]] = value
    return into


def release_values(collect_kube_audit: bool, collect_global_management: bool) -> dict[str, Any]:
    values: dict[str, Any] = {}
    _nested(KUBE_AUDIT_VALUE, collect_kube_audit, values)
    _nested(GHIPPO_AUDIT_VALUE, collect_global_management, values)
    return values


def restart_key(collect_kube_audit: bool, collect_global_management: bool) -> str:
    """Changes exactly when FluentBit's inputs change, so pods restart then and only then."""
    def word(on: bool) -> str:
        return "on" if on else "off"

    return f"kube-audit={word(collect_kube_audit)},ghippo-audit={word(collect_global_management)}"


@dataclass(frozen=True)
class InsightAgentArgs:
    settings: InsightAgentSettings
    """Release coordinates and options."""
    collect_kube_audit: bool
    """The stack's `enabled`: whether FluentBit tails the apiserver audit log dir."""


class InsightAgentAuditCollection(pulumi.ComponentResource):
    """Sets `global.exporters.auditLog.kubeAudit.enabled` on insight-agent and restarts FluentBit."""

    def __init__(self, name: str, args: InsightAgentArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        s = args.settings
        ghippo = s.collect_global_management_audit
        super().__init__("kube-audit:index:InsightAgentAuditCollection", name,
                         {"kubeAuditCollection": args.collect_kube_audit, "globalManagementAuditCollection": ghippo,
                          "release": f"{s.namespace}/{s.release}"}, opts)
        release_opts = pulumi.ResourceOptions(
            parent=self,
            import_=f"{s.namespace}/{s.release}" if s.adopt else None,
            # The release belongs to the platform installer; removing audit collection must not
            # uninstall the whole agent.
            retain_on_delete=s.adopt,
        )
        self.release = k8s.helm.v3.Release(
            f"{name}-release",
            name=s.release,
            namespace=s.namespace,
            chart=s.chart,
            version=s.version,
            repository_opts=k8s.helm.v3.RepositoryOptsArgs(repo=s.repository) if s.repository else None,
            values=release_values(args.collect_kube_audit, ghippo),
            reuse_values=True,
            skip_await=s.skip_await,
            timeout=s.timeout_seconds,
            opts=release_opts,
        )
        # A pod-template annotation is how `kubectl rollout restart` works too; keyed to the
        # setting, an unchanged `up` applies the same value and restarts nothing.
        self.fluent_bit_restart = k8s.apps.v1.DaemonSetPatch(
            f"{name}-fluent-bit-restart",
            metadata=k8s.meta.v1.ObjectMetaPatchArgs(
                name=s.fluent_bit_daemon_set,
                namespace=s.namespace,
                # skipAwait covers the rollout wait too: without it the patch waits for a
                # DaemonSet controller to report status, which some clusters never do in time.
                annotations={"pulumi.com/skipAwait": "true"} if s.skip_await else None,
            ),
            spec=k8s.apps.v1.DaemonSetSpecPatchArgs(
                template=k8s.core.v1.PodTemplateSpecPatchArgs(
                    metadata=k8s.meta.v1.ObjectMetaPatchArgs(
                        annotations={RESTART_ANNOTATION: restart_key(args.collect_kube_audit, ghippo)}
                    )
                )
            ),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.release]),
        )
        self.register_outputs({"releaseStatus": self.release.status})
