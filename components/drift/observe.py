"""Per master, the drift the program passes to its resources, the preview's preflight verdict, and
the warnings it prints."""

from __future__ import annotations

import posixpath
from collections.abc import Mapping
from dataclasses import dataclass, field

import pulumi

from components.drift.compare import Drift, compare, sha256_text
from components.drift.facts import FactReader, FactRequest, PreflightAsk, Reading, read_all
from components.drift.preview_preflight import refusal
from components.drift.summary import MasterPreview, unreachable_refusal
from components.remote.ssh import Connection
from components.settings import Settings


@dataclass(frozen=True)
class Observation:
    """What reading the masters found (all empty when `drift.read` is off)."""

    drift: dict[str, Drift] = field(default_factory=dict)
    """Per master that could be read."""
    views: tuple[MasterPreview, ...] = ()
    """Every master, in rollout order, when the masters were read."""

    @property
    def refusals(self) -> dict[str, str]:
        """Per master whose `up` the preflight would refuse, `up`'s message."""
        return {v.name: v.refusal for v in self.views if v.refusal}


def _refusal(name: str, conn: Connection, reading: Reading | None, asked: bool) -> str | None:
    if not asked or reading is None:
        return None
    if reading.unreachable:
        return unreachable_refusal(name, reading.error or f"cannot connect to {conn.label}")
    return refusal(conn.label, reading.preflight) if reading.preflight else None


def observe(settings: Settings, connections: Mapping[str, Connection], resource: pulumi.Resource | None = None,
            reader: FactReader = read_all, preflight: Mapping[str, PreflightAsk] | None = None) -> Observation:
    """Read every master (when `drift.read` is on) and compare it with the stack's desired state.

    With `preflight` (previews), each master also runs `up`'s preflight in the same read: a master
    it refuses, or one that cannot be reached, is a refusal. Otherwise a master that cannot be read
    gets no drift (its resources then show none) and a warning: a preview must not hang on one node.
    """
    if not settings.drift.read:
        return Observation()
    state = settings.audit_state()
    policy_path = posixpath.join(settings.paths.policy_dir, settings.paths.policy_file)
    policy = policy_path if settings.enabled else None
    asks = preflight or {}
    targets = {m.name: (connections[m.name], FactRequest(settings.paths.manifest, policy, asks.get(m.name)))
               for m in settings.masters}
    readings = reader(targets, float(settings.drift.timeout_seconds))
    policy_sha = sha256_text(settings.policy.text) if (settings.enabled and settings.policy) else None
    found: dict[str, Drift] = {}
    views = []
    for master in settings.masters:
        reading = readings.get(master.name)
        refused = _refusal(master.name, connections[master.name], reading, master.name in asks)
        if reading is not None and master.name in asks and reading.preflight and reading.preflight.error:
            pulumi.log.warn(f"{master.name}: the preflight was not checked in this preview "
                            f"({reading.preflight.error}); `pulumi up` checks this master before changing it",
                            resource)
        if reading is None or reading.facts is None:
            why = reading.error if reading else "no reading"
            if not refused:
                pulumi.log.warn(f"{master.name}: drift not checked ({why}); the preview shows only config changes "
                                "for this master", resource)
            views.append(MasterPreview(master.name, None, refused, why))
            continue
        drift = compare(master.name, state, reading.facts, policy_sha)
        for note in drift.notes:
            pulumi.log.warn(note, resource)
        found[master.name] = drift
        views.append(MasterPreview(master.name, drift, refused))
    return Observation(found, tuple(views))
