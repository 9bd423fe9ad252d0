"""insight-agent's audit-log collection: one Helm value, and a FluentBit restart when it flips.

DCE installs insight-agent itself, so by default the release is adopted (imported by
`namespace/name`) and never uninstalled by a destroy. What the Release gets (chart, version,
values) is planned before any resource is declared, from the release as installed
(components/insight_agent_plan.py): only our values change, never the chart.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from components.helm_state import HelmRepositories, HelmStateError, read_installed_release
from components.insight_agent_plan import ReleasePlan, ReleasePlanError, plan_release
from components.kubeapi import KubeApi, KubeApiError
from components.settings import InsightAgentSettings, Settings

RESTART_ANNOTATION = "kube-audit.io/audit-collection"


def gather_release_plan(settings: Settings) -> ReleasePlan | None:
    """Read the installed release (cluster) and the local Helm repositories, then plan; None if unmanaged.

    Runs before any resource is declared, so a refusal changes nothing anywhere.
    """
    s = settings.insight_agent
    if not s.enabled:
        return None
    helm = settings.helm_release_settings
    driver = helm.get("driver") or os.environ.get("PULUMI_K8S_HELM_DRIVER") or "secret"
    if driver != "secret":
        raise ReleasePlanError(f"kubernetes:helmReleaseSettings.driver (or PULUMI_K8S_HELM_DRIVER) is {driver!r}: "
                               "kube-audit reads the installed release from Helm's default Secret storage only")
    # Where the provider's Helm finds local repositories: Helm's own env, unless the provider config overrides it.
    env = dict(os.environ)
    if helm.get("repositoryConfigPath"):
        env["HELM_REPOSITORY_CONFIG"] = helm["repositoryConfigPath"]
    if helm.get("repositoryCache"):
        env["HELM_REPOSITORY_CACHE"] = helm["repositoryCache"]
    try:
        api = KubeApi.from_kubeconfig(settings.kubeconfig, settings.kube_context)
        installed = read_installed_release(api.get, s.namespace, s.release)
        return plan_release(s, installed, HelmRepositories.load(env), settings.enabled)
    except KubeApiError as exc:
        raise ReleasePlanError(f"reading Helm release {s.namespace}/{s.release} from the cluster "
                               f"(kubernetes:kubeconfig / kubernetes:context): {exc}") from None
    except HelmStateError as exc:
        raise ReleasePlanError(str(exc)) from None


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
    plan: ReleasePlan
    """Chart, version and values, from gather_release_plan."""


class InsightAgentAuditCollection(pulumi.ComponentResource):
    """Sets `global.exporters.auditLog.kubeAudit.enabled` on insight-agent and restarts FluentBit."""

    def __init__(self, name: str, args: InsightAgentArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        s = args.settings
        ghippo = s.collect_global_management_audit
        super().__init__("kube-audit:index:InsightAgentAuditCollection", name,
                         {"kubeAuditCollection": args.collect_kube_audit, "globalManagementAuditCollection": ghippo,
                          "release": f"{s.namespace}/{s.release}", "chartVersion": args.plan.version}, opts)
        plan = args.plan
        for warning in plan.warnings:
            # Shown in the preview itself: an upgrade of the agent must never be a quiet `~ version` line.
            pulumi.log.warn(warning, resource=self)
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
            chart=plan.chart,
            version=plan.version,
            repository_opts=k8s.helm.v3.RepositoryOptsArgs(repo=plan.repository_url) if plan.repository_url else None,
            # The release's own values plus ours, explicitly: reset-then-reuse (see insight_agent_plan).
            values=plan.values,
            allow_null_values=True if plan.allow_null_values else None,
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
