"""insight-agent's audit-log collection: one Helm value, and a FluentBit restart when it flips.

DCE installs insight-agent itself, so by default the release is adopted (imported by
`namespace/name`) and never uninstalled by a destroy. What the Release gets (chart, version,
values) is planned before any resource is declared, from the release as installed
(components/insight_agent/plan.py): only our values change, never the chart. Which values those are
is read from the installed chart (components/insight_agent/chart.py), and the rendered FluentBit
config is read at preview (drift, a log nobody would collect: components/insight_agent/collect.py)
and checked after every change (components/insight_agent/check.py).
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from components.insight_agent.chart import (
    GHIPPO_VALUE,
    KUBE_AUDIT_CURRENT,
    ChartReadingError,
    ChartSource,
    ChartSwitches,
    chart_directory_source,
    read_switches,
)
from components.insight_agent.check import FluentBitConfigCheck
from components.insight_agent.collect import CollectionPlan, CollectionPlanError, LiveConfig, plan_collection
from components.insight_agent.fluent_bit import configmap_inputs
from components.insight_agent.helm_state import (
    HelmRepositories,
    HelmStateError,
    InstalledRelease,
    read_installed_release,
)
from components.insight_agent.plan import ReleasePlan, ReleasePlanError, is_local_chart, plan_release
from components.remote.kubeapi import KubeAccess, KubeApi, KubeApiError
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
        switches = chart_switches(s, installed)
        plan = plan_release(s, installed, HelmRepositories.load(env), settings.enabled,
                            kube_audit_path=switches.kube_audit, global_management_path=switches.ghippo)
    except KubeApiError as exc:
        raise ReleasePlanError(f"reading Helm release {s.namespace}/{s.release} from the cluster "
                               f"(kubernetes:kubeconfig / kubernetes:context): {exc}") from None
    except (HelmStateError, ChartReadingError) as exc:
        raise ReleasePlanError(str(exc)) from None
    changes = installed is None or plan.version != installed.chart_version or plan.values != installed.config
    try:
        collect = plan_collection(
            config_map=f"{s.namespace}/{s.config_map}", host_dir=settings.log.host_dir,
            host_log_path=settings.host_log_path, enabled=settings.enabled, ghippo=s.collect_global_management_audit,
            switches=switches, live=read_live_config(api, s), installed=installed, release_inputs_change=changes)
    except CollectionPlanError as exc:
        raise ReleasePlanError(str(exc)) from None
    notes = ((f"switches read from the installed chart {installed.chart_version}, the update installs "
              f"{plan.version}: the check after `up` verifies them",) if installed and plan.upgrades else ())
    return dataclasses.replace(plan, description=collect.description, collection=collect,
                               warnings=plan.warnings + collect.notes + notes)


def chart_switches(s: InsightAgentSettings, installed: InstalledRelease | None) -> ChartSwitches:
    """The chart's switches: a local chart directory is read itself, else the release record's chart."""
    where = f"Helm release {s.namespace}/{s.release}"
    source: ChartSource | None = None
    if is_local_chart(s.chart):
        source = chart_directory_source(s.chart)
    elif installed is not None:
        source = ChartSource(installed.chart_version, installed.chart_values, installed.templates,
                             "the release record")
    if source is None:  # a release kube-audit installs from a repository: nothing to read before it exists
        return ChartSwitches(s.kube_audit_value or KUBE_AUDIT_CURRENT, s.global_management_audit_value or GHIPPO_VALUE,
                             (), True, (f"{where}: not installed yet, chart not read; the check after `up` "
                                        "verifies the values",))
    return read_switches(source, s.kube_audit_value, s.global_management_audit_value, where)


def read_live_config(api: KubeApi, s: InsightAgentSettings) -> LiveConfig:
    """The rendered FluentBit config's inputs now; not readable is a note, not a failure."""
    try:
        cm = api.get_or_none(f"/api/v1/namespaces/{s.namespace}/configmaps/{s.config_map}")
    except KubeApiError as exc:
        return LiveConfig(None, str(exc))
    if cm is None:
        return LiveConfig(None, "not found; set kube-audit:insightAgent.fluentBitConfigMap if the chart names it "
                                "otherwise")
    return LiveConfig(tuple(configmap_inputs(cm.get("data") or {})))


def restart_key(collect_kube_audit: bool, collect_global_management: bool, repair: str | None = None) -> str:
    """Changes exactly when FluentBit's inputs change (a repair included), so pods restart then and only then."""
    def word(on: bool) -> str:
        return "on" if on else "off"

    key = f"kube-audit={word(collect_kube_audit)},ghippo-audit={word(collect_global_management)}"
    # Only after a repair: a stack never repaired keeps the key (and its FluentBit pods) it had.
    return key + (f",repair={hashlib.sha256(repair.encode()).hexdigest()[:8]}" if repair else "")


def _revision(status: object) -> int | None:
    """The Release's `status.revision` (a typed output, or a plain map under mocks); None before it exists."""
    if isinstance(status, dict):
        return status.get("revision")
    return getattr(status, "revision", None)


@dataclass(frozen=True)
class InsightAgentArgs:
    settings: InsightAgentSettings
    """Release coordinates and options."""
    collect_kube_audit: bool
    """The stack's `enabled`: whether FluentBit tails the apiserver audit log dir."""
    plan: ReleasePlan
    """Chart, version and values, from gather_release_plan."""
    access: KubeAccess | None = None
    """The cluster, for the check after the change; None: the kubeconfig cannot be used (no check)."""


class InsightAgentAuditCollection(pulumi.ComponentResource):
    """Sets the chart's audit-collection values on insight-agent, restarts FluentBit, checks its config."""

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
        collect: CollectionPlan | None = plan.collection
        for reason in collect.drift if collect else ():
            pulumi.log.warn(f"drifted: {reason}; `up` repairs it through the Release (a Helm upgrade, whose "
                            "three-way merge restores the chart's rendering)", resource=self)
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
            description=plan.description,
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
                        annotations={RESTART_ANNOTATION: restart_key(args.collect_kube_audit, ghippo, plan.description)}
                    )
                )
            ),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.release]),
        )
        if collect is not None and args.access is not None:
            self.check = FluentBitConfigCheck(
                f"{name}-fluent-bit-config-check", args.access, collect.config_map, collect.host_log_path,
                collect.kube_audit, collect.ghippo, self.release.status.apply(_revision),
                list(collect.drift), pulumi.ResourceOptions(parent=self, depends_on=[self.fluent_bit_restart]))
        self.register_outputs({"releaseStatus": self.release.status})
