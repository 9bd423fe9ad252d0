"""Pure reading of the insight-agent chart: which value switches kube-audit collection, and ghippo's.

DCE's documentation for insight-agent switches Kubernetes audit collection with
`global.exporters.auditLog.kubeAudit.enabled`; its documentation for the older v0.8.x charts with
`global.exporters.auditLog.enabled`. A value set on a chart that does not read it does nothing,
silently, so the chart that is installed is read (its default values and templates, which Helm's
release record carries; or the chart directory itself when `insightAgent.chart` is one) and the
switch it has is used. Nothing known is found: the preview is refused, naming what was looked for.
The `kubeAuditValue` / `globalManagementAuditValue` settings override the reading.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from components.insight_agent.fluent_bit import GHIPPO_TAG, kube_audit_globs, parse_inputs

KUBE_AUDIT_CURRENT = "global.exporters.auditLog.kubeAudit.enabled"
KUBE_AUDIT_OLDER = "global.exporters.auditLog.enabled"
GHIPPO_VALUE = "global.exporters.auditLog.ghippoAudit.enabled"
KEY = "kube-audit:insightAgent"


class ChartReadingError(ValueError):
    """The chart has no switch kube-audit knows; the message names the chart version and what was looked for."""


@dataclass(frozen=True)
class ChartSource:
    """What the chart says about itself: its version, default values and templates (None: not available)."""

    version: str
    values: Mapping[str, Any]
    templates: tuple[tuple[str, str], ...] | None
    where: str
    """Where it was read, for messages ("the release record", a chart directory)."""


@dataclass(frozen=True)
class ChartSwitches:
    """The value paths to set, and what the chart's templates show of its FluentBit inputs."""

    kube_audit: str
    ghippo: str | None
    """None: the chart has no switch for global-management audit collection."""
    kube_audit_globs: tuple[str, ...]
    """Literal Path globs of the chart's `audit_log.k8s.*` input (empty: templated or not found)."""
    has_ghippo_input: bool
    """The templates define an `audit_log.ghippo.*` input (True also when there are no templates to tell)."""
    notes: tuple[str, ...] = ()


_ASSIGN = re.compile(r"\$(\w+)\s*:?=\s*(\.Values|\$\w+)((?:\.[\w-]+)*)")
_REF = re.compile(r"(\.Values|\$\w+)((?:\.[\w-]+)+)")


def template_value_paths(texts: Iterable[str]) -> set[str]:
    """Dotted `.Values` paths the templates read, directly or through a variable (`$audit := .Values.x`)."""
    paths: set[str] = set()
    for text in texts:
        bound: dict[str, str] = {}
        for name, head, tail in _ASSIGN.findall(text):
            base = "" if head == ".Values" else bound.get(head[1:])
            if base is not None:
                bound[name] = (base + tail).lstrip(".")
        for head, tail in _REF.findall(text):
            base = "" if head == ".Values" else bound.get(head[1:])
            if base is not None:
                paths.add((base + tail).lstrip("."))
    return paths


def value_at(values: Mapping[str, Any], path: str) -> tuple[bool, Any]:
    node: Any = values
    for key in path.split("."):
        if not isinstance(node, Mapping) or key not in node:
            return False, None
        node = node[key]
    return True, node


def _has_switch(source: ChartSource, read: set[str], path: str, inputs_here: bool) -> bool:
    """Whether the chart reads `path`.

    When the record's templates render the FluentBit inputs, only what they read counts: after a
    `helm upgrade --reuse-values` Helm stores the *previous* chart's coalesced values as this chart's
    values, so a default can be a leftover (a current-style `kubeAudit.enabled` on an older chart).
    Otherwise (no templates, or the inputs live in a subchart the record does not carry) the default
    values are the evidence.
    """
    if path in read:
        return True
    present, value = value_at(source.values, path)
    return present and not isinstance(value, Mapping) and not inputs_here


def read_switches(source: ChartSource, kube_audit_override: str | None, ghippo_override: str | None,
                  where: str) -> ChartSwitches:
    """The switches this chart has, or a ChartReadingError naming the version and what was looked for."""
    texts = [text for _name, text in source.templates or ()]
    read = template_value_paths(texts)
    inputs_here = any("audit_log.k8s." in text or GHIPPO_TAG in text for text in texts)
    notes = []
    if source.templates is None:
        notes.append(f"{where}: {source.where} carries no templates; the switches were read from the chart's "
                     "default values only")
    if kube_audit_override:
        kube_audit = kube_audit_override
    elif _has_switch(source, read, KUBE_AUDIT_CURRENT, inputs_here):
        kube_audit = KUBE_AUDIT_CURRENT
    elif _has_switch(source, read, KUBE_AUDIT_OLDER, inputs_here):
        kube_audit = KUBE_AUDIT_OLDER
    else:
        looked = "its default values" + (f" and {len(texts)} templates" if source.templates else
                                         " (no templates in the record)")
        raise ChartReadingError(
            f"{where}: chart version {source.version or '?'} has no value kube-audit knows to switch Kubernetes "
            f"audit collection: looked for {KUBE_AUDIT_CURRENT} (current charts) and {KUBE_AUDIT_OLDER} (v0.8.x "
            f"charts) in {looked} ({source.where}). Set {KEY}.kubeAuditValue to the value your chart reads, or "
            f"{KEY}.enabled: false if something else ships the audit log")
    if ghippo_override:
        ghippo: str | None = ghippo_override
    else:
        ghippo = GHIPPO_VALUE if _has_switch(source, read, GHIPPO_VALUE, inputs_here) else None
    inputs = [i for text in texts for i in parse_inputs(text, "chart templates")]
    globs = tuple(g for g in kube_audit_globs(inputs) if "{{" not in g)
    has_ghippo = source.templates is None or any(GHIPPO_TAG in text for text in texts)
    return ChartSwitches(kube_audit, ghippo, globs, has_ghippo, tuple(notes))


def chart_directory_source(path: str) -> ChartSource:
    """A local chart directory (`insightAgent.chart: /...`): its Chart.yaml, values.yaml and templates/."""
    root = Path(path)
    try:
        meta = yaml.safe_load((root / "Chart.yaml").read_text()) or {}
        values_file = root / "values.yaml"
        values = (yaml.safe_load(values_file.read_text()) or {}) if values_file.is_file() else {}
    except (OSError, yaml.YAMLError) as exc:
        raise ChartReadingError(f"{KEY}.chart: {path} cannot be read as a chart ({exc})") from None
    templates = tuple((str(p.relative_to(root)), p.read_text(errors="replace"))
                      for p in sorted((root / "templates").rglob("*")) if p.is_file())
    return ChartSource(str(meta.get("version", "")), values if isinstance(values, dict) else {}, templates or None,
                       f"chart directory {path}")
