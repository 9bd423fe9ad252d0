"""Engine events, reduced to what a fleet operator reads: per master restart / policy-only / unchanged.

The records here are plain data (engine.py turns the Automation API's events into them), so this
module and its tests need no engine. How a step maps to a master follows the program's resource
tree (components/audit_logging.py): each master's manifest change is the RemoteCommand child of an
`ApiServerAuditChange` (whose input `master` names it), and each master's policy write is a
RemoteCommand child of `AuditPolicyFile`, named `<that component>-<master>`.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

APISERVER = "kube-audit:index:ApiServerAuditChange"
POLICY_FILE = "kube-audit:index:AuditPolicyFile"
AGENT = "kube-audit:index:InsightAgentAuditCollection"
HELM_RELEASE = "kubernetes:helm.sh/v3:Release"
# Ops that change nothing (`read` only reads; `refresh` only updates state).
NO_CHANGE = {"same", "read", "refresh"}

RESTART, POLICY_ONLY, UNCHANGED = "restart", "policy-only", "unchanged"


@dataclass(frozen=True)
class Step:
    """One resource step: `phase` is pre (starting / planned), done, or failed."""

    urn: str
    type: str
    op: str
    parent: str = ""
    custom: bool = True
    new_inputs: Mapping[str, Any] = field(default_factory=dict)
    old_inputs: Mapping[str, Any] = field(default_factory=dict)
    diffs: tuple[str, ...] = ()
    phase: str = "pre"

    @property
    def name(self) -> str:
        return self.urn.rsplit("::", 1)[-1]


@dataclass(frozen=True)
class Violation:
    """A CrossGuard policy verdict (the guardrail pack run as in a pull request)."""

    pack: str
    policy: str
    level: str
    message: str
    urn: str = ""

    @property
    def mandatory(self) -> bool:
        return self.level == "mandatory"

    def line(self) -> str:
        first = self.message.strip().splitlines()[-1] if self.message.strip() else ""
        return f"[{self.level}] {self.policy}: {first}"


@dataclass(frozen=True)
class Diagnostic:
    severity: str
    message: str
    urn: str = ""


Record = Step | Violation | Diagnostic


@dataclass(frozen=True)
class AgentVersion:
    """insight-agent's chart version now (`old`, None if not yet managed) and in the plan (`new`)."""

    old: str | None
    new: str | None
    release_changes: bool

    def text(self) -> str:
        if self.new is None:
            return "-"
        if self.old is not None and self.old != self.new:
            return f"{self.old} -> {self.new}"
        return f"{self.new} ({'release updated' if self.release_changes else 'unchanged'})"


