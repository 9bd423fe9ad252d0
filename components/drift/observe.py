"""Per master, the drift the program passes to its resources (and the warnings it prints)."""

from __future__ import annotations

import posixpath
from collections.abc import Mapping

import pulumi

from components.drift.compare import Drift, compare, sha256_text
from components.drift.facts import FactReader, FactRequest, read_all
from components.settings import Settings
from components.ssh import Connection


def observe(settings: Settings, connections: Mapping[str, Connection], resource: pulumi.Resource | None = None,
            reader: FactReader = read_all) -> dict[str, Drift]:
    """Read every master (when `drift.read` is on) and compare it with the stack's desired state.

    A master that cannot be read gets no entry (its resources then show no drift) and a warning
    saying so: a preview must not hang on, or fail because of, one unreachable node.
    """
    if not settings.drift.read:
        return {}
    state = settings.audit_state()
    policy_path = posixpath.join(settings.paths.policy_dir, settings.paths.policy_file)
    request = FactRequest(manifest=settings.paths.manifest, policy=policy_path if settings.enabled else None)
    targets = {m.name: (connections[m.name], request) for m in settings.masters}
    readings = reader(targets, float(settings.drift.timeout_seconds))
    policy_sha = sha256_text(settings.policy.text) if (settings.enabled and settings.policy) else None
    found: dict[str, Drift] = {}
    for master in settings.masters:
        reading = readings.get(master.name)
        if reading is None or reading.facts is None:
            why = reading.error if reading else "no reading"
            pulumi.log.warn(f"{master.name}: drift not checked ({why}); the preview shows only config changes "
                            "for this master", resource)
            continue
        drift = compare(master.name, state, reading.facts, policy_sha)
        for note in drift.notes:
            pulumi.log.warn(note, resource)
        found[master.name] = drift
    return found
