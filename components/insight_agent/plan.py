"""Pure plan of the insight-agent Helm release change: which chart, which version, which values.

The rule is "change one value, never the agent": unless `insightAgent.version` pins a version, the
chart and version are the ones of the release as installed (read from the cluster at preview, as
the DCE procedure reads `helm list`), so neither a toggle nor a later `up` upgrades the chart when a
newer one appears in the repository. Values are the release's own operator-supplied values with
ours merged over them, passed explicitly (no `reuse_values`): Helm then renders the target chart's
defaults under them, which is `--reset-then-reuse-values` (the kubernetes provider here has no such
flag), never `--reuse-values`' hybrid of new templates and old defaults.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from components.insight_agent.chart import GHIPPO_VALUE, KUBE_AUDIT_CURRENT
from components.insight_agent.helm_state import HelmRepositories, InstalledRelease
from components.settings.sections import InsightAgentSettings  # the model, not the config reader

KEY = "kube-audit:insightAgent"


class ReleasePlanError(ValueError):
    """The release cannot be changed safely as configured; the message names the settings to change."""


@dataclass(frozen=True)
class ReleasePlan:
    """What the Release resource gets; computed before any resource is declared."""

    chart: str
    repository_url: str | None
    version: str | None
    values: dict[str, Any]
    allow_null_values: bool
    installed_version: str | None
    """The chart version running now (None: not installed, the release will be created)."""
    warnings: tuple[str, ...] = field(default_factory=tuple)
    description: str | None = None
    """The Release's `description`: changed only to make `up` repair a drifted FluentBit config (see
    insight_agent_collect); otherwise what the record holds from our last repair, or None."""
    collection: Any = None
    """The insight_agent_collect.CollectionPlan: what the rendered FluentBit config must show after `up`."""

    @property
    def upgrades(self) -> bool:
        return self.installed_version is not None and self.version != self.installed_version


def our_values(collect_kube_audit: bool, collect_global_management: bool,
               global_management_path: str | None, kube_audit_path: str = KUBE_AUDIT_CURRENT) -> dict[str, Any]:
    """Our switches as a values tree; a chart without a ghippo switch (path None) gets no ghippo value."""
    values: dict[str, Any] = {}
    ours = [(kube_audit_path, collect_kube_audit)]
    if global_management_path:
        ours.append((global_management_path, collect_global_management))
    for path, value in ours:
        node = values
        *parents, last = path.split(".")
        for key in parents:
            node = node.setdefault(key, {})
        node[last] = value
    return values


def merge_values(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """`over` deep-merged onto a copy of `base` (maps merge, anything else is replaced), as Helm merges values."""
    out = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge_values(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _has_null(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, dict):
        return any(_has_null(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_null(v) for v in value)
    return False


def is_local_chart(chart: str) -> bool:
    return chart.startswith(("/", "./", "../")) or chart == "."


def read_chart_metadata(path: str) -> tuple[str, str]:
    """(name, version) from a chart directory's Chart.yaml."""
    try:
        meta = yaml.safe_load((Path(path) / "Chart.yaml").read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ReleasePlanError(f"{KEY}.chart: {path} is not a chart directory ({exc})") from None
    return str(meta.get("name", "")), str(meta.get("version", ""))


def plan_release(
    s: InsightAgentSettings,
    installed: InstalledRelease | None,
    repos: HelmRepositories,
    collect_kube_audit: bool,
    chart_metadata: Callable[[str], tuple[str, str]] = read_chart_metadata,
    kube_audit_path: str = KUBE_AUDIT_CURRENT,
    global_management_path: str | None = GHIPPO_VALUE,
) -> ReleasePlan:
    """The Release inputs for these settings and this installed release, or a ReleasePlanError."""
    where = f"Helm release {s.namespace}/{s.release}"
    local = is_local_chart(s.chart)
    local_meta = chart_metadata(s.chart) if local else None
    chart_name = local_meta[0] if local_meta else s.chart.rsplit("/", 1)[-1]
    if installed is None and s.adopt:
        raise ReleasePlanError(
            f"{where} is not installed (read from the cluster); check {KEY}.namespace and {KEY}.release, or set "
            f"{KEY}.adopt: false to have kube-audit install and own it")
    if installed is not None and installed.chart_name != chart_name:
        raise ReleasePlanError(
            f"{where} runs chart {installed.chart_name!r}, but {KEY}.chart names {chart_name!r}; set {KEY}.chart "
            f"to the release's chart")
    version = s.version or (installed.chart_version if installed else None)
    warnings = []
    if installed is not None and version != installed.chart_version:
        warnings.append(
            f"{where}: {KEY}.version pins {version}, the cluster runs {installed.chart_version}: this update UPGRADES "
            f"insight-agent from {installed.chart_version} to {version} (the new chart's defaults, the release's "
            f"own values kept); unset {KEY}.version to keep {installed.chart_version}")

    repository_url: str | None = None
    if local:
        assert local_meta is not None
        if version is not None and local_meta[1] != version:
            raise ReleasePlanError(
                f"{KEY}.chart: the chart directory {s.chart} holds version {local_meta[1]}, but the release must "
                f"stay at {version}; set {KEY}.version: {local_meta[1]} to upgrade to it, or point {KEY}.chart at "
                f"version {version}")
        chart = s.chart
    elif "://" in s.repository or s.repository.startswith("oci:"):
        chart, repository_url = chart_name, s.repository
        # The kubernetes provider records an imported release's chart under the first local alias whose
        # cached index has it; when that alias is this very URL (and knows the target version), use the
        # same reference so adopting the release shows no chart change.
        alias = repos.alias_for_url(s.repository)
        if installed is not None and alias and repos.first_alias_with(chart_name, installed.chart_version) == alias \
                and version in (repos.index_versions(alias, chart_name) or []):
            chart, repository_url = f"{alias}/{chart_name}", None
    else:
        alias = s.repository
        if alias not in repos.urls:
            raise ReleasePlanError(
                f"{KEY}.repository is {alias!r}, a local Helm repository alias, but {repos.config_file} has no "
                f"repository named {alias!r}. Add it as DCE's procedure does (`helm repo add {alias} <chart "
                f"repository URL>` then `helm repo update {alias}`), or set {KEY}.repository to the chart "
                "repository's URL")
        versions = repos.index_versions(alias, chart_name)
        if versions is None:
            raise ReleasePlanError(f"{KEY}.repository {alias!r}: no cached index in {repos.cache_dir}; run "
                                   f"`helm repo update {alias}`")
        if version is not None and version not in versions:
            raise ReleasePlanError(
                f"{KEY}.repository {alias!r} ({repos.urls[alias]}): its cached index has no {chart_name} {version} "
                f"(has: {', '.join(versions[-5:]) or 'none'}); run `helm repo update {alias}`"
                + (f" or check {KEY}.version" if s.version else ""))
        chart = f"{alias}/{chart_name}"

    ours = our_values(collect_kube_audit, s.collect_global_management_audit, global_management_path, kube_audit_path)
    values = merge_values(installed.config if installed else {}, ours)
    return ReleasePlan(chart=chart, repository_url=repository_url, version=version, values=values,
                       allow_null_values=_has_null(values),
                       installed_version=installed.chart_version if installed else None, warnings=tuple(warnings))
