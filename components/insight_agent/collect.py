"""Pure plan of what insight-agent's FluentBit must collect, from the chart and the rendered config.

Three decisions, all before any resource is declared:
  - refused: audit on, and the agent's kube-audit glob (read from the rendered ConfigMap, else from the
    chart's templates) does not read the file the apiservers would write (`log.hostDir` + the basename
    of `log.path`, and lumberjack's rotated names), so nobody would collect it;
  - refused: `collectGlobalManagementAudit: false` on a chart with a ghippo input and no value to switch
    it (why a post-renderer is not used instead: docs/insight-agent.md "Global-management audit");
  - drift: the rendered ConfigMap does not collect what the stack says although the Release's inputs
    do not change (a hand `kubectl edit`, as the DCE guide does for ghippo, or a hand `helm upgrade`).
    The Release then gets a new `description`, which makes `up` run a Helm upgrade, whose three-way
    merge puts the chart's rendering back (and the FluentBit restart key changes with it).
"""

from __future__ import annotations

import posixpath
from collections.abc import Sequence
from dataclasses import dataclass

from components.insight_agent.chart import ChartSwitches
from components.insight_agent.fluent_bit import Input, collection, collection_problems, glob_matches, rotated_name
from components.insight_agent.helm_state import InstalledRelease

KEY = "kube-audit:insightAgent"
REPAIR_PREFIX = "kube-audit repair"


class CollectionPlanError(ValueError):
    """The audit log would not be collected as configured; the message names the settings and the glob."""


@dataclass(frozen=True)
class LiveConfig:
    """The rendered ConfigMap as read at preview: its inputs, or why it could not be read."""

    inputs: tuple[Input, ...] | None
    error: str | None = None


@dataclass(frozen=True)
class CollectionPlan:
    """What the check after `up` verifies, and what the preview shows as drift."""

    config_map: str
    """`namespace/name` of the rendered FluentBit config."""
    host_log_path: str
    kube_audit: bool
    ghippo: bool
    drift: tuple[str, ...]
    description: str | None
    notes: tuple[str, ...]
    """Warnings for the preview (unreadable ConfigMap, glob unknown until the check)."""


def _reads_all(glob: str, paths: Sequence[str]) -> bool:
    return all(glob_matches(glob, p) for p in paths)


def plan_collection(*, config_map: str, host_dir: str, host_log_path: str, enabled: bool, ghippo: bool,
                    switches: ChartSwitches, live: LiveConfig, installed: InstalledRelease | None,
                    release_inputs_change: bool) -> CollectionPlan:
    """The collection plan, or a CollectionPlanError before any change."""
    notes = list(switches.notes)
    if not ghippo and switches.ghippo is None and (switches.has_ghippo_input or (live.inputs and any(
            i.tag.startswith("audit_log.ghippo.") for i in live.inputs))):
        raise CollectionPlanError(
            f"{KEY}.collectGlobalManagementAudit is false, but the installed insight-agent chart has no value that "
            "switches global-management (ghippo) audit collection (looked for "
            "global.exporters.auditLog.ghippoAudit.enabled in its values and templates): kube-audit will not edit "
            f"the rendered {config_map} by hand, because the next `helm upgrade` (DCE's own procedure, or a platform "
            f"upgrade) silently restores it. Set {KEY}.collectGlobalManagementAudit: true, or set "
            f"{KEY}.globalManagementAuditValue to the value your chart reads")
    if ghippo and switches.ghippo is None and not switches.has_ghippo_input and not (live.inputs and any(
            i.tag.startswith("audit_log.ghippo.") for i in live.inputs)):
        # Without this, every preview would call the missing input drift and every `up` would fail the check.
        raise CollectionPlanError(
            f"{KEY}.collectGlobalManagementAudit is true, but the installed insight-agent chart renders no "
            f"audit_log.ghippo.* input (none in its templates, none in {config_map}) and has no value to switch "
            f"one on: set {KEY}.collectGlobalManagementAudit: false, or {KEY}.globalManagementAuditValue to the "
            "value your chart reads")
    ours = [host_log_path, rotated_name(host_log_path)]
    if enabled:
        # The chart's own glob first: `up` renders the chart, whatever a hand edit left in the ConfigMap.
        globs, source = (list(switches.kube_audit_globs), "the chart's templates") if switches.kube_audit_globs \
            else (_k8s_globs(live.inputs), f"the rendered {config_map}")
        if globs and not any(_reads_all(g, ours) for g in globs):
            raise CollectionPlanError(
                f"kube-audit:log.hostDir is {host_dir}, so the apiservers would write {host_log_path} (rotated: "
                f"{posixpath.basename(ours[1])}), but insight-agent's FluentBit tails {', '.join(globs)} (its "
                f"audit_log.k8s.* input, from {source}), which does not read it: nobody would collect the audit log. "
                "Set kube-audit:log.hostDir to a directory the glob reads (DCE's: /var/log/kubernetes/audit, with "
                f"log.path ending in .log), or {KEY}.enabled: false if another shipper collects it")
        if not globs:
            notes.append(f"{config_map}: the agent's kube-audit glob is not known before the change (no "
                         "audit_log.k8s.* input rendered yet, and the chart's is templated); the check after `up` "
                         f"verifies that a tail input reads {host_log_path}")
    drift: list[str] = []
    if live.inputs is None:
        notes.append(f"{config_map}: not read ({live.error}); FluentBit's collection is not checked before `up`")
    elif not release_inputs_change:
        drift = collection_problems(collection(live.inputs, host_log_path), host_log_path, enabled, ghippo,
                                    config_map)
    return CollectionPlan(config_map, host_log_path, enabled, ghippo, tuple(drift),
                          repair_description(installed, drift), tuple(notes))


def _k8s_globs(inputs: tuple[Input, ...] | None) -> list[str]:
    return [p for i in inputs or () if i.tag.startswith("audit_log.k8s.") for p in i.paths]


def repair_description(installed: InstalledRelease | None, drift: Sequence[str]) -> str | None:
    """The Release's description: new on drift (forces the upgrade that repairs), else the last repair's.

    Stable once repaired (Helm records it as the release's `info.description`), so the next preview
    shows no change; a release never repaired keeps none (None: the input is not set).
    """
    last = installed.description if installed and installed.description.startswith(REPAIR_PREFIX) else None
    if not drift or installed is None:
        return last
    return f"{REPAIR_PREFIX} after revision {installed.revision}: {len(drift)} FluentBit input problem(s)"