@dataclass
class StackPreview:
    """What one stack's preview says, for the table, the JSON and the plan check before `up`."""

    stack: str
    wave: int = 0
    masters: dict[str, str] = field(default_factory=dict)
    drift: list[str] = field(default_factory=list)
    """Reasons on steps whose desired inputs did not change: hand changes on a master."""
    config_differs: list[str] = field(default_factory=list)
    """Reasons on steps the stack's config changes anyway: how the master differs from the new config."""
    violations: list[Violation] = field(default_factory=list)
    agent: AgentVersion | None = None
    other_changes: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    plan: list[list[Any]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def refused(self) -> bool:
        return any(v.mandatory for v in self.violations)

    @property
    def changes(self) -> bool:
        return bool(self.plan)

    @property
    def status(self) -> str:
        if self.refused:
            return "refused"
        if self.errors:
            return "error"
        return "changes" if self.changes else "clean"

    @property
    def fingerprint(self) -> str:
        """sha256 of the planned steps (URN, op, changed keys, drift reasons): equal plans, equal prints."""
        return hashlib.sha256(json.dumps(self.plan, sort_keys=True).encode()).hexdigest()[:16]

    def count(self, kind: str) -> int:
        return sum(1 for v in self.masters.values() if v == kind)

    def to_json(self) -> dict[str, Any]:
        return {
            "stack": self.stack, "wave": self.wave, "status": self.status, "masters": self.masters,
            "restart": self.count(RESTART), "policyOnly": self.count(POLICY_ONLY), "unchanged": self.count(UNCHANGED),
            "drift": self.drift, "configDiffers": self.config_differs,
            "guardrails": [{"pack": v.pack, "policy": v.policy, "level": v.level, "message": v.message}
                           for v in self.violations],
            "insightAgent": None if self.agent is None else {
                "from": self.agent.old, "to": self.agent.new, "releaseChanges": self.agent.release_changes},
            "otherChanges": self.other_changes, "errors": self.errors, "warnings": self.warnings,
            "plan": self.plan, "fingerprint": self.fingerprint, "seconds": round(self.seconds, 2),
        }


# A reason names its master first ("lab-master-1: policy file ... changed"); the preflight checks'
# "<master> drifted: every master is checked again" notes only rerun those checks, and are no reason.
_REASON = re.compile(r"^[^\s:]+: ")
_REASON_KEYS = {"drift", "repair"}


def _drift(inputs: Mapping[str, Any]) -> list[str]:
    value = inputs.get("drift")
    return [str(r) for r in value if _REASON.match(str(r))] if isinstance(value, list) else []


def _only_drift(step: Step) -> bool:
    """True when the step's desired inputs are what was applied last: its reasons are then a hand
    change on the node (drift), not the consequence of a config change (which the program's
    comparison with the desired state also names)."""
    if not step.old_inputs:
        return False
    keys = (set(step.old_inputs) | set(step.new_inputs)) - _REASON_KEYS
    return all(step.old_inputs.get(k) == step.new_inputs.get(k) for k in keys)


class Collector:
    """Gathers one stack's records (the engine's event thread calls `add`) and judges them."""

    def __init__(self, stack: str, wave: int = 0) -> None:
        self.stack, self.wave = stack, wave
        self._lock = threading.Lock()
        self.steps: dict[str, Step] = {}
        self.violations: list[Violation] = []
        self.diagnostics: list[Diagnostic] = []
        self.components: dict[str, Step] = {}

    def add(self, record: Record) -> None:
        with self._lock:
            if isinstance(record, Step):
                if record.phase == "pre" or record.urn not in self.steps:
                    self.steps[record.urn] = record
                if not record.custom:
                    self.components.setdefault(record.urn, record)
            elif isinstance(record, Violation):
                if record not in self.violations:
                    self.violations.append(record)
            else:
                self.diagnostics.append(record)

    def master_of(self, step: Step) -> str | None:
        """The master a step works on, or None (cluster-wide steps)."""
        parent = self.components.get(step.parent)
        if step.type == APISERVER:
            return str(step.new_inputs.get("master") or step.old_inputs.get("master") or "") or None
        if parent is None:
            return None
        if parent.type == APISERVER:
            return str(parent.new_inputs.get("master") or parent.old_inputs.get("master") or "") or None
        if parent.type == POLICY_FILE and step.name.startswith(parent.name + "-"):
            return step.name[len(parent.name) + 1:]
        return None

    def result(self, error: str | None = None, seconds: float = 0.0) -> StackPreview:
        with self._lock:
            steps = list(self.steps.values())
            out = StackPreview(self.stack, self.wave, violations=list(self.violations), seconds=seconds)
            diagnostics = list(self.diagnostics)
        masters: dict[str, str] = {}
        for step in steps:
            if step.type == APISERVER:
                masters.setdefault(self.master_of(step) or step.name, UNCHANGED)
        for step in steps:
            if step.op in NO_CHANGE:
                continue
            found = out.drift if _only_drift(step) else out.config_differs
            found += [r for r in _drift(step.new_inputs) if r not in found]
            out.plan.append([step.urn, step.op, sorted(step.diffs), _drift(step.new_inputs)])
            if not step.custom:
                continue  # a component's own step (its first create, a changed input): its children tell
            master = self.master_of(step)
            parent = self.components.get(step.parent)
            if master is not None and parent is not None and parent.type == APISERVER:
                masters[master] = RESTART
            elif master is not None and parent is not None and parent.type == POLICY_FILE:
                if masters.get(master) != RESTART:
                    masters[master] = POLICY_ONLY
            elif not (parent is not None and parent.type == AGENT and step.type == HELM_RELEASE):
                out.other_changes.append(f"{step.op} {step.name}")
        out.plan.sort()
        out.masters = dict(sorted(masters.items()))
        agent = next((s for s in steps if s.type == AGENT), None)
        if agent is not None:
            release = next((s for s in steps if s.type == HELM_RELEASE and s.parent == agent.urn), None)
            old = agent.old_inputs.get("chartVersion")
            new = agent.new_inputs.get("chartVersion")
            out.agent = AgentVersion(None if old is None else str(old), None if new is None else str(new),
                                     release is not None and release.op not in NO_CHANGE)
        for d in diagnostics:
            text = d.message.strip()
            if not text:
                continue
            if d.severity == "error" and text not in out.errors:
                out.errors.append(text)
            elif d.severity == "warning" and text not in out.warnings:
                out.warnings.append(text)
        if error and error not in out.errors and not out.errors:
            out.errors.append(error)
        return out


def exit_code(previews: list[StackPreview]) -> int:
    """0 nothing to do, 1 an error or a refusal anywhere, 2 changes pending (and nothing refused)."""
    if any(p.status in ("error", "refused") for p in previews):
        return 1
    return 2 if any(p.changes for p in previews) else 0


def plan_difference(shown: StackPreview, now: StackPreview) -> list[str]:
    """What differs between two plans of one stack, one line per step (empty when equal)."""
    a = {json.dumps(s, sort_keys=True) for s in map(list, shown.plan)}
    b = {json.dumps(s, sort_keys=True) for s in map(list, now.plan)}
    return [f"- {x}" for x in sorted(a - b)] + [f"+ {x}" for x in sorted(b - a)]
